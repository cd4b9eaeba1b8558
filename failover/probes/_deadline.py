"""Timeouts for thousands of short probes: one coarse timer per event loop instead of one per probe.

``asyncio.timeout`` arms and cancels a loop timer for every probe, which cost more than a tenth
of a plain-HTTP probe's CPU. Here each probe appends its deadline to a queue (one per timeout
value, so each queue stays in deadline order) and one check every ``TICK`` seconds cancels the
probes still running past theirs. A timeout fires up to ``TICK`` late; the probe reports the
time it really took.

A probe whose answer is in (``answer`` done) is never cancelled, even past its deadline: when
the loop was busy (other work, a collection, a crowded core) an answer that arrived in time is
read late, and the probe has not run again to finish. A busy prober must not blame its targets
for its own delay.

    watch = watch_deadline(timeout, answer)
    try:
        ...  # awaits
    except asyncio.CancelledError:
        if not watch.absorb():  # not our deadline, or someone else cancels too: pass it on
            raise
        ...  # timed out
    finally:
        watch.finished = True
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import deque
from typing import Any

TICK = 0.01


class Watch:
    __slots__ = ("answer", "deadline", "finished", "fired", "task")

    def __init__(self, deadline: float, task: asyncio.Task[object], answer: asyncio.Future[Any] | None) -> None:
        self.deadline = deadline
        self.task = task
        self.answer = answer
        self.fired = False
        self.finished = False

    def due(self) -> bool:
        """Still waiting for its answer: cancel it."""
        return not (self.finished or self.task.done() or (self.answer is not None and self.answer.done()))

    def absorb(self) -> bool:
        """After a CancelledError: True when it was this deadline alone (the cancel is taken back)."""
        return self.fired and self.task.uncancel() == 0


class _Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, deque[Watch]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = math.inf

    def watch(self, timeout: float, task: asyncio.Task[object], answer: asyncio.Future[Any] | None) -> Watch:
        watch = Watch(self._loop.time() + timeout, task, answer)
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(watch)
        if watch.deadline + TICK < self._handle_at:  # the first, or shorter than any waiting so far
            self._arm(watch.deadline)
        return watch

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._handle_at = self._loop.call_at(at, self._check), at

    def _check(self) -> None:
        self._handle, self._handle_at = None, math.inf
        now = self._loop.time()
        for queue in self._queues.values():
            while queue and queue[0].deadline <= now:
                watch = queue.popleft()
                if watch.due():
                    watch.fired = True
                    watch.task.cancel()
        pending = [queue[0].deadline for queue in self._queues.values() if queue]
        if pending:
            self._arm(max(min(pending), now + TICK))


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()


def watch_deadline(timeout: float, answer: asyncio.Future[Any] | None = None) -> Watch:
    """Cancel the current task ``timeout`` seconds from now (up to ``TICK`` later) unless it has
    set ``finished`` or ``answer`` is done by then."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:
        raise RuntimeError("a probe runs inside a task")
    deadlines = _per_loop.get(loop)
    if deadlines is None:
        deadlines = _per_loop[loop] = _Deadlines(loop)
    return deadlines.watch(timeout, task, answer)
