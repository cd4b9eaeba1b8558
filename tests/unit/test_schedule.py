"""The probe schedule on a real event loop: spread, no overlap, missed steps and lag counted, a
hanging run cancelled at its deadline while the others keep their pace, bursts bounded per turn."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from failover.probes.schedule import BURST_MAX, START_RATE, TURN_TARGET, Schedule


async def until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_first_runs_spread_evenly_over_the_interval():
    loop = asyncio.get_running_loop()
    first: dict[int, float] = {}

    async def run(key: int) -> None:
        first.setdefault(key, loop.time())

    jobs = 1000  # more than START_RATE can start in the interval: spread over all of it
    schedule: Schedule[int] = Schedule(run)
    for key in range(jobs):
        schedule.add(key, 0.5, 1.0)
    start = loop.time()
    schedule.start()
    try:
        await until(lambda: len(first) == jobs)
    finally:
        await schedule.aclose()
    offsets = sorted(t - start for t in first.values())
    tenths = Counter(min(9, int(offset / 0.05)) for offset in offsets)
    assert max(tenths.values()) <= 0.3 * jobs, tenths  # even is a tenth each; a herd would be all in one
    assert offsets[-1] >= 0.4  # the last first run comes near the end of the interval, not at once


async def test_a_few_jobs_start_at_once():
    loop = asyncio.get_running_loop()
    first: dict[int, float] = {}

    async def run(key: int) -> None:
        first.setdefault(key, loop.time())

    schedule: Schedule[int] = Schedule(run)
    for key in range(4):
        schedule.add(key, 10.0, 1.0)
    start = loop.time()
    schedule.start()
    try:
        await until(lambda: len(first) == 4)
    finally:
        await schedule.aclose()
    assert max(first.values()) - start < 4 / START_RATE + 1.0  # not ten seconds spread for four jobs


async def test_runs_of_one_job_never_overlap_and_the_steps_it_misses_are_counted():
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    ended: Counter[str] = Counter()

    async def run(key: str) -> None:
        running[key] += 1
        most[key] = max(most[key], running[key])
        try:
            await asyncio.sleep(0.25 if key == "slow" else 0)
        finally:
            running[key] -= 1
            ended[key] += 1

    schedule: Schedule[str] = Schedule(run)
    schedule.add("slow", 0.1, 5.0)  # each run lasts two and a half intervals
    schedule.add("fast", 0.1, 5.0)
    schedule.start()
    try:
        await until(lambda: ended["slow"] >= 3)
    finally:
        await schedule.aclose()
    assert most["slow"] == 1 and most["fast"] == 1
    assert ended["fast"] >= ended["slow"]  # the slow one held up only itself
    # a run ending 0.25 s after its step lets the next two steps go by: missed, not run late
    # (the last run's end may not have been accounted when the schedule closed)
    assert schedule.missed >= 2 * (ended["slow"] - 1)


async def test_a_hanging_run_is_cancelled_at_its_deadline_and_delays_nobody():
    overran: list[tuple[str, float]] = []
    runs: Counter[str] = Counter()

    async def run(key: str) -> None:
        runs[key] += 1
        if key == "hang":
            await asyncio.sleep(3600)

    schedule: Schedule[str] = Schedule(run, lambda key, seconds: overran.append((key, seconds)))
    schedule.add("hang", 0.1, 0.3)
    schedule.add("steady", 0.05, 1.0)
    schedule.start()
    try:
        await until(lambda: len(overran) >= 2)
    finally:
        await schedule.aclose()
    assert [key for key, _ in overran] == ["hang", "hang"]  # cancelled, then scheduled again
    assert all(seconds >= 0.3 for _, seconds in overran)
    assert schedule.overruns == len(overran) and runs["hang"] >= 2
    assert runs["steady"] >= 3 * runs["hang"]  # kept its own pace meanwhile


async def test_a_run_that_raises_is_logged_and_the_job_goes_on(caplog):
    runs: Counter[str] = Counter()

    async def run(key: str) -> None:
        runs[key] += 1
        raise RuntimeError("probe bug")

    schedule: Schedule[str] = Schedule(run)
    schedule.add("buggy", 0.02, 1.0)
    schedule.start()
    try:
        await until(lambda: runs["buggy"] >= 3)
    finally:
        await schedule.aclose()
    assert "scheduled run for 'buggy' failed" in caplog.text


async def test_late_starts_are_measured_as_lag():
    async def run(key: int) -> None:
        pass

    schedule: Schedule[int] = Schedule(run)
    for key in range(20):
        schedule.add(key, 1.0, 2.0)  # first runs within 20 ms; a step may start up to 200 ms late
    schedule.start()
    time.sleep(0.15)  # hold the event loop: every first run falls due while nothing can run
    try:
        await until(lambda: schedule.runs >= 20)
    finally:
        await schedule.aclose()
    stats = schedule.stats()
    assert stats["lag_max_ms"] >= 100  # the late starts were measured as late
    assert stats["missed"] == 0 and stats["runs"] == 20 and stats["jobs"] == 20 and stats["in_flight"] == 0


async def test_a_first_run_is_never_skipped_however_late():
    first: set[int] = set()

    async def run(key: int) -> None:
        first.add(key)

    schedule: Schedule[int] = Schedule(run)
    for key in range(20):
        schedule.add(key, 0.1, 1.0)  # a later step more than 20 ms late would be missed
    schedule.start()
    time.sleep(0.3)  # every first run is due while the loop is held
    try:
        await until(lambda: len(first) == 20)
        assert schedule.stats()["lag_max_ms"] >= 250  # they ran, late, and were measured so
    finally:
        await schedule.aclose()


async def test_steps_too_late_are_missed_and_counted_not_run_late():
    async def run(key: int) -> None:
        pass

    schedule: Schedule[int] = Schedule(run)
    for key in range(20):
        schedule.add(key, 0.1, 1.0)  # a step more than 20 ms late is missed
    schedule.start()
    try:
        await until(lambda: schedule.runs >= 20)
        time.sleep(0.35)  # hold the loop for three and a half intervals
        before = schedule.runs
        await until(lambda: schedule.runs >= before + 40)
    finally:
        await schedule.aclose()
    stats = schedule.stats()
    assert stats["missed"] >= 3 * 20  # each job's steps during the hold went by, counted
    assert stats["lag_max_ms"] < 300  # and none of them ran 350 ms late afterwards


async def test_a_held_up_loop_starts_what_is_due_in_bursts_not_all_at_once():
    started_before: list[int] = []
    jobs = 200

    async def run(key: int) -> None:
        started_before.append(schedule.runs)  # how many had started when this one first ran

    schedule: Schedule[int] = Schedule(run)
    for key in range(jobs):
        schedule.add(key, 10.0, 5.0)  # first runs spread over 0.2 s; a step may start 2 s late
    schedule.start()
    first_burst = schedule.burst
    time.sleep(0.3)  # hold the loop: every job is due at once
    try:
        await until(lambda: len(started_before) >= jobs)
    finally:
        await schedule.aclose()
    waves = sorted(set(started_before[:jobs]))  # the runs of one burst all began before the next burst
    # a loop held up by something else (a sleep here) is no reason to start fewer than before
    assert first_burst <= waves[0] < jobs
    sizes = [b - a for a, b in zip([0, *waves], waves, strict=False)]
    assert len(waves) >= 2 and all(size <= BURST_MAX for size in sizes)


def burn(seconds: float) -> None:
    """Hold the loop with CPU work, not a sleep: the schedule counts CPU, not wall time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_costly_turns_shrink_the_burst_and_cheap_ones_grow_it_back():
    heavy = [True]

    async def run(key: int) -> None:
        if heavy[0]:
            burn(0.002)  # each run costs the loop 2 ms of CPU: a turn costs as much as its runs

    schedule: Schedule[int] = Schedule(run)
    for key in range(2000):
        schedule.add(key, 2.0, 5.0)  # 1,000 runs/s of 2 ms each: twice what the loop can do
    schedule.start()
    try:
        start = schedule.burst
        await until(lambda: schedule.burst * 0.002 <= TURN_TARGET)  # what one turn's CPU allows
        assert schedule.stats()["burst"] < start // 2
        heavy[0] = False
        await until(lambda: schedule.burst >= start)
    finally:
        await schedule.aclose()


async def test_close_cancels_the_runs_in_flight_and_starts_no_more():
    started: list[int] = []
    cancelled: list[int] = []

    async def run(key: int) -> None:
        started.append(key)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(key)
            raise

    schedule: Schedule[int] = Schedule(run)
    for key in range(5):
        schedule.add(key, 0.05, 100.0)
    schedule.start()
    await until(lambda: len(started) == 5)
    await schedule.aclose()
    assert sorted(cancelled) == [0, 1, 2, 3, 4] and schedule.in_flight == 0
    await asyncio.sleep(0.2)  # several intervals: nothing starts after close
    assert len(started) == 5
