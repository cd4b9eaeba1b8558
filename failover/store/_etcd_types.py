"""Typed requests and results of the etcd client, and their JSON forms on etcd's gateway.

On the wire keys and values are base64 and int64s are decimal strings (protobuf's JSON
mapping); here they are ``bytes`` and ``int``. Keys and values are ``bytes`` throughout:
callers encode their own names once, so no text encoding is guessed here.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CompareTarget = Literal["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]
CompareOp = Literal["==", "!=", "<", ">"]
SortOrder = Literal["NONE", "ASCEND", "DESCEND"]
SortTarget = Literal["KEY", "VERSION", "CREATE", "MOD", "VALUE"]

_RESULT_NAMES = {"==": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}
_TARGET_FIELDS = {
    "VERSION": "version",
    "CREATE": "create_revision",
    "MOD": "mod_revision",
    "VALUE": "value",
    "LEASE": "lease",
}


def prefix_range_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``
    (b"\\0", meaning "to the end", for an empty or all-0xff prefix)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyValue:
    """``create_revision`` is the revision that created the key (it stays until the key is
    deleted: a fencing token that only grows), ``version`` counts writes since then, ``lease``
    is 0 when the key has none."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class RangeResult:
    """``count`` is how many keys are in the range (not only those returned); ``more`` says a
    ``limit`` cut the answer short; ``revision`` is the store's revision the read saw."""

    kvs: tuple[KeyValue, ...]
    revision: int
    count: int
    more: bool


@dataclass(frozen=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None


@dataclass(frozen=True)
class DeleteResult:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...]


OpResult = RangeResult | PutResult | DeleteResult


@dataclass(frozen=True)
class TxnResult:
    """``responses`` answer the ops of the branch that ran (``success`` if ``succeeded``,
    else ``failure``), in order."""

    succeeded: bool
    revision: int
    responses: tuple[OpResult, ...]


@dataclass(frozen=True)
class LeaseGrant:
    id: int
    ttl: int


@dataclass(frozen=True)
class LeaseInfo:
    """``ttl`` is the remaining time in seconds, ``granted_ttl`` the TTL it was granted with."""

    id: int
    ttl: int
    granted_ttl: int
    keys: tuple[bytes, ...]


@dataclass(frozen=True)
class WatchEvent:
    """A DELETE's ``kv`` holds only the key and the deleting ``mod_revision``."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None


# -- requests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RangeOp:
    """Read ``key`` (``range_end`` empty) or the keys in ``[key, range_end)``. ``revision`` 0
    reads the latest; ``serializable`` reads the member's local copy, which may be stale but
    answers without a quorum."""

    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = "NONE"
    sort_target: SortTarget = "KEY"
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(self.key)}
        if self.range_end:
            body["range_end"] = b64(self.range_end)
        if self.limit:
            body["limit"] = str(self.limit)
        if self.revision:
            body["revision"] = str(self.revision)
        if self.sort_order != "NONE":
            body["sort_order"], body["sort_target"] = self.sort_order, self.sort_target
        for flag in ("serializable", "keys_only", "count_only"):
            if getattr(self, flag):
                body[flag] = True
        return body


@dataclass(frozen=True)
class PutOp:
    """Write ``key``; with ``lease`` the key is deleted when that lease ends."""

    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(self.key), "value": b64(self.value)}
        if self.lease:
            body["lease"] = str(self.lease)
        if self.prev_kv:
            body["prev_kv"] = True
        return body


@dataclass(frozen=True)
class DeleteOp:
    """Delete ``key`` (``range_end`` empty) or the keys in ``[key, range_end)``."""

    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(self.key)}
        if self.range_end:
            body["range_end"] = b64(self.range_end)
        if self.prev_kv:
            body["prev_kv"] = True
        return body


Op = RangeOp | PutOp | DeleteOp
_OP_FIELDS = {RangeOp: "request_range", PutOp: "request_put", DeleteOp: "request_delete_range"}


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: ``<target of key> <op> <operand>``. A key that does
    not exist has version, create and mod revision 0 (``Compare.create(k, "==", 0)`` is "k
    does not exist"); a VALUE or LEASE compare on a missing key is false."""

    key: bytes
    target: CompareTarget
    op: CompareOp
    operand: int | bytes
    range_end: bytes = b""

    def __post_init__(self) -> None:
        if self.op not in _RESULT_NAMES or self.target not in _TARGET_FIELDS:
            raise ValueError(f"bad compare: {self.target} {self.op}")
        if (self.target == "VALUE") != isinstance(self.operand, bytes):
            raise TypeError(f"a {self.target} compare takes {'bytes' if self.target == 'VALUE' else 'an int'}")

    @classmethod
    def version(cls, key: bytes, op: CompareOp, version: int) -> Compare:
        return cls(key, "VERSION", op, version)

    @classmethod
    def create(cls, key: bytes, op: CompareOp, revision: int) -> Compare:
        return cls(key, "CREATE", op, revision)

    @classmethod
    def mod(cls, key: bytes, op: CompareOp, revision: int) -> Compare:
        return cls(key, "MOD", op, revision)

    @classmethod
    def value(cls, key: bytes, op: CompareOp, value: bytes) -> Compare:
        return cls(key, "VALUE", op, value)

    @classmethod
    def lease(cls, key: bytes, op: CompareOp, lease_id: int) -> Compare:
        return cls(key, "LEASE", op, lease_id)

    def wire(self) -> dict[str, Any]:
        operand = b64(self.operand) if isinstance(self.operand, bytes) else str(self.operand)
        body = {
            "key": b64(self.key),
            "target": self.target,
            "result": _RESULT_NAMES[self.op],
            _TARGET_FIELDS[self.target]: operand,
        }
        if self.range_end:
            body["range_end"] = b64(self.range_end)
        return body


