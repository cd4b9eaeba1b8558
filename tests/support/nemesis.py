"""A seeded nemesis for the cluster of tests/support/cluster.py: a random, replayable schedule
of faults (partitions, pauses, kills, gateway outages), one or two at a time, each healed
after its hold, and a recorder of the leader key over time.

* ``plan(seed, seconds)`` draws the schedule from the seed alone, so ``FAILOVER_NEMESIS_SEED``
  replays it. Targets that only mean something when the fault starts ("the leader", "the
  primary region", "etcd's Raft leader") are named so in the plan and resolved then; what they
  resolved to is in the run's record.
* ``Nemesis`` runs the plan against the real processes and nftables rules, keeps a record of
  every fault (what, on whom, when injected, when healed), restarts a coordinator that exits
  by itself as a supervisor would (and records it: a crash, or a refusal to start while etcd
  is out of reach), and ``heal_all()`` undoes whatever is still active.
* ``LeaderRecorder`` polls etcd's leader key (holder and fencing token, its create revision)
  and keeps every change with the time it was first seen.
* ``journal()`` reads every update BIND committed from the zone's journal
  (``named-journalprint``), so that a state that lived between two polls is not missed.

Only the processes started by the tests are signalled, by pid.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from failover.adapters.abc import Marker, marker_name, sort_addresses
from failover.errors import FailoverError
from failover.localgw import ThreadedGateways
from failover.store.etcd_client import EtcdClient
from tests.conftest import EAST, WEST
from tests.support.bind import Bind
from tests.support.cluster import OBSERVERS, UIDS, Cluster, Firewall, Published, Rule
from tests.support.etcd import EtcdCluster, EtcdMember

REGION_GATEWAYS = {"east": EAST, "west": WEST}

# A coordinator's uid cut from something, a process paused or killed, the primary's gateways stopped.
CUTS = ("etcd_cut", "gateway_cut", "bind_cut")
COORDINATOR_FAULTS = (*CUTS, "coordinator_pause", "coordinator_kill")
ETCD_FAULTS = ("etcd_pause", "etcd_kill")
KINDS = (*COORDINATOR_FAULTS, *ETCD_FAULTS, "outage")
# How long each kind is held, in seconds: some shorter and some longer than the lease (6 s), and
# outages longer than fall x interval plus the quorum, so that failovers do happen.
HOLDS = {
    "etcd_cut": (1.0, 9.0), "gateway_cut": (2.0, 8.0), "bind_cut": (1.0, 8.0),
    "coordinator_pause": (1.0, 9.0), "coordinator_kill": (0.5, 6.0),
    "etcd_pause": (1.0, 6.0), "etcd_kill": (0.5, 5.0), "outage": (6.0, 10.0),
}
WEIGHTS = {"etcd_cut": 2, "gateway_cut": 2, "bind_cut": 2, "coordinator_pause": 2, "coordinator_kill": 2,
           "etcd_pause": 2, "etcd_kill": 1}
PROCESS_FAULTS = ("coordinator_pause", "coordinator_kill", "etcd_pause", "etcd_kill")


# -- the plan ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    kind: str
    target: str  # an observer, "leader"; an etcd member "m0".."m2", "raft-leader"; "primary"/"other" region
    fallback: str  # when the target means nothing at the time (no leader) or is busy in this step
    delay: float  # seconds after the step begins
    hold: float  # seconds from injection to healing
    how: str = ""  # cuts: drop (a broken link) or reject (refused at once)
    region: str = ""  # gateway_cut: "primary" or "other"

    def describe(self) -> str:
        extra = ", ".join(x for x in (self.region, self.how) if x)
        return f"{self.kind}({self.target}{', ' + extra if extra else ''}, +{self.delay:.1f}s, {self.hold:.1f}s)"


@dataclass(frozen=True)
class Step:
    faults: tuple[Fault, ...]
    gap: float  # quiet seconds after every fault of the step is healed

    @property
    def planned(self) -> float:
        return max(f.delay + f.hold for f in self.faults) + self.gap


def plan(seed: int, seconds: float) -> list[Step]:
    """Steps of one or two overlapping faults until about ``seconds`` are planned; an outage
    of the primary region's gateways at least every third step."""
    rng = random.Random(seed)
    kinds = [k for k, w in WEIGHTS.items() for _ in range(w)]

    def draw(kind: str, delay: float) -> Fault:
        hold = round(rng.uniform(*HOLDS[kind]), 1)
        if kind == "outage":
            return Fault(kind, "primary", "east", delay, hold)
        if kind in ETCD_FAULTS:
            target = "raft-leader" if rng.random() < 0.3 else f"m{rng.randrange(3)}"
            return Fault(kind, target, f"m{rng.randrange(3)}", delay, hold)
        target = "leader" if rng.random() < 0.5 else rng.choice(OBSERVERS)
        how = ("drop" if rng.random() < 0.75 else "reject") if kind in CUTS else ""
        region = ("primary" if rng.random() < 0.7 else "other") if kind == "gateway_cut" else ""
        return Fault(kind, target, rng.choice(OBSERVERS), delay, hold, how, region)

    steps: list[Step] = []
    planned, since_outage = 0.0, 1
    while planned < seconds:
        first = "outage" if since_outage >= 2 or (since_outage >= 1 and rng.random() < 0.25) else rng.choice(kinds)
        faults = [draw(first, 0.0)]
        if rng.random() < 0.6:  # a second fault while the first is still on
            faults.append(draw(rng.choice(kinds), round(rng.uniform(0.0, 0.8 * faults[0].hold), 1)))
        since_outage = 0 if first == "outage" else since_outage + 1
        # after an outage the healed region needs rise x interval and a vote before the next one
        gap = round(rng.uniform(3.0, 5.0) if first == "outage" else rng.uniform(0.5, 3.0), 1)
        steps.append(Step(tuple(faults), gap))
        planned += steps[-1].planned
    return steps


