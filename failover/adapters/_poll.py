"""Waiting, with a deadline, for a provider to finish what it accepted (route53, clouddns, eip)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from failover.errors import FailoverError

T = TypeVar("T")


def poll_until(
    seen: T,
    look: Callable[[], T],
    ready: Callable[[T], bool],
    *,
    wait: float,
    sleep: Callable[[float], None],
    first_delay: float,
    max_delay: float,
    timed_out: Callable[[T], FailoverError],
) -> T:
    """Until ``ready(seen)``: nap (doubling from ``first_delay`` up to ``max_delay``), then
    ``seen = look()``. Past ``wait`` seconds, raise ``timed_out(seen)``, which names the last
    state seen. Returns the state that was ready."""
    deadline = time.monotonic() + wait
    delay = first_delay
    while not ready(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out(seen)
        sleep(min(delay, remaining))
        delay = min(delay * 2, max_delay)
        seen = look()
    return seen