def txn_wire(compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> dict[str, Any]:
    return {
        "compare": [c.wire() for c in compare],
        "success": [{_OP_FIELDS[type(op)]: op.wire()} for op in success],
        "failure": [{_OP_FIELDS[type(op)]: op.wire()} for op in failure],
    }


# -- decoding: any missing or malformed field raises ValueError, KeyError or TypeError ----------
def as_int(data: Mapping[str, Any], name: str) -> int:
    """An int64 field: a decimal string (or a number), absent when 0."""
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{name} is {type(value).__name__}")
    return int(value)


def as_bytes(data: Mapping[str, Any], name: str) -> bytes:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise TypeError(f"{name} is {type(value).__name__}")
    return base64.b64decode(value, validate=True)


def revision_of(data: Mapping[str, Any]) -> int:
    return as_int(data["header"], "revision")


def key_value(data: Mapping[str, Any]) -> KeyValue:
    return KeyValue(
        as_bytes(data, "key"),
        as_bytes(data, "value"),
        as_int(data, "create_revision"),
        as_int(data, "mod_revision"),
        as_int(data, "version"),
        as_int(data, "lease"),
    )


def range_result(data: Mapping[str, Any], revision: int | None = None) -> RangeResult:
    kvs = tuple(key_value(kv) for kv in data.get("kvs", ()))
    return RangeResult(
        kvs,
        revision if revision is not None else revision_of(data),
        as_int(data, "count"),
        bool(data.get("more", False)),
    )


def put_result(data: Mapping[str, Any], revision: int | None = None) -> PutResult:
    prev = data.get("prev_kv")
    return PutResult(revision if revision is not None else revision_of(data), key_value(prev) if prev else None)


def delete_result(data: Mapping[str, Any], revision: int | None = None) -> DeleteResult:
    return DeleteResult(
        revision if revision is not None else revision_of(data),
        as_int(data, "deleted"),
        tuple(key_value(kv) for kv in data.get("prev_kvs", ())),
    )


def txn_result(data: Mapping[str, Any], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
    succeeded = bool(data.get("succeeded", False))
    ops = success if succeeded else failure
    answers = data.get("responses", ())
    if len(answers) != len(ops):
        raise ValueError(f"{len(answers)} responses for {len(ops)} ops")
    revision = revision_of(data)
    results: list[OpResult] = []
    for op, answer in zip(ops, answers, strict=True):
        inner = answer.get(_OP_FIELDS[type(op)].replace("request_", "response_"), {})
        # Every response carries its own header; without one, the transaction's revision.
        at = revision_of(inner) if "header" in inner else revision
        decode = range_result if isinstance(op, RangeOp) else put_result if isinstance(op, PutOp) else delete_result
        results.append(decode(inner, at))
    return TxnResult(succeeded, revision, tuple(results))


def watch_event(data: Mapping[str, Any]) -> WatchEvent:
    kind = data.get("type", "PUT")  # the gateway omits the enum's default, PUT
    if kind not in ("PUT", "DELETE"):
        raise ValueError(f"unknown event type {kind!r}")
    prev = data.get("prev_kv")
    return WatchEvent(kind, key_value(data["kv"]), key_value(prev) if prev else None)
