"""Every error failover raises on purpose, drawn in one place.

    FailoverError                 root; carries the exit code the command returns
    ├── UsageError       (exit 2) bad usage: unknown region, bad flag value, missing secret
    │   └── PolicyError  (exit 2) the policy file is malformed; names the file and field path
    ├── AuthError        (exit 2) a bad or missing API token
    ├── ProbeError       (exit 1) a probe could not even be attempted (bad target)
    ├── StoreError       (exit 1) the state store is unreachable or refused a write
    ├── AdapterError     (exit 1) a provider refused, timed out or was unreachable
    │   ├── LostRace     (exit 1) the fencing marker moved between read and apply
    │   └── VerifyError  (exit 1) the change was accepted but reading back disagrees
    └── AlertError       (exit 1) an alert could not be delivered (never fatal to failover)

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


class AuthError(FailoverError):
    exit_code = 2


class ProbeError(FailoverError):
    pass


class StoreError(FailoverError):
    pass


class AdapterError(FailoverError):
    pass


class LostRace(AdapterError):
    """Someone else changed the ownership marker after we read it; we wrote nothing."""


class VerifyError(AdapterError):
    pass


class AlertError(FailoverError):
    pass
