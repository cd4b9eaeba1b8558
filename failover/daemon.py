"""``failover run``: apscheduler jobs wiring probes, decisions and reconciliation together.

* One job per (domain, check, gateway) at the check's interval, ``max_instances=1``: probes
  of one target never overlap, and a slow gateway delays nobody else.
* A verdict change wakes the evaluator at once (not a slow timer), so a failover reaches DNS
  within a second of the deciding probe.
* A reconcile job re-runs the evaluation every few seconds, repairing drift (a record edited
  by hand) and retrying adapters that failed.
* SIGTERM / SIGINT stop the scheduler, let a running evaluation finish, and close everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from failover.app import App, build_app
from failover.errors import FailoverError
from failover.model import DomainOutcome, ProbeResult, StreakKey
from failover.policy import Policy

log = logging.getLogger("failover.daemon")

Hook = Callable[[list[DomainOutcome]], Awaitable[None] | None]


class Daemon:
    def __init__(self, app: App, reconcile_interval: float = 5.0) -> None:
        self.app = app
        self.policy = app.policy
        self.coordinator = app.coordinator
        self.reconcile_interval = reconcile_interval
        self.after_evaluation: list[Hook] = []  # proxy routing, metrics, the live demo view
        self.after_verdict: list[Callable[[], None]] = []  # at once on a verdict change (proxy routing)
        self.last_outcomes: list[DomainOutcome] = []
        self.evaluations = 0
        self._probed: set[StreakKey] = set()
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        self._evaluator: asyncio.Task[None] | None = None
        self._shared: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        """Every target probed at least once and one evaluation done."""
        return self.evaluations > 0 and len(self._probed) == len(self.app.probes)

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        now = time.time()
        for index, (key, probe) in enumerate(self.app.probes.items()):
            # Spread first runs over a tenth of the interval so hundreds of probes don't start at once.
            offset = (index % 10) * probe.interval / 100
            scheduler.add_job(
                self._probe,
                "interval",
                args=[key],
                seconds=probe.interval,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(probe.interval)),
                id=f"probe:{key.domain}:{key.gateway}:{key.check}",
                next_run_time=_dt(now + offset),
            )
        scheduler.add_job(
            self.request_evaluation,
            "interval",
            seconds=self.reconcile_interval,
            id="reconcile",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self._scheduler = scheduler
        self._evaluator = asyncio.create_task(self._evaluate_forever(), name="evaluator")
        if self.policy.state.backend == "etcd":  # coordinators in other regions share the store
            self._shared = [
                asyncio.create_task(self._lead_forever(), name="leadership"),
                asyncio.create_task(self._watch_forever(), name="store-watch"),
            ]
        log.info("daemon started: %d probes, reconcile every %gs", len(self.app.probes), self.reconcile_interval)

    def request_evaluation(self) -> None:
        self._dirty.set()

    async def _probe(self, key: StreakKey) -> None:
        probe = self.app.probes[key]
        try:
            result = await asyncio.wait_for(probe.run(), probe.timeout + 1.0)
        except TimeoutError:  # a probe's own timeout should have fired; never let one hang the job
            result = ProbeResult(False, probe.timeout + 1.0, f"{probe.label}: probe overran its timeout")
        except Exception as exc:  # a probe bug counts as a failed probe, never as a silent gap
            log.exception("probe %s of %s failed unexpectedly", probe.label, key.gateway)
            result = ProbeResult(False, 0.0, f"{probe.label}: probe error {exc!r}")
        self._probed.add(key)
        try:
            if self.coordinator.record({key: result}, flush=False):  # no store I/O on the loop
                self._dirty.set()
                for hook in self.after_verdict:
                    hook()
        except FailoverError as exc:
            log.error("cannot record probe result: %s", exc)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _lead_forever(self) -> None:
        """Renew the lease every ``loop_wait``; taking or losing the leadership re-evaluates."""
        token: int | None = None
        while not self._stopping.is_set():
            try:
                now = await asyncio.to_thread(self.coordinator.campaign)
            except FailoverError as exc:  # keep the lease's local deadline; never act on a guess
                log.warning("cannot renew the leader lease: %s", exc)
                now = self.coordinator.store.leading()
            if now != token:
                token = now
                self.request_evaluation()
            await self._pause(self.policy.state.loop_wait)

    async def _watch_forever(self) -> None:
        """Another coordinator's report, an operator's intent, a new decision: evaluate now."""
        wait = self.policy.state.loop_wait
        while not self._stopping.is_set():
            try:
                changed = await asyncio.to_thread(self.coordinator.store.wait_for_change, wait)
            except FailoverError as exc:
                log.warning("cannot watch the store: %s", exc)
                await self._pause(wait)
                continue
            if changed:
                self.request_evaluation()

    async def _evaluate_forever(self) -> None:
        while not self._stopping.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            if self._stopping.is_set():
                break
            try:
                outcomes = await asyncio.to_thread(self.coordinator.evaluate)
            except FailoverError as exc:
                log.error("evaluation failed: %s", exc)
                continue
            except Exception:
                log.exception("evaluation crashed; will retry at the next change or reconcile")
                continue
            self.evaluations += 1
            self.last_outcomes = outcomes
            for hook in self.after_evaluation:
                try:
                    result = hook(outcomes)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("after-evaluation hook failed")

    async def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        for task in self._shared:
            task.cancel()
        if self._evaluator is not None:
            try:
                await asyncio.wait_for(self._evaluator, 30)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # our caller cancels us (a deadline on stop()): not the evaluator ending
            except TimeoutError:  # an adapter still waiting on its provider: its thread runs on
                log.warning("an evaluation was still running after 30s; stopping without it")
        try:
            await asyncio.to_thread(self.coordinator.flush)  # the streaks a cron run continues from
        except FailoverError as exc:
            log.warning("could not save the last probe results: %s", exc)
        log.info("daemon stopped")

    async def wait_stopped(self) -> None:
        await self._stopping.wait()


def _dt(ts: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC)


async def serve(
    policy: Policy, extras: Callable[[Daemon], Awaitable[Callable[[], Awaitable[None]]]] | None = None
) -> None:
    app = build_app(policy)
    daemon = Daemon(app)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon._stopping.set)
    await daemon.start()
    cleanup = await extras(daemon) if extras else None
    try:
        await daemon.wait_stopped()
    finally:
        log.info("shutting down")
        try:
            await daemon.stop()
        finally:
            try:
                if cleanup is not None:
                    await cleanup()
            finally:
                await app.aclose()