# -- every update BIND ever committed ---------------------------------------------------------------
def journal(bind: Bind, domain: str) -> list[Published] | None:
    """What BIND published for ``domain`` after each committed update that touched it, in
    order, from the zone's journal: exact, where polling can miss a state that lived a few
    milliseconds. None without ``named-journalprint``."""
    tool = shutil.which("named-journalprint")
    path = bind.workdir / "zone.db.jnl"
    if tool is None or not path.exists():
        return None
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=30, check=True)
    return parse_journal(done.stdout, domain)


def parse_journal(text: str, domain: str) -> list[Published]:
    """``named-journalprint``'s output (per transaction: the old SOA and the records deleted,
    then the new SOA and the records added) as the domain's state after each transaction that
    changed it."""
    name, marker_owner = domain.rstrip(".") + ".", marker_name(domain) + "."
    addresses: set[str] = set()
    marker: str | None = None
    states: list[Published] = [Published((), None)]

    def close_transaction() -> None:
        now = Published(sort_addresses(addresses), Marker.parse(marker))
        if states[-1] != now:
            states.append(now)

    started = False
    for line in text.splitlines():
        op, owner, _ttl, _cls, rdtype, rdata = line.split(None, 5)
        if rdtype == "SOA" and op == "del":  # each transaction opens with the old SOA's deletion
            if started:
                close_transaction()
            started = True
        elif owner == name and rdtype in ("A", "AAAA"):
            (addresses.add if op == "add" else addresses.discard)(rdata.strip())
        elif owner == marker_owner and rdtype == "TXT":
            marker = rdata.strip().strip('"') if op == "add" else None
    if started:
        close_transaction()
    return states[1:]


# -- the leader key over time --------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaderSeen:
    at: float  # time.monotonic() when first seen
    holder: str | None  # None: no leader key
    token: int | None  # the key's create revision


