"""Probe deadlines on one coarse timer: each fires at its own time, a finished probe is left
alone, and a cancel that is not the deadline's own is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from failover.probes._deadline import watch_deadline


async def sleeper(timeout: float, naps: float = 10.0) -> float:
    """Sleep under a deadline; return how long it took when the deadline cut it short."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    watch = watch_deadline(timeout)
    try:
        await asyncio.sleep(naps)
    except asyncio.CancelledError:
        if not watch.absorb():
            raise
        return loop.time() - start
    finally:
        watch.finished = True
    return -1.0


async def test_a_short_deadline_set_after_a_long_one_fires_at_its_own_time():
    long = asyncio.ensure_future(sleeper(5.0))
    await asyncio.sleep(0.01)
    short = await sleeper(0.1)
    assert 0.1 <= short < 2.0  # not held back until the 5 s one
    assert not long.done()
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long


async def test_a_probe_that_finished_is_not_cancelled_later():
    assert await sleeper(0.05, naps=0.0) == -1.0
    await asyncio.sleep(0.15)  # past the deadline: nothing is cancelled in this task
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_a_cancel_from_outside_is_passed_on_even_at_the_deadline():
    task = asyncio.ensure_future(sleeper(0.0))
    await asyncio.sleep(0)  # it has armed its deadline; both cancels now land in the same turn
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_deadline_needs_a_task():
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[str] = loop.create_future()

    def callback() -> None:  # a plain callback runs outside any task
        try:
            watch_deadline(1.0)
            outcome.set_result("armed")
        except RuntimeError as exc:
            outcome.set_result(str(exc))

    loop.call_soon(callback)
    assert "inside a task" in await outcome
