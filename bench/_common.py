"""What the benchmarks with two regions of loopback gateways share: the regions, waiting on a
condition with a deadline, and percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DOMAIN = "api.example.com"
EAST = {"east-a": "127.0.0.11", "east-b": "127.0.0.12"}
WEST = {"west-a": "127.0.0.21", "west-b": "127.0.0.22"}


def two_regions() -> list[dict[str, Any]]:
    """The policy's ``regions``: east (priority 10) and west (20), two gateways each."""
    return [
        {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
        {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
    ]


def wait(condition: Callable[[], object], deadline: float, what: str, step: float = 0.01) -> float:
    """Poll until ``condition()`` is true; the monotonic time it became so. Bounded by ``deadline``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise TimeoutError(f"{what} not within {deadline}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