class LeaderRecorder:
    """Polls ``<prefix>/leader`` every ``every`` seconds and keeps each change."""

    def __init__(self, etcd: EtcdCluster, prefix: str, every: float = 0.05) -> None:
        self.key = f"{prefix}/leader".encode()
        self.every = every
        self.history: list[LeaderSeen] = []
        self.errors = 0
        self._client = EtcdClient(etcd.endpoints, timeout=1.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="leader-recorder")

    def start(self) -> LeaderRecorder:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kv = self._client.get(self.key)
            except FailoverError:  # etcd without quorum, a member paused: the next poll tells
                self.errors += 1
            else:
                seen = LeaderSeen(time.monotonic(), kv.value.decode() if kv else None,
                                  kv.create_revision if kv else None)
                with self._lock:
                    last = self.history[-1] if self.history else None
                    if last is None or (last.holder, last.token) != (seen.holder, seen.token):
                        self.history.append(seen)
            self._stop.wait(self.every)

    def snapshot(self) -> list[LeaderSeen]:
        with self._lock:
            return list(self.history)

    def latest(self) -> LeaderSeen | None:
        with self._lock:
            return self.history[-1] if self.history else None

    def revision(self) -> int:
        """etcd's current revision: how many writes the cluster has taken."""
        return self._client.range(self.key).revision

    def held_at(self, holder: str, token: int) -> bool:
        """Ask etcd's own history: did ``holder`` create the leader key at revision ``token``?"""
        kvs = self._client.range(self.key, revision=token).kvs
        return bool(kvs) and kvs[0].create_revision == token and kvs[0].value.decode() == holder

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.close()


# -- running it ------------------------------------------------------------------------------------------
class NemesisCluster(Cluster):
    """The cluster, plus what the nemesis does to its coordinators."""

    def restart(self, name: str) -> None:
        """Start a killed coordinator again as the same observer, uid and policy."""
        self._start(self.coordinators[name])

    def pause(self, name: str) -> None:
        self.coordinators[name].signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.coordinators[name].signal(signal.SIGCONT)


@dataclass
class Injected:
    """One fault as it happened: ``subject`` is what the plan's target resolved to."""

    fault: Fault
    subject: str
    at: float  # monotonic
    undo: Callable[[], None] = field(repr=False)
    detail: str = ""
    healed: float | None = None

    @property
    def kind(self) -> str:
        return self.fault.kind

    def active_during(self, start: float, end: float) -> bool:
        return self.at <= end and (self.healed is None or self.healed >= start)

    def describe(self) -> str:
        return f"{self.kind}({self.subject}{', ' + self.detail if self.detail else ''})"


# A coordinator that exits this soon after a start has refused to start (etcd out of reach
# exits 1 at start-up); like systemd's Restart=always in deployments, the nemesis starts it again.
START_GRACE = 20.0


@dataclass(frozen=True)
class Exit:
    """A coordinator that exited by itself."""

    name: str
    returncode: int | None
    at: float
    at_start: bool  # within START_GRACE of its start: it refused to start, it did not crash
    said: str  # the last line of its log

    @property
    def crashed(self) -> bool:
        return not self.at_start


