"""``failover demo --cluster``: three coordinators (east, west, a witness) as one system on etcd.

Needs nothing but an ``etcd`` binary (Debian: ``apt-get install etcd-server``): a local
single-member etcd on free loopback ports, real HTTP gateways for east and west on 127.0.0.x,
a zone file, and three real ``Daemon`` s in this process, each with its own policy file
(``observer``), store, etcd session and probes. Short timings: interval 0.5 s, fall 3, lease
ttl 3 s renewed every 0.5 s, etcd calls bounded by 1 s (0.5 + 2 * 1 <= 3). The phases:

1. a leader is elected and east is published;
2. west alone loses its path to east's gateways (its probes of them fail; the gateways are
   fine): east is down for west only, and nothing moves while it lasts;
3. east's gateways die: the quorum sees it and the leader fails over to west;
4. the leader crashes (its daemon stops without resigning): another coordinator leads once
   the lease has expired, and its first evaluation writes its fencing token into the marker.

East starts first and takes the lease, so the run reads the same every time: the observer cut
off in phase 2 is not the leader, and the one crashed in phase 4 is. Every wait has a deadline
(``_guard``); a miss, or a check that does not hold, exits 1 naming the phase. Plain timestamped
lines, on a terminal too.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from failover import events as ev
from failover.adapters.zonefile import ZonefileAdapter
from failover.demo import EAST, WEST, _free_port
from failover.demo._etcd import INSTALL, LocalEtcd, etcd_binary
from failover.demo._guard import (
    DemoTimeout,
    Progress,
    ShutdownSteps,
    Watchdog,
    exit_past_stuck_threads,
    run_loop,
    wait_until,
    within,
)
from failover.demo._nodes import OBSERVERS, Node, Served, ZoneWatch, cluster_policy
from failover.demo._view import DOMAIN, View
from failover.errors import FailoverError
from failover.localgw import LocalGateway
from failover.model import Status

INTERVAL, FALL, TTL, LOOP_WAIT, RETRY_TIMEOUT = 0.5, 3, 3.0, 0.5, 1.0
PREFIX = "/failover/demo-api"
EAST_ADDRS, WEST_ADDRS = tuple(sorted(EAST.values())), tuple(sorted(WEST.values()))

# Deadlines in seconds. On an idle machine: etcd 1, first publish 2, west sees east down 1.5,
# failover 2, new leader about the ttl (3); the waits allow five times that or more.
BUDGET = 90.0  # `tests/e2e/test_demo_cluster.py` allows 120 for the whole process
SHUTDOWN_RESERVE = 25.0  # the shutdown steps (about 18), the loop's teardown (5), thread joins (2)
STEP = 5.0
ETCD_START = 20.0
FIRST_ELECTION = 25.0
CUT_SEEN = 15.0
HOLD = 6 * INTERVAL  # how long nothing may move while only west sees east down
HEAL = 15.0
FAILOVER = 15.0
NEW_LEADER = 5 * TTL
PAUSES = 3.0  # seconds of pauses at speed 1


class DemoFailed(Exception):
    """Something the demo shows did not hold (a change while only one observer saw a fault)."""


class Ballots:
    """Every observer's published vote on (domain, region), as etcd holds it, read every 0.1 s."""

    def __init__(self, nodes: list[Node], domain: str, region: str) -> None:
        self.nodes, self.key = nodes, (domain, region)
        self.votes: dict[str, Status] = {}
        self.alive: list[str] = []  # the coordinators whose session lease is live

    async def run(self) -> None:
        while True:
            store = next(n for n in self.nodes if not n.crashed).app.store
            try:
                views = await asyncio.to_thread(store.all_region_health, 0.0)
                self.votes = {o: v[self.key].status for o, v in sorted(views.items()) if self.key in v}
                self.alive = sorted(await asyncio.to_thread(store.members))
            except FailoverError:
                pass  # etcd busy: keep the last reading
            await asyncio.sleep(0.1)

    def describe(self) -> str:
        voting = ", ".join(f"{o} {'DOWN' if s is Status.DOWN else s}" for o, s in self.votes.items())
        silent = [o for o in OBSERVERS if o not in self.votes]
        down = sum(1 for s in self.votes.values() if s is Status.DOWN)
        return f"{voting}{'; silent: ' + ', '.join(silent) if silent else ''} ({down} of 3 down, 2 needed)"


