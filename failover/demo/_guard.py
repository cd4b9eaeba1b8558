"""Deadlines for ``failover demo``: every wait, every shutdown step and the process itself end.

* ``Progress`` holds the whole demo's budget and the phase and step running now: what a
  timeout names. Each phase's wait is clipped so the shutdown still fits in the budget.
* ``wait_until`` polls a condition; a miss raises ``DemoTimeout`` naming the phase, what it
  waited for and what it saw instead.
* ``within`` (start-up: a miss is fatal) and ``ShutdownSteps`` (a miss is logged by name and
  skipped) bound each await. Neither uses ``asyncio.wait_for``: on a timeout it waits for the
  cancelled step to finish, so a step that swallows its cancellation would hang it again.
* ``run_loop`` is ``asyncio.run`` with a bounded teardown: leftover tasks get a few seconds
  after their cancel, and the default executor's threads are not joined.
* ``exit_past_stuck_threads`` ends the process when a non-daemon thread is still running at
  the end (the interpreter would join it forever at exit).
* ``Watchdog`` is the last resort, a thread that needs no event loop: when the budget is
  gone it prints the phase, dumps every thread's stack and exits 1. ``run_demo`` is the
  process's last act (``failover demo``), so it is never disarmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class DemoTimeout(Exception):
    """A demo phase missed its deadline; the message says what it was waiting for."""


def warn(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


@dataclass
class Progress:
    budget: float
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    step: str = ""

    def enter(self, phase: str) -> None:
        self.phase, self.step = phase, ""

    def left(self) -> float:
        return self.started + self.budget - time.monotonic()

    def deadline(self, wanted: float, reserve: float) -> float:
        """``wanted`` seconds, or fewer so that ``reserve`` seconds of the budget remain."""
        return max(0.0, min(wanted, self.left() - reserve))

    def where(self) -> str:
        return f'phase "{self.phase}"' + (f", {self.step}" if self.step else "")


async def wait_until(
    progress: Progress, what: str, condition: Callable[[], bool], seen: Callable[[], str], deadline: float
) -> float:
    """Poll ``condition`` (at least once) until true; return the monotonic time it was seen true."""
    progress.step = f"waiting for {what}"
    end = time.monotonic() + deadline
    while True:
        if condition():
            progress.step = ""
            return time.monotonic()
        if time.monotonic() >= end:
            raise DemoTimeout(f"{progress.phase}: waiting for {what}: {seen()} after {deadline:.3g}s")
        await asyncio.sleep(0.02)


async def _bounded(step: Awaitable[T], timeout: float) -> tuple[bool, asyncio.Future[T]]:
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.0))
    except asyncio.CancelledError:  # Ctrl-C: the step goes too
        task.cancel()
        raise
    if not done:
        task.cancel()  # not awaited: a task that ignores it must not hold us
    return bool(done), task


async def within(progress: Progress, name: str, step: Awaitable[T], timeout: float) -> T:
    """Await a start-up step; one that is not done in ``timeout`` seconds fails the demo."""
    progress.step = name
    finished, task = await _bounded(step, timeout)
    if not finished:
        raise DemoTimeout(f"{progress.phase}: {name}: not done after {timeout:.3g}s")
    progress.step = ""
    return task.result()


async def shutdown_step(progress: Progress, name: str, step: Callable[[], Awaitable[object]], timeout: float) -> bool:
    """Run a shutdown step; an overrun or a failure is reported and skipped. True: it finished."""
    progress.step = name
    try:
        finished, task = await _bounded(step(), timeout)
    except Exception as exc:  # raised before its first await
        warn(f"shutdown: {name} failed: {exc!r}")
        return False
    if not finished:
        warn(f"shutdown: {name}: still running after {timeout:.3g}s; skipped")
        return False
    if task.cancelled():
        warn(f"shutdown: {name}: cancelled")
        return False
    if (error := task.exception()) is not None:
        warn(f"shutdown: {name} failed: {error!r}")
        return False
    return True


class ShutdownSteps:
    """Steps pushed as things start, run newest first, each within its own deadline."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.unfinished: set[str] = set()  # names of the steps that overran or failed
        self._steps: list[tuple[str, Callable[[], Awaitable[object]], float]] = []

    def push(self, name: str, step: Callable[[], Awaitable[object]], timeout: float) -> None:
        self._steps.append((name, step, timeout))

    async def run(self) -> None:
        self.progress.enter("shutting down")
        while self._steps:
            name, step, timeout = self._steps.pop()
            if not await shutdown_step(self.progress, name, step, timeout):
                self.unfinished.add(name)


def run_loop(main: Coroutine[Any, Any, T], teardown: float = 3.0) -> T:
    """Run ``main`` in a new event loop; Ctrl-C cancels it (its ``finally`` runs). Leftover
    tasks get a second to end, then ``teardown`` seconds after their cancel; threads still
    running are left to ``exit_past_stuck_threads``."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="demo")
    loop.set_default_executor(executor)
    task = loop.create_task(main, name="demo")
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    # Outside the main thread this fails and Ctrl-C stays a plain KeyboardInterrupt.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
            leftovers = asyncio.all_tasks(loop)
            if leftovers:  # in-flight work (a probe) first gets a second to end by itself
                _, leftovers = loop.run_until_complete(asyncio.wait(leftovers, timeout=1.0))
            for leftover in leftovers:
                leftover.cancel()
            if leftovers:
                _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=teardown))
                for stuck in pending:
                    warn(f"shutdown: task {stuck.get_name()} ignored its cancel for {teardown:g}s; left behind")
            closing = loop.create_task(loop.shutdown_asyncgens())
            loop.run_until_complete(asyncio.wait({closing}, timeout=1.0))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()


def exit_past_stuck_threads(code: int, grace: float = 2.0) -> None:
    """Return when every non-daemon thread ends within ``grace`` seconds; otherwise name them
    and end the process with ``code`` now (the interpreter would wait for them forever)."""
    end = time.monotonic() + grace
    stuck = []
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, end - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        warn(f"shutdown: thread(s) {', '.join(stuck)} still running after {grace:g}s; exiting without them")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Watchdog:
    """Ends the process if it is still running ``progress.budget`` seconds after the demo's start,
    even with the event loop blocked: prints the phase, dumps every thread's stack, exits 1.
    Never disarmed: it also covers the interpreter's exit (atexit handlers, thread joins)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._thread = threading.Thread(target=self._watch, name="demo-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        time.sleep(max(self.progress.left(), 0.0))
        # Straight to the file descriptor: the blocked thread may hold sys.stderr's or sys.stdout's lock.
        message = (
            f"demo: still in {self.progress.where()} when the whole demo's {self.progress.budget:g}s budget "
            "ran out; the stack of every thread follows\n"
        )
        os.write(sys.stderr.fileno(), message.encode())
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(1)
