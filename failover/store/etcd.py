"""The distributed store: every coordinator shares decisions, observations, operator intent and
the audit log through etcd (``state.url: etcd://host:port,.../prefix``).

Keys under the prefix::

    /state/<domain>        DomainState; compare-and-set on the epoch via the key's mod revision
    /streaks/<observer>    that observer's rise/fall streaks (one writer: the observer)
    /health/<observer>     that observer's verdicts, under a lease as long as a report stays fresh
    /members/<observer>    that observer is alive, under its session lease
    /seen/<observer>       when that observer last renewed its session (kept after it dies)
    /leader                the leader's name, under its lease; its create revision fences
    /overrides/<domain>    a manual pin ("*": every domain)
    /drains/<region>       a maintenance drain
    /audit/<ns>-<observer>-<rand>   one audit entry; ordered by create revision

A report or a membership under a lease disappears when its coordinator dies, so a dead
observer's vote is gone within the lease TTL. The audit log is never trimmed by us: etcd's
compaction drops old *revisions*, not live keys (docs/multi-region.md says how to export it).
Every failure is a ``StoreError`` and means "unknown: do not act".
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

from failover.errors import StoreError, UsageError
from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Streak, StreakKey
from failover.policy import State
from failover.store import codec
from failover.store._etcd_session import Session
from failover.store.abc import Store
from failover.store.etcd_client import Compare, DeleteOp, EtcdClient, EtcdLeaseNotFound, KeyValue, PutOp


class EtcdStore(Store):
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        observer: str,
        ttl: float = 10.0,
        retry_timeout: float = 3.0,
        url: str | None = None,
        report_ttl: float | None = None,
    ) -> None:
        self.client = client
        self.url = url or f"etcd://{','.join(client.endpoints)}{prefix}"
        self.prefix = prefix.rstrip("/").encode()
        self.observer = observer
        self.session = Session(client, self.prefix, observer, ttl, retry_timeout, report_ttl)
        self._closed = False
        self._watched = 0  # the next revision wait_for_change() reads from (0: from now)

    @classmethod
    def from_policy(cls, state: State, observer: str, report_ttl: float | None = None) -> EtcdStore:
        credentials = state.credentials()
        user, password = credentials if credentials else (None, None)
        client = EtcdClient(
            state.endpoints,
            timeout=state.retry_timeout,
            ca_file=state.ca_file,
            cert_file=state.cert_file,
            key_file=state.key_file,
            user=user,
            password=password,
        )
        return cls(client, state.prefix, observer, state.ttl, state.retry_timeout, state.url, report_ttl)

    def _key(self, *parts: str) -> bytes:
        for part in parts:
            if not part or "/" in part:
                raise UsageError(f"state store: {part!r} cannot name an etcd key (empty or holds '/')")
        return b"/".join([self.prefix, *(p.encode() for p in parts)])

    def _check(self) -> None:
        if self._closed:
            raise StoreError(f"state store {self.url} is closed")

    def _get(self, *parts: str) -> KeyValue | None:
        self._check()
        return self.client.get(self._key(*parts))

    def _list(self, *parts: str) -> list[KeyValue]:
        self._check()
        return list(self.client.range(self._key(*parts) + b"/", prefix=True).kvs)

    @staticmethod
    def _name(kv: KeyValue) -> str:
        return kv.key.rsplit(b"/", 1)[1].decode()

    # -- decisions ---------------------------------------------------------------------------
    def get_state(self, domain: str) -> DomainState | None:
        kv = self._get("state", domain)
        return codec.state(kv.value.decode()) if kv else None

    def put_state(self, state: DomainState, expect_epoch: int | None) -> bool:
        key = self._key("state", state.domain)
        current = self._get("state", state.domain)
        stored = codec.state(current.value.decode()).epoch if current else None
        if stored != expect_epoch:
            return False
        guard = Compare.mod(key, "==", current.mod_revision) if current else Compare.create(key, "==", 0)
        return self.client.txn([guard], [PutOp(key, codec.dumps(state).encode())]).succeeded

    # -- observations ------------------------------------------------------------------------
    def get_streaks(self, observer: str) -> dict[StreakKey, Streak]:
        kv = self._get("streaks", observer)
        if kv is None:
            return {}
        rows = json.loads(kv.value)
        return {StreakKey(d, g, c): codec.streak(json.dumps(s)) for d, g, c, s in rows}

    def put_streaks(self, observer: str, streaks: Mapping[StreakKey, Streak]) -> None:
        merged = self.get_streaks(observer)  # one writer per observer: read-modify-write is safe
        merged.update(streaks)
        rows = [[k.domain, k.gateway, k.check, json.loads(codec.dumps(v))] for k, v in merged.items()]
        self._check()
        self.client.put(self._key("streaks", observer), json.dumps(rows, separators=(",", ":")).encode())

    def get_region_health(self, observer: str) -> dict[tuple[str, str], RegionHealth]:
        kv = self._get("health", observer)
        return self._verdicts(kv)[1] if kv else {}

    @staticmethod
    def _verdicts(kv: KeyValue) -> tuple[float, dict[tuple[str, str], RegionHealth]]:
        data = json.loads(kv.value)
        verdicts = {(d, r): codec.region_health(json.dumps(v)) for d, r, v in data["verdicts"]}
        return float(data["updated"]), verdicts

    def put_region_health(self, observer: str, health: Mapping[tuple[str, str], RegionHealth], now: float) -> None:
        rows = [[d, r, json.loads(codec.dumps(v))] for (d, r), v in health.items()]
        value = json.dumps({"updated": now, "verdicts": rows}, separators=(",", ":")).encode()
        key = self._key("health", observer)
        self._check()
        try:  # under a lease as long as the report stays fresh: a dead observer's vote goes with it
            self.client.put(key, value, lease=self.session.report_lease())
        except EtcdLeaseNotFound:
            self.session.report_lost()
            self.client.put(key, value, lease=self.session.report_lease())

    def all_region_health(
        self, fresh_after: float, others_than: str | None = None
    ) -> dict[str, dict[tuple[str, str], RegionHealth]]:
        out: dict[str, dict[tuple[str, str], RegionHealth]] = {}
        for kv in self._list("health"):
            if others_than is not None and self._name(kv) == others_than:
                continue  # not decoded: the caller has its own report in memory
            updated, verdicts = self._verdicts(kv)
            if updated >= fresh_after:
                out[self._name(kv)] = verdicts
        return out

    # -- operator intent ---------------------------------------------------------------------
    def overrides(self) -> dict[str, Override]:
        return {self._name(kv): codec.override(kv.value.decode()) for kv in self._list("overrides")}

    def set_override(self, override: Override) -> None:
        self._check()
        self.client.put(self._key("overrides", override.domain), codec.dumps(override).encode())

    def clear_override(self, domain: str, expect: Override | None = None) -> Override | None:
        kv = self._get("overrides", domain)
        if kv is None:
            return None
        found = codec.override(kv.value.decode())
        if expect is not None and found != expect:
            return None
        done = self.client.txn([Compare.mod(kv.key, "==", kv.mod_revision)], [DeleteOp(kv.key)])
        return found if done.succeeded else None

    def drains(self) -> dict[str, Drain]:
        return {self._name(kv): codec.drain(kv.value.decode()) for kv in self._list("drains")}

    def set_drain(self, drain: Drain) -> None:
        self._check()
        self.client.put(self._key("drains", drain.region), codec.dumps(drain).encode())

    def clear_drain(self, region: str) -> Drain | None:
        self._check()
        gone = self.client.delete_range(self._key("drains", region), prev_kv=True)
        return codec.drain(gone.prev_kvs[0].value.decode()) if gone.prev_kvs else None

    # -- audit -------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        self._check()
        name = f"{time.time_ns():020d}-{entry.observer or self.observer}-{os.urandom(4).hex()}"
        self.client.put(self._key("audit", name), codec.dumps(entry).encode())

    def history(self, domain: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        self._check()
        kvs = self.client.range(self._key("audit") + b"/", prefix=True, sort_target="CREATE", sort_order="ASCEND").kvs
        entries = [codec.audit(kv.value.decode()) for kv in kvs]
        if domain is not None:
            entries = [e for e in entries if e.domain in (domain, None)]
        return entries[len(entries) - limit :] if limit is not None else entries

    # -- leadership and membership -------------------------------------------------------------
    def campaign(self, observer: str, take: bool = True) -> int | None:
        self._check()
        return self.session.campaign(take)

    def leading(self) -> int | None:
        self._check()
        return self.session.leading()

    def resign(self) -> None:
        if not self._closed:
            self.session.resign()

    def leader(self) -> str | None:
        kv = self._get("leader")
        return kv.value.decode() if kv else None

    def members(self) -> dict[str, float]:
        return {self._name(kv): float(json.loads(kv.value)["last_seen"]) for kv in self._list("members")}

    def last_seen(self) -> dict[str, float]:
        return {self._name(kv): float(json.loads(kv.value)["last_seen"]) for kv in self._list("seen")}

    def wait_for_change(self, timeout: float) -> bool:
        self._check()
        watch = self.client.watch(self.prefix + b"/", prefix=True, start_revision=self._watched, timeout=timeout)
        with watch:
            for event in watch:
                # past this event's revision even when more events of it follow (a lease's expiry
                # deletes several keys at once): the caller re-reads everything anyway
                self._watched = max(watch.next_revision, event.kv.mod_revision + 1)
                kind, _, name = event.kv.key[len(self.prefix) + 1 :].partition(b"/")
                if kind == b"health" and name == self.observer.encode():
                    continue  # our own report
                if kind in (b"health", b"overrides", b"drains", b"state", b"leader"):
                    return True
        self._watched = max(self._watched, watch.next_revision)
        return False

    def close(self) -> None:
        if not self._closed:
            self.session.resign()
            self._closed = True
            self.client.close()
