"""Delivery that never holds up a failover.

``publish(event)`` only hands the event to the event loop (``call_soon_threadsafe``) and
returns: it is safe from any thread (coordinator listeners run in worker threads) and never
waits on a network. In the loop, each sink has its own lane:

* a bounded queue: when it is full the OLDEST waiting event is dropped and counted
  (``failover_alerts_dropped_total``), so a dead receiver costs memory for ``queue_size``
  events at most and the newest news still goes out;
* de-duplication: an event whose ``key`` was queued within the sink's ``dedupe_window``
  is a repeat and is not sent again (``failover_alerts_deduplicated_total``), unless an event
  in between ``resets`` it (a region that went down, up and down again is news each time);
* one worker that sends events in order, retrying ``Retryable`` failures with exponential
  backoff and jitter (tenacity), waiting at least what a 429's ``Retry-After`` asks; a wait
  longer than ``max_retry_after`` gives the event up instead of stalling the lane.

One slow or dead sink delays no other sink and nothing outside the alerts. Every string of an
event is scrubbed of the secrets the policy names before any sink sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from failover.alerts.abc import Event, Sink
from failover.errors import AlertError, Retryable

if TYPE_CHECKING:
    from failover.metrics import Metrics

log = logging.getLogger("failover.alerts")

REDACTED = "[redacted]"


@dataclass
class Route:
    """A sink and how events reach it."""

    sink: Sink
    events: frozenset[str] | None = None  # None: every event
    dedupe_window: float = 600.0
    retries: int = 5
    queue_size: int = 100


@dataclass
class _Lane:
    route: Route
    queue: asyncio.Queue[Event]
    seen: dict[str, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.route.sink.name


class Redactor:
    """Replaces every occurrence of the given secrets (longest first) in an event's strings."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def event(self, event: Event) -> Event:
        if not self.secrets:
            return event
        changes: dict[str, object] = {}
        for item in dataclasses.fields(event):
            value = getattr(event, item.name)
            if isinstance(value, str):
                cleaned = self.text(value)
                if cleaned != value:
                    changes[item.name] = cleaned
            elif isinstance(value, tuple):
                cleaned_tuple = tuple(self.text(v) if isinstance(v, str) else v for v in value)
                if cleaned_tuple != value:
                    changes[item.name] = cleaned_tuple
        return dataclasses.replace(event, **changes) if changes else event  # type: ignore[arg-type]


