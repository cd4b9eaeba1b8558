"""``failover run``: the probe schedule, decisions and reconciliation wired together.

* Every (domain, check, gateway) runs at its check's interval on one ``Schedule`` (a heap and
  one timer, ``failover.probes.schedule``): first runs spread over the interval, probes of one
  target never overlap, a slow gateway delays nobody else, and the lag is measured (logged as
  ``probe schedule: {...}`` when the daemon stops; ``probe_schedule.stats()`` meanwhile).
* A verdict change wakes the evaluator at once (not a slow timer), so a failover reaches DNS
  within a second of the deciding probe.
* A reconcile job re-runs the evaluation every few seconds, repairing drift (a record edited
  by hand) and retrying adapters that failed.
* SIGTERM / SIGINT stop the scheduler, let a running evaluation finish, and close everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from failover.app import App, build_app
from failover.discovery import Discovery, attach
from failover.errors import FailoverError
from failover.model import DomainOutcome, ProbeResult, StreakKey
from failover.policy import Policy
from failover.probes import Probe
from failover.probes.schedule import Schedule

log = logging.getLogger("failover.daemon")

Hook = Callable[[list[DomainOutcome]], Awaitable[None] | None]
GC_YOUNG_THRESHOLD = 10_000  # allocations between collections of the youngest generation, once all is probed


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
        self._evaluate_all = True  # else only ``_moved_domains``: the domains whose verdicts moved
        self._moved_domains: set[str] = set()
        self._stopping = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None  # the reconcile timer
        self.probe_schedule: Schedule[StreakKey] | None = None
        self._schedule_closer: asyncio.Task[None] | None = None
        self._gc_before: tuple[int, int, int] | None = None  # the collector's thresholds while not tuned
        self._evaluator: asyncio.Task[None] | None = None
        self._shared: list[asyncio.Task[None]] = []
        self.discovery: Discovery | None = None  # gateways_from: the regions' gateway sets, kept current
        self.probe_wrappers: list[Callable[[StreakKey, Probe], Probe]] = []  # applied to probes added later
        self._closing: set[asyncio.Task[None]] = set()  # probes of gateways discovery retired

    @property
    def ready(self) -> bool:
        """Every target probed at least once and one evaluation done."""
        return self.evaluations > 0 and len(self._probed) == len(self.app.probes)

    async def start(self) -> None:
        self.discovery = await attach(self)  # first answers before the schedule: their gateways start with it
        schedule: Schedule[StreakKey] = Schedule(self._probe, self._overran)
        for key, probe in self.app.probes.items():
            # Past its own timeout and a second more, a probe is cancelled and counts as failed.
            schedule.add(key, probe.interval, probe.timeout + 1.0)
        schedule.start()
        self.probe_schedule = schedule
        self._schedule_closer = asyncio.create_task(self._close_schedule_on_stop(schedule), name="probe-schedule")
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
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
        """Evaluate every domain (the reconcile timer, a store change, an operator's action)."""
        self._evaluate_all = True
        self._dirty.set()

    def retarget(self, added: Mapping[StreakKey, Probe], removed: Iterable[StreakKey]) -> None:
        """Discovery changed a region's gateways: schedule the new targets, drop the gone ones."""
        for key in removed:
            probe = self.app.probes.pop(key, None)
            self._probed.discard(key)
            if self.probe_schedule is not None:
                self.probe_schedule.remove(key)
            if probe is not None:
                task = asyncio.get_running_loop().create_task(probe.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        if self.ready:  # readiness is this daemon's, once: a replica found later does not take it back
            self._probed.update(added)
        for key, probe in added.items():
            if key in self.app.probes:
                continue
            for wrap in self.probe_wrappers:
                probe = wrap(key, probe)
            self.app.probes[key] = probe
            if self.probe_schedule is not None:
                self.probe_schedule.add(key, probe.interval, probe.timeout + 1.0)

    async def _probe(self, key: StreakKey) -> None:
        probe = self.app.probes[key]  # looked up each time: the metrics wrap the probes after start()
        try:
            result = await probe.run()
        except Exception as exc:  # a probe bug counts as a failed probe, never as a silent gap
            log.exception("probe %s of %s failed unexpectedly", probe.label, key.gateway)
            result = ProbeResult(False, 0.0, f"{probe.label}: probe error {exc!r}")
        if key in self.app.probes:  # not a gateway that discovery retired while it was probed
            self._record(key, result)

    def _overran(self, key: StreakKey, seconds: float) -> None:
        """The schedule cancelled a run past its deadline: a probe should never get here."""
        label = self.app.probes[key].label
        self._record(key, ProbeResult(False, seconds, f"{label}: probe overran its timeout"))

    def record_result(self, key: StreakKey, result: ProbeResult) -> None:
        """A probe result from outside the schedule (the data path's confirmation probes)."""
        self._record(key, result)

    def _record(self, key: StreakKey, result: ProbeResult) -> None:
        if key not in self._probed:
            self._probed.add(key)
            if len(self._probed) == len(self.app.probes):
                self._freeze_heap()
        try:
            if self.coordinator.record({key: result}, flush=False):  # no store I/O on the loop
                self._moved_domains.add(key.domain)  # the next evaluation decides only these
                self._dirty.set()
                for hook in self.after_verdict:
                    hook()
        except FailoverError as exc:
            log.error("cannot record probe result: %s", exc)

    def _freeze_heap(self) -> None:
        """Every target has been probed once: the policy, probes, metrics and streaks that exist
        now live as long as the daemon. Frozen, the garbage collector's full passes skip them:
        with 2,000 targets each pass over them stalled the loop for 0.1-0.5 s, long enough for
        probes to time out on answers already waiting in their sockets. The youngest generation
        is collected every 10,000 allocations instead of 700: hundreds of probes in flight were
        traversed at every collection (the collector's share of the CPU went from ~13% to ~4%)."""
        if self._gc_before is None:
            self._gc_before = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(self._gc_before[0], GC_YOUNG_THRESHOLD), *self._gc_before[1:])

    async def _close_schedule_on_stop(self, schedule: Schedule[StreakKey]) -> None:
        """``stop()`` sets the stopping flag: no probe starts after it, the ones running are cancelled."""
        try:
            await self._stopping.wait()
        finally:
            await schedule.aclose()
            log.info("probe schedule: %s", json.dumps(schedule.stats()))
            if self._gc_before is not None:  # what this daemon held may be garbage now (a test process lives on)
                gc.unfreeze()
                gc.set_threshold(*self._gc_before)
                self._gc_before = None

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
            domains = None if self._evaluate_all else self._moved_domains
            self._evaluate_all, self._moved_domains = False, set()
            try:
                outcomes = await asyncio.to_thread(self.coordinator.evaluate, True, domains, True)
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
        if self.discovery is not None:
            await self.discovery.aclose()
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
