"""One coordinator process's session in etcd: its lease, its membership, its leadership.

The lease carries everything that must disappear with the process: the member key, this
observer's health report and, while it leads, the leader key. ``campaign()`` (the daemon calls
it every ``loop_wait``) renews the lease and takes the leader key when it is free, with a
transaction on ``create_revision == 0`` as Patroni's ``etcd3.py`` does; the leader key's
create revision is the fencing token, which only grows from one leader to the next.

``leading()`` answers from memory: the token until a local deadline computed from when the
last successful keepalive (or grant) was *sent*, minus ``retry_timeout``. etcd counts the TTL
from when it received the request, which is later, so this process stops acting before its
lease can have expired at the server, and before another coordinator can have taken over.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from failover.errors import StoreError
from failover.store.etcd_client import Compare, DeleteOp, EtcdClient, EtcdLeaseNotFound, PutOp

log = logging.getLogger("failover.store")


class Session:
    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        observer: str,
        ttl: float,
        retry_timeout: float,
        report_ttl: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.observer = observer
        self.ttl = max(1, int(ttl))
        self.margin = retry_timeout
        self.report_ttl = max(self.ttl, int(report_ttl or self.ttl))
        self._report_lease: int | None = None
        self.leader_key = prefix + b"/leader"
        self.member_key = prefix + b"/members/" + observer.encode()
        self.seen_key = prefix + b"/seen/" + observer.encode()
        self._monotonic = monotonic
        self._wall = wall
        self._lock = threading.RLock()  # one renewal at a time; leading() never waits on I/O
        self._lease: int | None = None
        self._deadline = float("-inf")  # monotonic: valid strictly before this
        self._token: int | None = None

    # -- the lease ---------------------------------------------------------------------------
    def lease(self) -> int:
        """The live lease id, granted when there is none (the first report, after an expiry)."""
        with self._lock:
            if self._lease is None:
                sent = self._monotonic()
                grant = self.client.lease_grant(self.ttl)
                self._lease = grant.id
                self._deadline = sent + min(grant.ttl, self.ttl) - self.margin
            return self._lease

    def lost(self) -> None:
        """The lease is gone at the server (expired or revoked): so is everything under it."""
        with self._lock:
            if self._token is not None:
                log.warning("%s: leader lease lost; no longer acting", self.observer)
            self._lease = None
            self._token = None
            self._deadline = float("-inf")

    def renew(self) -> int:
        with self._lock:
            if self._lease is None:
                return self.lease()
            sent = self._monotonic()
            try:
                remaining = self.client.lease_keepalive(self._lease)
            except EtcdLeaseNotFound:
                self.lost()
                return self.lease()
            self._deadline = sent + min(remaining, self.ttl) - self.margin
            return self._lease

    def report_lease(self) -> int:
        """The lease this observer's report lives under: as long as a report stays fresh, and
        never revoked on exit, so a cron-run observer's vote outlives its process until then."""
        with self._lock:
            if self._report_lease is None:
                self._report_lease = self.client.lease_grant(self.report_ttl).id
            return self._report_lease

    def report_lost(self) -> None:
        with self._lock:
            self._report_lease = None

    def _renew_report(self) -> None:
        """A running observer keeps its report's lease alive; a process that exits leaves it to
        run out ``report_ttl`` after its last renewal."""
        if self._report_lease is None:
            return
        try:
            self.client.lease_keepalive(self._report_lease)
        except EtcdLeaseNotFound:
            self._report_lease = None  # the next report takes a new one

    # -- leadership --------------------------------------------------------------------------
    def campaign(self, take: bool = True) -> int | None:
        """Renew, keep the member key, take the leader key if it is free (unless ``take`` is
        False); the token while leading."""
        with self._lock:
            lease = self.renew()
            self._renew_report()
            member = json.dumps({"last_seen": self._wall()}).encode()
            try:  # alive (under the lease), and when last seen (kept after the lease is gone)
                self.client.txn([], [PutOp(self.member_key, member, lease=lease), PutOp(self.seen_key, member)])
            except EtcdLeaseNotFound:
                self.lost()
                return None
            current = self.client.get(self.leader_key)
            if current is None and not take:
                self._token = None
            elif current is None:
                won = self.client.txn(
                    [Compare.create(self.leader_key, "==", 0)],
                    [PutOp(self.leader_key, self.observer.encode(), lease=lease)],
                )
                if won.succeeded:
                    self._token = won.revision  # the put's revision is the key's create revision
                    log.info("%s: leader (fencing token %d)", self.observer, won.revision)
                else:
                    self._token = None
            elif current.value == self.observer.encode() and current.lease == lease:
                self._token = current.create_revision
            else:
                if self._token is not None:
                    log.warning("%s: the leader key is no longer ours; no longer acting", self.observer)
                self._token = None
            return self.leading()

    def leading(self) -> int | None:
        token = self._token
        if token is None or self._monotonic() >= self._deadline:
            return None
        return token

    def resign(self) -> None:
        """Hand leadership over at once and end the lease (a clean shutdown)."""
        with self._lock:
            lease, self._lease = self._lease, None
            self._token = None
            self._deadline = float("-inf")
            if lease is None:
                return
            try:
                self.client.txn(
                    [
                        Compare.value(self.leader_key, "==", self.observer.encode()),
                        Compare.lease(self.leader_key, "==", lease),
                    ],
                    [DeleteOp(self.leader_key)],
                )
                self.client.lease_revoke(lease)
            except StoreError as exc:  # the lease then expires by itself
                log.warning("%s: could not resign cleanly: %s", self.observer, exc)