async def _until_healthy(etcd: LocalEtcd) -> None:
    while not await etcd.healthy():
        if (why := etcd.exited()) is not None:
            raise DemoFailed(f"starting: {why}")
        await asyncio.sleep(0.05)


async def _cluster(console: Console, speed: float, progress: Progress, binary: str) -> dict[str, float | str]:
    # Three daemons each keep a watch and a lease renewal in worker threads: more than the default six.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(32, thread_name_prefix="demo-cluster"))
    folder = Path(tempfile.mkdtemp(prefix="failover-demo-cluster-"))
    view = View(console, live=False)
    shutdown = ShutdownSteps(progress)
    figures: dict[str, float | str] = {}

    def enter(number: int, phase: str) -> None:
        view.phase = phase
        progress.enter(phase)
        console.print(f"\n[bold]{number}. {phase}[/bold]", highlight=False)

    def waiting(wanted: float) -> float:  # a short budget keeps a third for the shutdown
        return progress.deadline(wanted, min(SHUTDOWN_RESERVE, progress.budget / 3))

    def say(text: str) -> None:  # the coordinators' sentences hold brackets: never markup
        view.say(escape(text))

    def fail(message: str) -> DemoFailed:
        return DemoFailed(f"{progress.phase}: {message}")

    etcd = LocalEtcd(binary, folder, lifetime=progress.left() + 15.0)
    try:
        etcd.start()
        shutdown.push("stopping etcd", lambda: etcd.stop(4.0), 10.0)
        await within(progress, "starting etcd", _until_healthy(etcd), ETCD_START)
        say(f"etcd {etcd.endpoint} (pid {etcd.pid}); the policies, the zone file and etcd's log in {folder}")

        port = _free_port(list(EAST.values()) + list(WEST.values()))
        gateways = {name: LocalGateway(name, addr, port) for name, addr in {**EAST, **WEST}.items()}
        shutdown.push("stopping the gateways", lambda: asyncio.gather(*(g.stop() for g in gateways.values())), 3.0)
        for name, gateway in gateways.items():
            await within(progress, f"starting gateway {name}", gateway.start(), STEP)
        say(f"gateways: east {', '.join(EAST.values())}; west {', '.join(WEST.values())} (port {port})")

        zone_path = folder / "demo.test.zone"
        watch = ZoneWatch(ZonefileAdapter(DOMAIN, zone_path, "demo.test."))
        nodes: list[Node] = []
        for name in OBSERVERS:
            policy = cluster_policy(
                name, {"east": EAST, "west": WEST}, {DOMAIN: zone_path}, port, etcd.endpoint, PREFIX,
                interval="500ms", timeout="400ms", state={"ttl": "3s", "loop_wait": "500ms", "retry_timeout": "1s"},
            )  # fmt: skip
            built = asyncio.to_thread(Node.build, name, policy, folder)
            nodes.append(await within(progress, f"building coordinator {name}", built, STEP))

        async def close_nodes() -> None:
            for node in nodes:  # one whose daemon did not stop may still be using its store
                if f"stopping coordinator {node.name}" not in shutdown.unfinished:
                    await node.close()

        shutdown.push("closing the coordinators' probes and stores", close_nodes, 6.0)
        east, west = nodes[OBSERVERS.index("east")], nodes[OBSERVERS.index("west")]

        def teller(node: Node) -> Callable[[ev.Event], None]:
            def on_event(event: ev.Event) -> None:  # from the evaluation's worker thread
                if isinstance(event, ev.PrimaryChanged):
                    say(f"[{node.name}] {event.kind}: {ev.describe(event)}")
                elif isinstance(event, ev.LeaderChanged | ev.QuorumLost | ev.QuorumRegained):
                    say(f"[{node.name}] {ev.describe(event)}")
                elif isinstance(event, ev.AdapterApplied):
                    say(f"[{node.name}] applied: {ev.describe(event)}")
                elif isinstance(event, ev.AdapterFailed | ev.RaceLost):
                    say(f"[{node.name}] {type(event).__name__}: {ev.describe(event)}")

            return on_event

        ballots = Ballots(nodes, DOMAIN, "east")
        background = [asyncio.create_task(watch.run(), name="zone watch"), asyncio.create_task(ballots.run())]

        async def stop_background() -> None:
            for task in background:
                task.cancel()
            await asyncio.wait(background)

        shutdown.push("stopping the zone watch", stop_background, 2.0)

        def leader() -> Node | None:
            return next((n for n in nodes if n.leading() is not None), None)

        def zone_is(addresses: tuple[str, ...]) -> Callable[[], bool]:
            return lambda: watch.poll().addresses == addresses

        def serving() -> str:
            return f"zone file: {watch.now.describe()}"

        # -- 1 ------------------------------------------------------------------------------
        enter(1, "electing")
        say(
            f"coordinators east, west and witness, each with its own policy file, store and etcd session "
            f"(interval {INTERVAL:g}s, fall {FALL}, lease ttl {TTL:g}s renewed every {LOOP_WAIT:g}s)"
        )
        t0 = time.monotonic()
        for node in nodes:
            node.app.coordinator.events.subscribe(teller(node))
            shutdown.push(f"stopping coordinator {node.name}", node.stop, 5.0)
            await within(progress, f"starting coordinator {node.name}", node.daemon.start(), STEP)
            if node is nodes[0]:  # east first and leading (see above)
                await wait_until(progress, "east to lead", lambda: east.leading() is not None, lambda: "none", STEP)
        await wait_until(
            progress,
            "a leader and east in the zone file",
            lambda: leader() is not None and watch.poll().addresses == EAST_ADDRS,
            lambda: f"leader {getattr(leader(), 'name', 'none')}, {serving()}",
            waiting(FIRST_ELECTION),
        )
        first = leader()
        assert first is not None
        figures |= {"first_publish_s": time.monotonic() - t0, "first_leader": first.name}
        figures["first_token"] = first.leading() or 0
        say(f"{first.name} leads; east published after {figures['first_publish_s']:.2f}s: {serving()}")
        await asyncio.sleep(1.0 * speed)

        # -- 2 ------------------------------------------------------------------------------
        enter(2, "one observer cut off")
        say(
            "west's probes of east-a and east-b now fail: this is what an observer whose own network is "
            "broken sees. The gateways are fine: east and the witness still reach them."
        )
        west.cut(DOMAIN, list(EAST), True)
        cut_at = time.monotonic()
        await wait_until(
            progress,
            "west's vote 'east down' in etcd",
            lambda: west.sees(DOMAIN, list(EAST), Status.DOWN) and ballots.votes.get("west") is Status.DOWN,
            lambda: f"votes on east: {ballots.describe()}",
            waiting(CUT_SEEN),
        )
        figures["cut_seen_s"] = seen = time.monotonic() - cut_at
        say(f"east is down for west only, {seen:.2f}s after the cut; votes on east: {ballots.describe()}")
        await asyncio.sleep(HOLD)  # the point: nothing may happen in this window
        moved = watch.since(cut_at)
        if len(moved) != 1 or moved[0].addresses != EAST_ADDRS:
            changes = "; then ".join(s.describe() for s in moved)
            raise fail(f"the zone file changed while only west saw east down: {changes}")
        figures["held_s"] = held = time.monotonic() - cut_at
        now_leader = leader()
        if now_leader is not None and now_leader.daemon.last_outcomes:
            say(f"[{now_leader.name}] decides: {now_leader.daemon.last_outcomes[0].decision.reason}")
        say(f"nothing moved in the {held:.1f}s since the cut, {HOLD:g}s of them with west's vote in etcd: {serving()}")
        west.cut(DOMAIN, list(EAST), False)
        healed = time.monotonic()
        await wait_until(
            progress,
            "west to see east up again",
            lambda: west.sees(DOMAIN, list(EAST), Status.UP) and ballots.votes.get("west") is Status.UP,
            lambda: f"votes on east: {ballots.describe()}",
            waiting(HEAL),
        )
        say(f"west's network is back: it sees east up again after {time.monotonic() - healed:.2f}s")
        await asyncio.sleep(1.0 * speed)

        # -- 3 ------------------------------------------------------------------------------
        enter(3, "east fails")
        say("killing east's gateways (connections now refused, for every observer)")
        killed = time.monotonic()
        for name in EAST:
            await within(progress, f"stopping gateway {name}", gateways[name].stop(), STEP)
        shifted = await wait_until(progress, "the DNS shift to west", zone_is(WEST_ADDRS), serving, waiting(FAILOVER))
        figures["failover_s"] = shifted - killed
        say(
            f"DNS on west {figures['failover_s']:.2f}s after the kill (interval {INTERVAL:g}s, fall {FALL}); "
            f"votes on east: {ballots.describe()}"
        )
        await asyncio.sleep(1.0 * speed)

        # -- 4 ------------------------------------------------------------------------------
        enter(4, "the leader is killed")
        victim = leader()
        if victim is None:
            raise fail("no coordinator leads")
        old_token = victim.leading() or 0
        say(
            f"crashing the leader {victim.name}: its tasks stop without resigning, as with kill -9, so its "
            f"lease (ttl {TTL:g}s) must expire before another coordinator may lead"
        )
        crashed = time.monotonic()
        await within(progress, f"crashing {victim.name}", victim.crash(), STEP)
        await wait_until(
            progress,
            "a new leader",
            lambda: leader() is not None,
            lambda: f"no coordinator leads; votes on east: {ballots.describe()}",
            waiting(NEW_LEADER),
        )
        successor = leader()
        assert successor is not None
        new_token = successor.leading() or 0
        figures |= {"new_leader_s": time.monotonic() - crashed, "killed_leader": victim.name}
        figures |= {"new_leader": successor.name, "old_token": old_token, "new_token": new_token}
        say(
            f"{successor.name} leads {figures['new_leader_s']:.2f}s after the crash (lease ttl {TTL:g}s), "
            f"fencing token {new_token} > {old_token}"
        )

        def fenced() -> bool:
            now = watch.poll()
            return now.addresses == WEST_ADDRS and now.marker is not None and now.marker.token == new_token

        await wait_until(progress, f"the marker to carry token {new_token}", fenced, serving, waiting(FAILOVER))
        served: list[Served] = watch.since(crashed)
        wrong = [s for s in served if s.addresses != WEST_ADDRS or s.marker is None or s.marker.primary != "west"]
        if wrong:
            raise fail("the records left west around the leader change: " + "; ".join(s.describe() for s in wrong))
        say(f"records stayed on west; the new leader rewrote the marker: {serving()}")
        await wait_until(
            progress,
            f"{victim.name} to leave the members",
            lambda: victim.name not in ballots.alive,
            lambda: f"members: {', '.join(ballots.alive)}",
            waiting(STEP),
        )
        say(f"coordinators alive: {', '.join(ballots.alive)} ({victim.name}'s session lease expired with it)")
    finally:
        await shutdown.run()
    return figures


