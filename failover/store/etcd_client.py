"""A small synchronous client for etcd's v3 JSON gateway (``/v3/kv/range`` and friends).

Why our own: python-etcd3 is unmaintained and speaks gRPC only, etcd3gw is tied to one
endpoint, aetcd is gRPC and asyncio; this is a few hundred lines on httpx, which we already
use, and it does exactly what the coordinators need: several endpoints under one deadline,
auth, TLS, leases, transactions and watches, with every failure a ``StoreError``.

    client = EtcdClient(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], timeout=2.0)
    lease = client.lease_grant(10)
    won = client.txn([Compare.create(b"/f/leader", "==", 0)],
                     [PutOp(b"/f/leader", b"east", lease=lease.id)],
                     [RangeOp(b"/f/leader")])

Contract:

* Every call finishes within ``timeout`` seconds, shared by the endpoints (the last one that
  answered first; see ``_etcd_http``), or raises. It is safe to share one client between
  threads.
* Every failure is a ``StoreError`` (the tree is in ``_etcd_errors``): ``EtcdUnavailable``
  when no endpoint answered in time, ``EtcdOutcomeUnknown`` when a write got no answer and
  may have been applied, ``EtcdLeaseNotFound``, ``EtcdCompacted``, ``EtcdAuthFailed``, and a
  plain ``EtcdError`` for any other refusal and for answers we do not recognise. Callers
  treat all of them as "unknown: do not act". No message holds a password or a token.
* Keys and values are ``bytes``; revisions, versions, lease ids and TTLs are ``int``.
* Reads are linearizable (they need a quorum) unless ``serializable=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from failover.store._etcd_errors import (
    EtcdAuthFailed,
    EtcdCompacted,
    EtcdError,
    EtcdLeaseNotFound,
    EtcdOutcomeUnknown,
    EtcdUnavailable,
)
from failover.store._etcd_http import Connection
from failover.store._etcd_types import (
    Compare,
    CompareOp,
    CompareTarget,
    DeleteOp,
    DeleteResult,
    KeyValue,
    LeaseGrant,
    LeaseInfo,
    Op,
    OpResult,
    PutOp,
    PutResult,
    RangeOp,
    RangeResult,
    SortOrder,
    SortTarget,
    TxnResult,
    WatchEvent,
    as_bytes,
    as_int,
    b64,
    delete_result,
    prefix_range_end,
    put_result,
    range_result,
    txn_result,
    txn_wire,
)
from failover.store._etcd_watch import Watch, open_watch

__all__ = [
    "Compare",
    "CompareOp",
    "CompareTarget",
    "DeleteOp",
    "DeleteResult",
    "EtcdAuthFailed",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdError",
    "EtcdLeaseNotFound",
    "EtcdOutcomeUnknown",
    "EtcdUnavailable",
    "KeyValue",
    "LeaseGrant",
    "LeaseInfo",
    "Op",
    "OpResult",
    "PutOp",
    "PutResult",
    "RangeOp",
    "RangeResult",
    "SortOrder",
    "SortTarget",
    "TxnResult",
    "Watch",
    "WatchEvent",
    "prefix_range_end",
]

T = TypeVar("T")


class EtcdClient:
    """A client for one etcd cluster.

    ``endpoints``: ``http://host:port`` or ``https://host:port`` of some or all members.
    ``timeout``: the deadline of each call, in seconds, shared by the endpoints.
    ``ca_file``/``cert_file``/``key_file``: TLS trust and client certificate (PEM files).
    ``user``/``password``: etcd's own auth; the token is fetched and renewed as needed.
    ``transport``: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 2.0,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        user: str | None = None,
        password: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._conn = Connection(endpoints, timeout, ca_file, cert_file, key_file, user, password, transport)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._conn.endpoints

    @property
    def timeout(self) -> float:
        return self._conn.timeout

    def __repr__(self) -> str:
        user = f", user={self._conn.user!r}" if self._conn.user else ""
        return f"EtcdClient({list(self.endpoints)!r}, timeout={self.timeout:g}{user})"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _call(
        self,
        path: str,
        body: dict[str, Any],
        what: str,
        decode: Callable[..., T],
        *args: Any,
        write: bool,
        streamed: bool = False,
    ) -> T:
        """POST, then decode the answer with ``decode(answer, *args)``; a field missing or
        malformed is an ``EtcdError`` like any other answer we do not recognise."""
        endpoint, data = self._conn.call(path, body, what, write=write, streamed=streamed)
        try:
            return decode(data, *args)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise EtcdError(
                f"etcd {endpoint}: {what}: malformed answer ({type(exc).__name__}: {exc})", endpoint
            ) from None
        except EtcdLeaseNotFound as exc:
            raise EtcdLeaseNotFound(f"etcd {endpoint}: {what}: {exc}", endpoint) from None

    # -- keys -------------------------------------------------------------------------------
    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        prefix: bool = False,
        limit: int = 0,
        revision: int = 0,
        sort_order: SortOrder = "NONE",
        sort_target: SortTarget = "KEY",
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult:
        """The key, the keys in ``[key, range_end)``, or with ``prefix`` every key starting
        with ``key``. ``revision`` reads the store as it was then (``EtcdCompacted`` if that
        is gone). ``count`` in the result is the number of keys in the range."""
        op = RangeOp(
            key,
            prefix_range_end(key) if prefix else range_end,
            limit,
            revision,
            sort_order,
            sort_target,
            serializable,
            keys_only,
            count_only,
        )
        what = f"range {key!r}"
        return self._call("/kv/range", op.wire(), what, range_result, write=False)

    def get(self, key: bytes, *, serializable: bool = False) -> KeyValue | None:
        """The key, or None when it does not exist."""
        kvs = self.range(key, serializable=serializable).kvs
        return kvs[0] if kvs else None

    def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> PutResult:
        """Write ``key``; with ``lease`` it goes when the lease does (``EtcdLeaseNotFound`` if
        the lease is gone already); ``prev_kv`` returns what it replaced."""
        what = f"put {key!r}"
        return self._call("/kv/put", PutOp(key, value, lease, prev_kv).wire(), what, put_result, write=True)

    def delete_range(
        self, key: bytes, range_end: bytes = b"", *, prefix: bool = False, prev_kv: bool = False
    ) -> DeleteResult:
        """Delete the key, the keys in ``[key, range_end)``, or with ``prefix`` every key
        starting with ``key``; ``deleted`` counts them (0 is not an error)."""
        op = DeleteOp(key, prefix_range_end(key) if prefix else range_end, prev_kv)
        what = f"delete {key!r}"
        return self._call("/kv/deleterange", op.wire(), what, delete_result, write=True)

    def txn(self, compare: Sequence[Compare], success: Sequence[Op] = (), failure: Sequence[Op] = ()) -> TxnResult:
        """Atomically: if every compare holds, run ``success``, else ``failure``. The
        compare-and-set of leader election is ``txn([Compare.create(key, "==", 0)],
        [PutOp(key, me, lease=lease_id)], [RangeOp(key)])``; a failed compare is
        ``succeeded=False``, not an error."""
        what = f"txn on {', '.join(repr(c.key) for c in compare) or 'no key'}"
        body = txn_wire(compare, success, failure)
        return self._call("/kv/txn", body, what, txn_result, success, failure, write=True)

    # -- leases -----------------------------------------------------------------------------
    def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        """A new lease of ``ttl`` seconds (etcd may grant a longer one; ``ttl`` in the result
        is what it granted). Retried on another endpoint when an answer is lost: a lease
        nobody knows of holds no key and simply expires; not so with a chosen ``lease_id``,
        which a second grant would find taken."""
        body = {"TTL": str(ttl), "ID": str(lease_id)}
        return self._call("/lease/grant", body, f"lease grant ({ttl}s)", _lease_grant, write=bool(lease_id))

    def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease and return its TTL in seconds, counted from when etcd renewed it.
        Raises ``EtcdLeaseNotFound`` when the lease has expired or was revoked (etcd answers
        with TTL 0): its keys are gone, and a holder of a lock under it must stop at once."""
        what = f"lease keepalive {lease_id:x}"
        return self._call("/lease/keepalive", {"ID": str(lease_id)}, what, _live_ttl, "TTL", write=False, streamed=True)

    def lease_revoke(self, lease_id: int) -> None:
        """End the lease now, deleting its keys; ``EtcdLeaseNotFound`` if it was gone already."""
        self._call("/lease/revoke", {"ID": str(lease_id)}, f"lease revoke {lease_id:x}", _ignore, write=True)

    def lease_time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseInfo:
        """The lease's remaining and granted TTL (and with ``keys`` the keys it holds);
        ``EtcdLeaseNotFound`` when it has expired or was revoked."""
        what = f"lease time-to-live {lease_id:x}"
        return self._call("/lease/timetolive", {"ID": str(lease_id), "keys": keys}, what, _lease_info, write=False)

    # -- watches ----------------------------------------------------------------------------
    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        prefix: bool = False,
        start_revision: int = 0,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> Watch:
        """Watch the key, the keys in ``[key, range_end)``, or with ``prefix`` every key
        starting with ``key``, from ``start_revision`` (0: changes after this call). Returns
        once etcd has created the watch (within the client's deadline); iterate over the
        result for ``WatchEvent``s and ``close()`` it from any thread to stop. ``timeout`` is
        the longest wait for the next message, after which the iteration ends with
        ``timed_out`` set; None waits until ``close()``. A paused member cannot be told from
        a quiet key, so a coordinator should pass a timeout and watch again from
        ``next_revision``."""
        create: dict[str, Any] = {"key": b64(key)}
        end = prefix_range_end(key) if prefix else range_end
        if end:
            create["range_end"] = b64(end)
        if start_revision:
            create["start_revision"] = str(start_revision)
        if prev_kv:
            create["prev_kv"] = True
        return open_watch(self._conn, create, f"watch {key!r}", timeout, start_revision)


def _ignore(data: dict[str, Any]) -> None:
    return None


def _lease_grant(data: dict[str, Any]) -> LeaseGrant:
    return LeaseGrant(as_int(data, "ID"), as_int(data, "TTL"))


def _live_ttl(data: dict[str, Any], field: str) -> int:
    """A lease's TTL; etcd says a lease is gone with TTL 0 (keepalive) or -1 (time-to-live)."""
    ttl = as_int(data, field)
    if ttl <= 0:
        raise EtcdLeaseNotFound("the lease has expired or was revoked")
    return ttl


def _lease_info(data: dict[str, Any]) -> LeaseInfo:
    keys = tuple(as_bytes({"k": k}, "k") for k in data.get("keys", ()))
    return LeaseInfo(as_int(data, "ID"), _live_ttl(data, "TTL"), as_int(data, "grantedTTL"), keys)
