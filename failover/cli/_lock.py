"""One ``failover once`` at a time per sqlite store: two cron runs racing on one store would
probe, decide and apply twice. An OS lock (``flock``) on ``<db>.lock`` beside the database,
taken without waiting and held for the run; the kernel drops it when the process ends, however
it ends, so a killed run leaves nothing to clean up. The holder writes its pid and host into
the file so that the one refused can say who holds it.

A shared (etcd) store needs none of this: only the leader applies, and a cron run campaigns
for the leadership like a daemon does."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from failover.errors import FailoverError
from failover.policy import Policy


def lock_path(policy: Policy) -> Path | None:
    """Where the run lock of this policy's store lives; None for a store that needs none."""
    db = policy.state.sqlite_path
    return Path(db + ".lock") if db is not None else None


@contextmanager
def exclusive_run(policy: Policy, what: str = "failover once") -> Iterator[None]:
    """Hold the store's run lock for the block, or raise at once (exit 1) naming the holder."""
    path = lock_path(policy)
    if path is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FailoverError(f"cannot open the run lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FailoverError(
                f"another {what} ({_holder(fd)}) is running against the store {policy.state.sqlite_path}; "
                f"not starting a second one (the lock is {path}; it goes when that process ends)"
            ) from None
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (deleting it would race the next run)


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote; it may not have written yet."""
    fields = dict(part.split("=", 1) for part in os.pread(fd, 200, 0).decode(errors="replace").split() if "=" in part)
    if "pid" not in fields:
        return "pid not written yet"
    return f"pid {fields['pid']} on {fields.get('host', '?')} since {fields.get('since', '?')}"