def _summary(f: dict[str, float | str]) -> str:
    return (
        "\n[bold]summary[/bold]: three coordinators on one etcd; one observer's broken view moved nothing, "
        "a real outage moved traffic by quorum, a crashed leader was replaced.\n"
        f"  first leader         {f['first_leader']} (token {f['first_token']}), east published "
        f"{f['first_publish_s']:.2f}s after start\n"
        f"  one observer cut off west saw east down after {f['cut_seen_s']:.2f}s; nothing moved for "
        f"{f['held_s']:.1f}s after the cut (1 of 3 votes, 2 needed)\n"
        f"  real outage          DNS on west {f['failover_s']:.2f}s after east's gateways died "
        f"(interval {INTERVAL:g}s, fall {FALL})\n"
        f"  leader killed        {f['new_leader']} leads {f['new_leader_s']:.2f}s after {f['killed_leader']} crashed "
        f"(lease ttl {TTL:g}s); marker token {f['old_token']} -> {f['new_token']}, records on west throughout\n"
        "Next: docs/multi-region.md deploys the three coordinators and etcd across regions."
    )


def run_cluster_demo(speed: float = 1.0, budget: float | None = None) -> int:
    """Run the cluster demo: 0 with a summary; 1 when a phase missed its deadline or a check
    failed (the message names the phase); 2 when no etcd binary is installed. Like
    ``run_demo``, a watchdog enforces ``budget`` up to the process's exit: call this last."""
    binary = etcd_binary()
    if binary is None:
        print(
            "failover demo --cluster needs an etcd binary on PATH (Debian/Ubuntu: "
            f"{INSTALL}; or etcd's release tarball); the plain `failover demo` needs nothing",
            file=sys.stderr,
        )
        return 2
    console = Console()
    progress = Progress(budget if budget is not None else BUDGET + PAUSES * speed)
    Watchdog(progress).start()
    code = 1
    try:
        try:
            figures = run_loop(_cluster(console, speed, progress, binary))
        except (DemoTimeout, DemoFailed) as exc:
            console.print(f"[red]demo: {exc}[/red]", highlight=False, soft_wrap=True)
            return code
        code = 0
        console.print(_summary(figures), highlight=False, soft_wrap=True)
        return code
    finally:
        progress.enter("exiting")
        exit_past_stuck_threads(code)


if __name__ == "__main__":
    sys.exit(run_cluster_demo())