class Nemesis:
    def __init__(self, cluster: NemesisCluster, etcd: EtcdCluster, bind: Bind, pool: ThreadedGateways,
                 firewall: Firewall, leaders: LeaderRecorder) -> None:
        self.cluster = cluster
        self.etcd = etcd
        self.bind = bind
        self.pool = pool
        self.firewall = firewall
        self.leaders = leaders
        self.done: list[Injected] = []  # every fault injected, in order
        self.skipped: list[Fault] = []
        self.exits: list[Exit] = []
        self.heal_errors: list[str] = []
        self.began = self.ended = 0.0
        self._killed: set[str] = set()  # coordinators we killed and have not restarted yet
        self._busy: set[str] = set()  # processes paused or killed in the current step
        self._started: dict[str, float] = {}  # when the nemesis last started each coordinator
        self._seen_exit: set[subprocess.Popen[bytes]] = set()  # exits already recorded

    # -- the schedule --------------------------------------------------------------------------------
    def run(self, steps: list[Step], seconds: float) -> None:
        """Each step's faults at their delays, each healed after its hold; no step starts past
        ``seconds`` (a slow kill or restart must not stretch the run)."""
        self.began = time.monotonic()
        try:
            for step in steps:
                if time.monotonic() - self.began >= seconds:
                    break
                self._step(step)
        finally:
            self.ended = time.monotonic()

    def _step(self, step: Step) -> None:
        start = time.monotonic()
        events = sorted([(f.delay, 0, i) for i, f in enumerate(step.faults)]
                        + [(f.delay + f.hold, 1, i) for i, f in enumerate(step.faults)])
        live: dict[int, Injected] = {}
        try:
            for at, action, index in events:
                self._wait_until(start + at)
                if action == 0:
                    injected = self._inject(step.faults[index])
                    if injected is not None:
                        live[index] = injected
                elif index in live:
                    self._heal(live.pop(index))
        finally:
            for injected in live.values():
                self._heal(injected)
            self._busy.clear()
        self._wait_until(time.monotonic() + step.gap)

    def _wait_until(self, when: float) -> None:
        """Until ``when``, watching for a coordinator that exits by itself."""
        while True:
            self.supervise()
            left = when - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def supervise(self) -> None:
        """A coordinator that exited by itself is recorded and started again, as a supervisor
        would (no more than once a second); the test fails on a crash."""
        for name, process in self.cluster.coordinators.items():
            popen = process.process
            if name in self._killed or popen is None or process.running:
                continue
            now = time.monotonic()
            started = self._started.get(name, float("-inf"))
            if popen not in self._seen_exit:
                self._seen_exit.add(popen)
                said = (process.log(400).strip().splitlines() or [""])[-1]
                self.exits.append(Exit(name, popen.returncode, now, now - started < START_GRACE, said))
            if now - started >= 1.0:
                self._start(name)

    def _start(self, name: str) -> None:
        self.cluster.restart(name)
        self._started[name] = time.monotonic()

    # -- resolving targets ---------------------------------------------------------------------------
    def _coordinator(self, fault: Fault) -> str | None:
        wanted = fault.target
        if wanted == "leader":
            seen = self.leaders.latest()
            wanted = seen.holder if seen is not None and seen.holder is not None else fault.fallback
        if fault.kind not in PROCESS_FAULTS:
            return wanted
        order = [wanted, *(n for n in OBSERVERS if n != wanted)]
        return next((n for n in order if n not in self._busy and n not in self._killed), None)

    def _member(self, fault: Fault) -> EtcdMember | None:
        by_name = {m.name: m for m in self.etcd.members}
        wanted = by_name.get(fault.target, by_name[fault.fallback])
        if fault.target == "raft-leader":
            with contextlib.suppress(RuntimeError):  # no Raft leader now (a member is down): the fallback
                wanted = self.etcd.leader()
        order = [wanted, *(m for m in self.etcd.members if m is not wanted)]
        return next((m for m in order if m.name not in self._busy and m.running and not m.paused), None)

    def _region(self, which: str) -> str:
        now = self.cluster.recorder.latest()
        primary = now.marker.primary if now is not None and now.marker is not None else "east"
        return primary if which == "primary" else next(r for r in REGION_GATEWAYS if r != primary)

    # -- faults --------------------------------------------------------------------------------------
    def _inject(self, fault: Fault) -> Injected | None:
        kind = fault.kind
        if kind in COORDINATOR_FAULTS:
            name = self._coordinator(fault)
            if name is None:
                self.skipped.append(fault)
                return None
            return self._on_coordinator(fault, name)
        if kind in ETCD_FAULTS:
            member = self._member(fault)
            if member is None:
                self.skipped.append(fault)
                return None
            return self._on_member(fault, member)
        region = self._region("primary")
        names = tuple(REGION_GATEWAYS[region])
        self.pool.stop(*names)
        return self._record(fault, region, lambda: self.pool.start(*names), "gateways stopped")

    def _on_coordinator(self, fault: Fault, name: str) -> Injected:
        kind, uid, cluster = fault.kind, UIDS[name], self.cluster
        if kind in CUTS:
            if kind == "etcd_cut":
                rule = self.firewall.cut(uid, ["127.0.0.1"], cluster.etcd_ports, fault.how)
                detail = f"from etcd, {fault.how}"
            elif kind == "bind_cut":
                rule = self.firewall.cut(uid, [self.bind.host], [self.bind.port], fault.how)
                detail = f"from BIND, {fault.how}"
            else:
                region = self._region(fault.region)
                rule = self.firewall.cut(uid, REGION_GATEWAYS[region].values(), [cluster.gateway_port], fault.how)
                detail = f"from {region}'s gateways, {fault.how}"
            return self._record(fault, name, self._restorer(rule), detail)
        self._busy.add(name)
        if kind == "coordinator_pause":
            cluster.pause(name)
            return self._record(fault, name, lambda: cluster.resume(name), "SIGSTOP")
        self._killed.add(name)
        cluster.kill(name)

        def restart() -> None:
            self._start(name)
            self._killed.discard(name)

        return self._record(fault, name, restart, "kill -9, then restarted")

    def _on_member(self, fault: Fault, member: EtcdMember) -> Injected:
        self._busy.add(member.name)
        if fault.kind == "etcd_pause":
            member.pause()
            return self._record(fault, member.name, member.resume, "SIGSTOP")
        member.kill()
        return self._record(fault, member.name, lambda: self.etcd.restart(member), "kill -9, then restarted")

    def _restorer(self, rule: Rule) -> Callable[[], None]:
        return lambda: self.firewall.restore(rule)

    def _record(self, fault: Fault, subject: str, undo: Callable[[], None], detail: str) -> Injected:
        injected = Injected(fault, subject, time.monotonic(), undo, detail)
        self.done.append(injected)
        return injected

    def _heal(self, injected: Injected) -> None:
        if injected.healed is None:
            injected.healed = time.monotonic()
            injected.undo()

    def heal_all(self) -> None:
        """Undo whatever is still active, then make sure: every etcd member up, every gateway
        serving, every coordinator running, no rule left."""
        for injected in reversed(self.done):
            try:
                self._heal(injected)
            except Exception as exc:  # heal the rest; the test reports it
                self.heal_errors.append(f"{injected.describe()}: {exc!r}")
        self._busy.clear()
        self.pool.start()
        self.etcd.heal()
        for name, process in self.cluster.coordinators.items():
            if process.running:
                self.cluster.resume(name)  # no-op unless paused
            elif process.process is not None and name in self._killed:
                self._start(name)
                self._killed.discard(name)
        self.supervise()

    # -- what it did ---------------------------------------------------------------------------------
    def counts(self) -> Counter[str]:
        return Counter(i.kind for i in self.done)

    def timeline(self) -> list[str]:
        """Each fault with its times relative to the start of the run."""
        def rel(t: float | None) -> str:
            return "-" if t is None else f"{t - self.began:6.1f}"
        return [f"{rel(i.at)} .. {rel(i.healed)}  {i.describe()}" for i in self.done]


# -- the terminal summary ------------------------------------------------------------------------------
SUMMARIES = pytest.StashKey[list[str]]()


def remember(config: pytest.Config, line: str) -> None:
    config.stash.setdefault(SUMMARIES, []).append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = terminalreporter.config.stash.get(SUMMARIES, [])
    if lines:
        terminalreporter.section("nemesis")
        for line in lines:
            terminalreporter.write_line(line)
