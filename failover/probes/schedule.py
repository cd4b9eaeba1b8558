"""One timer for thousands of short periodic jobs: the daemon's probes.

apscheduler keeps a job store, a thread-safe wakeup and an executor per job, and fires each
job through them: with 2,000 no-op jobs every 500 ms (4,000 runs/s) that cost about 120 us of
CPU per run, half a core before any probing, against about 25 us here; and under load its
misfire handling skipped runs ("maximum number of running instances reached") without saying
how late they were. Here:

* one heap of ``(due, seq, job)`` and one loop timer armed for the earliest due time; a tick
  starts every job due within ``SLACK`` (jobs start up to 5 ms early rather than one loop turn
  each); each run is its own task, so a slow or hanging target delays nobody;
* at most ``burst`` runs start per turn of the event loop; the rest wait for the next turn.
  While there is a backlog, ``burst`` halves when a turn of the loop cost more than
  ``TURN_TARGET`` of CPU and grows back while turns are cheap (AIMD). When the core is the
  limit (a busy machine, more targets than it can probe), starts slow down: runs are late and
  then missed, both counted, instead of piling up until every probe's own timeout fires before
  its answer is read (false failures, and verdicts that flap); when the network is the limit,
  turns stay cheap and nothing is held back;
* first runs spread evenly, at most ``START_RATE`` a second and over one interval at most (job
  *i* of the *n* sharing an interval first runs at ``start + min(interval, n / START_RATE) *
  i / n``): no thundering herd at start, and a small policy still learns every verdict at once;
* no overlap per job: a job goes back into the heap only when its run ends, due at the next
  step of its own grid (``first + k * interval``);
* a step is run on time or not at all: one more than ``LATE`` of an interval late (when it
  comes up, or when the run before it ends) is missed, counted, and the job waits for its next
  step; a job's first run is never skipped, so every target gets a verdict as soon as it can.
  When the core cannot do all that is asked, targets are probed on their grid but less often,
  rather than all of them late; the lag of what runs stays under a fifth of an interval;
* a run still going ``deadline`` seconds after it started is cancelled and reported
  (``on_overrun``), so a probe that ignores its own timeout cannot stall its target forever;
* lag (start minus due) is recorded for every run; ``stats()`` gives p50/p99/max over the last
  ``LAG_WINDOW`` runs, with runs, missed steps and overruns since start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

log = logging.getLogger("failover.schedule")

K = TypeVar("K", bound=Hashable)

LAG_WINDOW = 8192  # runs kept for the lag percentiles
SLACK = 0.005  # a job due this soon starts with the current tick: one timer per few ms, not one per job
SWEEP = 0.25  # how often runs are checked against their deadline
LATE = 0.2  # of an interval: a step later than this is missed rather than run
START_RATE = 1000.0  # first runs per second at most, while they fit in one interval
BURST_MIN, BURST_MAX = 4, 256  # runs started per turn of the event loop: the bounds of ``burst``
TURN_TARGET = 0.02  # CPU seconds: a costlier turn of the loop halves ``burst``; a cheap one raises it


class _Job(Generic[K]):
    __slots__ = ("deadline", "due", "interval", "key", "ran", "removed", "started", "task")

    def __init__(self, key: K, interval: float, deadline: float) -> None:
        self.key = key
        self.interval = interval
        self.deadline = deadline
        self.due = 0.0
        self.started = 0.0
        self.ran = False
        self.removed = False  # left in the heap (no O(n) delete): dropped when it comes up
        self.task: asyncio.Task[None] | None = None


class Schedule(Generic[K]):
    """Runs ``run(key)`` every ``interval`` for each key added, from ``start()`` until ``aclose()``."""

    def __init__(
        self,
        run: Callable[[K], Coroutine[Any, Any, None]],
        on_overrun: Callable[[K, float], None] | None = None,
    ) -> None:
        self._run = run
        self._on_overrun = on_overrun
        self._jobs: list[_Job[K]] = []
        self._by_key: dict[K, _Job[K]] = {}
        self._heap: list[tuple[float, int, _Job[K]]] = []
        self._seq = itertools.count()
        self._running: set[_Job[K]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._timer_at = math.inf
        self._sweeper: asyncio.TimerHandle | None = None
        self._lags = array("d", bytes(8 * LAG_WINDOW))
        self._closed = False
        self.burst = 64
        self._turn_cpu: float | None = None  # the loop thread's CPU time when a backlog turn began
        self.runs = 0
        self.missed = 0
        self.overruns = 0

    def add(self, key: K, interval: float, deadline: float) -> None:
        """Before ``start()``: first runs are spread. After it (a gateway found by discovery):
        the job's first run is due at once, and its grid starts there."""
        if interval <= 0 or deadline <= 0:
            raise ValueError(f"{key!r}: interval and deadline must be positive")
        if key in self._by_key:
            raise ValueError(f"{key!r} is already scheduled")
        job = _Job(key, interval, deadline)
        self._jobs.append(job)
        self._by_key[key] = job
        if self._loop is not None and not self._closed:
            job.due = self._loop.time()
            heapq.heappush(self._heap, (job.due, next(self._seq), job))
            if job.due < self._timer_at:
                self._arm(job.due)

    def remove(self, key: K) -> None:
        """No more runs of ``key``; a run in flight ends on its own (its result still counts).
        An unknown key is ignored."""
        job = self._by_key.pop(key, None)
        if job is None:
            return
        job.removed = True
        self._jobs.remove(job)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        by_interval: dict[float, list[_Job[K]]] = defaultdict(list)
        for job in self._jobs:
            by_interval[job.interval].append(job)
        for interval, jobs in by_interval.items():
            spread = min(interval, len(jobs) / START_RATE)  # a few jobs start at once: nothing to spread
            for rank, job in enumerate(jobs):
                job.due = now + spread * rank / len(jobs)
                self._heap.append((job.due, next(self._seq), job))
        heapq.heapify(self._heap)
        if self._heap:
            self._arm(self._heap[0][0])
        self._sweeper = loop.call_later(SWEEP, self._sweep)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stats(self) -> dict[str, float | int]:
        """Runs, missed steps and overruns since start; lag percentiles (ms) over the last runs."""
        lags = sorted(self._lags[: min(self.runs, LAG_WINDOW)])

        def pct(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1) if lags else 0.0

        return {
            "jobs": len(self._jobs),
            "runs": self.runs,
            "missed": self.missed,
            "overruns": self.overruns,
            "in_flight": len(self._running),
            "burst": self.burst,
            "lag_p50_ms": pct(0.50),
            "lag_p99_ms": pct(0.99),
            "lag_max_ms": round(lags[-1] * 1000, 1) if lags else 0.0,
        }

    async def aclose(self) -> None:
        """Stop starting runs; cancel the ones in flight and wait for them to end."""
        self._closed = True
        for handle in (self._timer, self._sweeper):
            if handle is not None:
                handle.cancel()
        tasks = [job.task for job in self._running if job.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the loop's side ------------------------------------------------------------------------
    def _arm(self, at: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._tick)

    def _next_turn(self, now: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = now
        self._timer = self._loop.call_soon(self._tick)
        self._turn_cpu = time.thread_time()

    def _tick(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self._closed:
            return
        assert self._loop is not None
        now = self._loop.time()
        if self._turn_cpu is not None:  # a backlog: the core is the limit, or was for a moment
            # CPU time, not wall time: a turn made long by another process or by the collector is
            # no reason to start fewer; a turn made long by our own runs in flight is.
            turn = time.thread_time() - self._turn_cpu
            if turn > TURN_TARGET:
                self.burst = max(BURST_MIN, self.burst // 2)
            elif turn < TURN_TARGET / 4:
                self.burst = min(BURST_MAX, self.burst + BURST_MIN)
            self._turn_cpu = None
        else:  # on time, no backlog: ready for the next one
            self.burst = min(BURST_MAX, self.burst + BURST_MIN)
        heap, launched = self._heap, 0
        while heap and heap[0][0] <= now + SLACK and launched < self.burst:
            job = heapq.heappop(heap)[2]
            if job.removed:
                continue
            if job.ran and now - job.due > job.interval * LATE:  # on time or not at all (a first run: always)
                self._requeue(job, now, ran=False)
                continue
            self._launch(job, now)
            launched += 1
        if heap and heap[0][0] <= now + SLACK:  # more are due: after the loop has read its sockets
            self._next_turn(now)
        elif heap:
            self._arm(heap[0][0])

    def _launch(self, job: _Job[K], now: float) -> None:
        assert self._loop is not None
        self._lags[self.runs % LAG_WINDOW] = max(0.0, now - job.due)
        self.runs += 1
        job.started, job.ran = now, True
        job.task = self._loop.create_task(self._run(job.key))
        job.task.add_done_callback(lambda task: self._ended(job, task))
        self._running.add(job)

    def _ended(self, job: _Job[K], task: asyncio.Task[None]) -> None:
        self._running.discard(job)
        job.task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduled run for %r failed", job.key, exc_info=task.exception())
        if self._closed or job.removed:
            return
        assert self._loop is not None
        self._requeue(job, self._loop.time(), ran=True)

    def _requeue(self, job: _Job[K], now: float, ran: bool) -> None:
        """Due at the next step of its grid that is not more than ``LATE`` of an interval gone;
        the steps before it are missed (the current one too when it did not run)."""
        steps = max(1, math.ceil((now - job.due - job.interval * LATE) / job.interval))
        self.missed += steps - 1 if ran else steps
        job.due += steps * job.interval
        heapq.heappush(self._heap, (job.due, next(self._seq), job))
        if job.due < self._timer_at:
            self._arm(job.due)

    def _sweep(self) -> None:
        if self._closed:
            return
        assert self._loop is not None
        now = self._loop.time()
        for job in [j for j in self._running if now - j.started > j.deadline]:
            if job.task is not None and not job.task.cancelling() and job.task.cancel():
                self.overruns += 1
                if self._on_overrun is not None and not job.removed:
                    self._on_overrun(job.key, now - job.started)
        self._sweeper = self._loop.call_later(SWEEP, self._sweep)