class Dispatcher:
    def __init__(
        self,
        routes: Iterable[Route],
        metrics: Metrics | None = None,
        secrets: Iterable[str] = (),
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = list(routes)
        self.metrics = metrics
        self.redactor = Redactor(secrets)
        self.backoff = wait_exponential(multiplier=backoff_initial, max=backoff_max) + wait_random(0, backoff_initial)
        self.max_retry_after = max_retry_after
        self.clock = clock
        self._lanes: list[_Lane] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def sinks(self) -> list[Sink]:
        return [r.sink for r in self.routes]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for route in self.routes:
            lane = _Lane(route, asyncio.Queue(maxsize=route.queue_size))
            lane.task = asyncio.create_task(self._work(lane), name=f"alerts:{route.sink.name}")
            self._lanes.append(lane)
            if self.metrics is not None:
                self.metrics.alert_queue.labels(route.sink.name).set(0)

    def publish(self, event: Event) -> None:
        """Queue an event for every sink that wants it. Never blocks; safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("alert dropped (alerts not running): %s", event.summary)
            return
        if threading.get_ident() == self._loop_thread:
            self._enqueue(event)
            return
        try:
            loop.call_soon_threadsafe(self._enqueue, event)
        except RuntimeError:  # the loop closed meanwhile: shutting down
            log.warning("alert dropped (shutting down): %s", event.summary)

    def _enqueue(self, event: Event) -> None:
        event = self.redactor.event(event)
        now = self.clock()
        for lane in self._lanes:
            route = lane.route
            for key in event.resets:  # down, up, down again: the second "down" is news, not a repeat
                lane.seen.pop(key, None)
            if route.events is not None and event.kind not in route.events:
                continue
            if event.key and route.dedupe_window > 0:
                last = lane.seen.get(event.key)
                if last is not None and now - last < route.dedupe_window:
                    log.info("%s: not sending a repeat of %s within %gs", lane.name, event.key, route.dedupe_window)
                    if self.metrics is not None:
                        self.metrics.alerts_deduplicated.labels(lane.name, event.kind).inc()
                    continue
                lane.seen[event.key] = now
                if len(lane.seen) > 1000:
                    lane.seen = {k: t for k, t in lane.seen.items() if now - t < route.dedupe_window}
            if lane.queue.full():
                oldest = lane.queue.get_nowait()
                lane.queue.task_done()
                log.warning(
                    "%s: alert queue full (%d): dropped the oldest: %s", lane.name, route.queue_size, oldest.summary
                )
                if self.metrics is not None:
                    self.metrics.alerts_dropped.labels(lane.name).inc()
            lane.queue.put_nowait(event)
            if self.metrics is not None:
                self.metrics.alert_queue.labels(lane.name).set(lane.queue.qsize())

    async def _work(self, lane: _Lane) -> None:
        while True:
            event = await lane.queue.get()
            if self.metrics is not None:
                self.metrics.alert_queue.labels(lane.name).set(lane.queue.qsize())
            try:
                await self._deliver(lane, event)
            except Exception:
                log.exception("%s: delivering %s crashed", lane.name, event.kind)
            finally:
                lane.queue.task_done()

    def _retry_after(self, state: RetryCallState) -> float | None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        return exc.retry_after if isinstance(exc, Retryable) else None

    def _wait(self, state: RetryCallState) -> float:
        backoff = float(self.backoff(state))
        after = self._retry_after(state)
        return backoff if after is None else max(after, backoff)

    async def _deliver(self, lane: _Lane, event: Event) -> None:
        retries = lane.route.retries

        def stop(state: RetryCallState) -> bool:
            after = self._retry_after(state)
            return state.attempt_number > retries or (after is not None and after > self.max_retry_after)

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            why = outcome.exception() if outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", lane.name, state.attempt_number, why, wait)
            if self.metrics is not None:
                self.metrics.alert_retries.labels(lane.name).inc()

        started = time.monotonic()
        outcome = "sent"
        try:
            async for attempt in AsyncRetrying(
                stop=stop,
                wait=self._wait,
                retry=retry_if_exception_type(Retryable),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    await lane.route.sink.send(event)
        except AlertError as exc:
            outcome = "failed"
            log.warning("%s: gave up on %s alert %r: %s", lane.name, event.kind, event.summary, exc)
        if self.metrics is not None:
            self.metrics.alert_duration.labels(lane.name).observe(time.monotonic() - started)
            counter = self.metrics.alerts_sent if outcome == "sent" else self.metrics.alert_failures
            counter.labels(lane.name, event.kind).inc()
        if outcome == "sent":
            log.info("%s: sent %s alert: %s", lane.name, event.kind, event.summary)

    async def flush(self, timeout: float) -> bool:
        """Wait until every queue is empty and nothing is in flight; False on timeout."""
        try:
            await asyncio.wait_for(asyncio.gather(*(lane.queue.join() for lane in self._lanes)), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Give queued alerts ``flush_timeout`` seconds to go out, then stop and close the sinks."""
        if self._lanes and not await self.flush(flush_timeout):
            waiting = sum(lane.queue.qsize() for lane in self._lanes)
            log.warning("stopping alerts with %d still queued or in flight", waiting)
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
        for lane in self._lanes:
            if lane.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
        for route in self.routes:
            with contextlib.suppress(Exception):
                await route.sink.aclose()
        self._lanes = []
        self._loop = None
