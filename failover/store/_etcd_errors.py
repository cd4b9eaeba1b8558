"""The errors of the etcd client, and how an answer of etcd's JSON gateway maps onto them.

    StoreError                      (failover.errors) every failure of a store call
    └── EtcdError                   etcd answered with an error we do not single out, or with
        │                           something we do not recognise: "unknown, do not act"
        ├── EtcdUnavailable         no endpoint gave an answer within the call's deadline
        │   └── EtcdOutcomeUnknown  a write was sent and no answer came back: it may or may
        │                           not have been applied; read before deciding anything
        ├── EtcdLeaseNotFound       the lease is unknown to etcd (expired or revoked)
        ├── EtcdCompacted           the revision asked for is compacted; re-read, then watch
        │                           from the new revision
        └── EtcdAuthFailed          the user/password were refused, or the user lacks a permission

Messages name the endpoint(s) and what failed; they never contain a password or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.errors import StoreError

# google.golang.org/grpc/codes: what the gateway reports in "code" / "grpc_code".
GRPC_CODES = {
    0: "OK",
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}
UNAVAILABLE, DEADLINE_EXCEEDED = 14, 4
# etcd's api/v3rpc/rpctypes/error.go wording, matched exactly as Patroni does.
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
AUTH_FAILED = "etcdserver: authentication failed, invalid user ID or password"
AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
PERMISSION_DENIED = "etcdserver: permission denied"
# A missing, expired or outdated token: authenticate again, then retry once.
TOKEN_ERRORS = frozenset(
    {
        "etcdserver: invalid auth token",
        "etcdserver: user name is empty",
        "etcdserver: revision of auth store is old",
    }
)


class EtcdError(StoreError):
    """``endpoint`` is the member that answered ('' when the failure spans several);
    ``code`` the gRPC status code etcd gave (None when there was no such answer)."""

    def __init__(self, message: str, endpoint: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.code = code


class EtcdUnavailable(EtcdError):
    pass


class EtcdOutcomeUnknown(EtcdUnavailable):
    pass


class EtcdLeaseNotFound(EtcdError):
    pass


class EtcdCompacted(EtcdError):
    """``compact_revision`` is the oldest revision still kept (0 when etcd did not say)."""

    def __init__(self, message: str, endpoint: str = "", code: int | None = None, compact_revision: int = 0) -> None:
        super().__init__(message, endpoint, code)
        self.compact_revision = compact_revision


class EtcdAuthFailed(EtcdError):
    pass


def grpc_error(body: Any) -> tuple[int | None, str] | None:
    """``(gRPC code, message)`` from an error answer, in either of the gateway's shapes:
    ``{"error": "...", "code": 5}`` (unary calls) or ``{"error": {"grpc_code": 5, "message":
    "..."}}`` (inside a stream, after a 200). None when ``body`` is not an error answer."""
    if not isinstance(body, Mapping) or "error" not in body:
        return None
    error = body["error"]
    if isinstance(error, Mapping):
        code, message = error.get("grpc_code"), error.get("message")
    else:
        code, message = body.get("code"), body.get("message") or error
    return (code if isinstance(code, int) else None), str(message or "").strip()


def describe(code: int | None, message: str) -> str:
    name = GRPC_CODES.get(code, f"code {code}") if code is not None else "no code"
    return f"{message or 'no message'} (gRPC {name})"


def error_for(what: str, endpoint: str, code: int | None, message: str) -> EtcdError:
    """The error for an answer etcd gave with a gRPC error code; anything not singled out
    here is a plain ``EtcdError`` (callers treat it as unknown and do not act)."""
    text = f"etcd {endpoint}: {what} failed: {describe(code, message)}"
    if message == LEASE_NOT_FOUND:
        return EtcdLeaseNotFound(text, endpoint, code)
    if message == COMPACTED:
        return EtcdCompacted(text, endpoint, code)
    if message in (AUTH_FAILED, PERMISSION_DENIED) or message in TOKEN_ERRORS:
        return EtcdAuthFailed(text, endpoint, code)
    return EtcdError(text, endpoint, code)
