"""Every error failover raises on purpose, drawn in one place.

    FailoverError                   root; carries the exit code the command returns
    ├── UsageError         (exit 2) bad usage: unknown region, bad flag value, missing secret
    │   └── PolicyError    (exit 2) the policy file is malformed; names the file and field path
    ├── ApiError           (exit 1) an admin API request refused; carries the HTTP status
    │   └── AuthError      (exit 2) a missing or wrong bearer token (HTTP 401)
    ├── StoreError         (exit 1) the state store is unreachable, refused a write, or answered
    │                               with something we do not recognise (never "act anyway")
    ├── AdapterError       (exit 1) a provider refused, timed out or was unreachable
    │   ├── LostRace       (exit 1) the fencing marker moved between read and apply
    │   ├── VerifyError    (exit 1) the change was accepted but reading back disagrees
    │   └── AwsError       (exit 1) an AWS API refusal, with its error code
    ├── AlertError         (exit 1) an alert could not be delivered (never fatal to failover)
    │   └── Retryable      (exit 1) ... in a way that may pass if tried again
    └── ProxyError         (exit 1) the embedded proxy could not start (a busy port, a worker)

Messages are written for the operator: they name what is wrong and, where it helps, what
to do. No traceback is shown for these; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FailoverError(Exception):
    exit_code = 1


class UsageError(FailoverError):
    exit_code = 2


class PolicyError(UsageError):
    """The policy file is invalid. ``problems`` holds ``(field path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(f"invalid policy {source}:\n  " + "\n  ".join(lines))


class ApiError(FailoverError):
    """An admin API request that is refused: ``status`` is the HTTP answer, ``problems`` the
    fields at fault (``{"field": ..., "message": ...}``)."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


class AuthError(ApiError):
    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(401, message)


class StoreError(FailoverError):
    pass


class AdapterError(FailoverError):
    pass


class LostRace(AdapterError):
    """Someone else changed the ownership marker after we read it; we wrote nothing."""


class VerifyError(AdapterError):
    pass


class AwsError(AdapterError):
    """An AWS API refusal; ``code`` is the AWS error code (``InvalidChangeBatch``...)."""

    def __init__(self, message: str, code: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation


class AlertError(FailoverError):
    pass


class Retryable(AlertError):
    """Delivery failed in a way that may pass if tried again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProxyError(FailoverError):
    """The embedded proxy could not start (a busy port, a worker that did not come up)."""
