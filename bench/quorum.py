"""Failover through the quorum of three coordinators, and false failovers under single-observer faults.

(a) Failover time through the quorum: three ``failover run`` processes (east, west, witness:
    ``FAILOVER_OBSERVER``) on a local etcd (one member; ``--etcd-members 3``), interval 1 s,
    fall 3, a real BIND (rfc2136, TSIG) and real loopback gateways, exactly as ``bench/failover_time.py`` measures one
    observer: each trial starts the coordinators on a fresh etcd prefix and an empty record,
    waits for east to be published and for all three to report, waits a random fraction of a
    probe interval, kills east's gateways and polls BIND every 10 ms until the answer is west's.
    ``bench/failover_time.py`` runs first, in this same run and on this machine, for the
    single-observer figure; the JSON holds both and the difference.
(b) False failovers: three coordinators (``python bench/quorum.py --node ...``: one ``Daemon``
    each, with its own store and etcd session, probes wrapped so they can be cut) over several
    domains, each published to its own zone file. For each domain in turn, once all three votes
    on its primary are up in etcd, one observer (rotating) sees the primary's gateways down (its
    probes of them fail) while they are fine: until its "down" vote is in etcd (``fall`` failed
    probes at least), plus a hold; then its probes heal and the fault ends with its "up" vote.
    The domains run in parallel; per domain one observer at a time. A fault during which another
    observer also voted down (a probe that really failed: a loaded machine) is counted apart:
    it is two faults, and a quorum. The figure is the primary changes during single-observer
    faults (the domain's epoch in etcd before and after), which must be 0; the epochs, the audit
    log's moves and the zone files' markers are also counted over the whole run. Checks are tcp
    connects (``--fault-check``) to listeners in a process of their own, so the loopback
    gateways' CPU never fails a probe. A control at the end cuts two observers at once on one
    domain: that one must fail over (the counters can see a change).

    python bench/quorum.py                 # 10 trials each for (a), 1,000 faults for (b): ~20 min
    python bench/quorum.py --quick         # 3 trials, 60 faults: ~3 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.update
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import DOMAIN, EAST, WEST, percentile, two_regions, wait  # noqa: E402

from failover.adapters.rfc2136 import Rfc2136Adapter  # noqa: E402
from failover.adapters.zonefile import ZonefileAdapter  # noqa: E402
from failover.demo._etcd import etcd_binary  # noqa: E402
from failover.demo._nodes import OBSERVERS, Node, ZoneWatch, cluster_policy  # noqa: E402
from failover.errors import FailoverError  # noqa: E402
from failover.localgw import LocalGateway, ThreadedGateways  # noqa: E402
from failover.model import RegionHealth, Status  # noqa: E402
from failover.store.etcd import EtcdStore  # noqa: E402
from failover.store.etcd_client import EtcdClient  # noqa: E402
from tests.support.bind import Bind, free_port, start_bind  # noqa: E402
from tests.support.etcd import EtcdCluster, start_etcd  # noqa: E402

EAST_ADDRS, WEST_ADDRS = sorted(EAST.values()), sorted(WEST.values())


def figures(values: list[float]) -> dict[str, Any]:
    return {
        "trials": len(values),
        "p50_s": round(statistics.median(values), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
        "all_s": [round(v, 3) for v in values],
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the single-observer figure: bench/failover_time.py, as it is ---------------------------------
def single_observer(trials: int) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "bench" / "failover_time.py"), "--trials", str(trials)]
    say(f"(a) single observer: {' '.join(command[1:])}")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=120 * trials, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- (a) failover time through the quorum ------------------------------------------------------
def quorum_policy(bind: Bind, port: int, etcd: EtcdCluster, prefix: str) -> dict[str, Any]:
    hosts = ",".join(f"127.0.0.1:{m.client_port}" for m in etcd.members)
    check = {"kind": "http", "port": port, "path": "/ready", "interval": "1s", "timeout": "500ms"}
    tsig = {"name": bind.key_name, "secret_env": "FAILOVER_TSIG_SECRET"}
    return {
        "service": "bench",
        "observer": "east",  # FAILOVER_OBSERVER says which one each process is
        "regions": two_regions(),
        "domains": [
            {
                "name": DOMAIN,
                "checks": [check],
                "traffic": [{"kind": "rfc2136", "server": bind.server, "zone": bind.zone, "ttl": 30, "tsig": tsig}],
            }
        ],
        "health": {"rise": 2, "fall": 3},
        "election": {"hold_down": "0s"},
        "observers": list(OBSERVERS),
        "state": {"url": f"etcd://{hosts}{prefix}"},  # ttl 10s, loop_wait 2s, retry_timeout 3s: the defaults
    }


def all_report_up(client: EtcdClient, prefix: str) -> bool:
    """Each of the three coordinators has a live report in etcd that sees east and west up."""
    up = 0
    for kv in client.range(f"{prefix}/health/".encode(), prefix=True).kvs:
        verdicts = {(d, r): v["status"] for d, r, v in json.loads(kv.value)["verdicts"]}
        up += verdicts.get((DOMAIN, "east")) == "up" and verdicts.get((DOMAIN, "west")) == "up"
    return up == len(OBSERVERS)


def empty_record(update: dns.update.UpdateMessage) -> None:
    update.delete(DOMAIN + ".", "A")
    update.delete("_failover." + DOMAIN + ".", "TXT")


def quorum_trials(trials: int, work: Path, etcd: EtcdCluster, pool: ThreadedGateways, port: int) -> dict[str, Any]:
    bind = start_bind(work / "bind")
    adapter = Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    )
    client = etcd.client(timeout=2.0)
    rng = random.Random(7)
    flips: list[float] = []
    leaders: list[str] = []
    try:
        for trial in range(trials):
            adapter.raw_update(empty_record)
            prefix = f"/bench/quorum/{os.getpid()}-{trial}"
            policy_file = work / f"quorum-{trial}.yaml"
            policy_file.write_text(yaml.safe_dump(quorum_policy(bind, port, etcd, prefix)))
            processes: list[subprocess.Popen[bytes]] = []
            try:
                for name in OBSERVERS:
                    env = dict(os.environ, FAILOVER_TSIG_SECRET=bind.key_secret, FAILOVER_OBSERVER=name)
                    with (work / f"quorum-{trial}-{name}.log").open("w") as log:
                        processes.append(
                            subprocess.Popen(
                                [sys.executable, "-m", "failover", "run", "--policy", str(policy_file)],
                                env=env,
                                stdout=log,
                                stderr=subprocess.STDOUT,
                            )
                        )
                wait(lambda: bind.query(DOMAIN) == EAST_ADDRS, 60, "first publish")
                wait(functools.partial(all_report_up, client, prefix), 30, "three reports of east and west up", 0.1)
                time.sleep(rng.uniform(0.5, 1.5))  # random phase against the three probe schedules
                killed = time.monotonic()
                pool.stop(*EAST)
                flipped = wait(lambda: bind.query(DOMAIN) == WEST_ADDRS, 30, "flip to west")
                leader = client.get(f"{prefix}/leader".encode())
                leaders.append(leader.value.decode() if leader else "-")
                flips.append(flipped - killed)
                say(f"(a) quorum trial {trial}: {flipped - killed:.3f}s (leader {leaders[-1]})")
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(timeout=10)
                pool.start(*EAST)
    finally:
        client.close()
        bind.stop()
    return {**figures(flips), "leaders": leaders}


# -- (b) false failovers under single-observer faults -------------------------------------------
MOVES = ("elected", "failover", "failback", "override", "hold")  # audit kinds of a move made or held back


GATEWAYS = {"east": list(EAST), "west": list(WEST)}


def node_main(name: str, folder: Path) -> int:
    """A child process: one coordinator (``Node``) whose probes of a region's gateways fail for
    the ``domain region`` lines of ``folder/cut-<name>`` (the parent rewrites it), until SIGTERM."""
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(filename=folder / f"{name}.log", level=logging.WARNING, format=fmt)
    logging.getLogger("failover").setLevel(logging.INFO)
    return asyncio.run(_node(name, folder))


async def _node(name: str, folder: Path) -> int:
    node = await asyncio.to_thread(Node.load, name, folder / f"policy-{name}.yaml")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    control = folder / f"cut-{name}"
    domains = [d.name for d in node.app.policy.domains]
    await node.daemon.start()
    try:
        while not stop.is_set():
            try:
                wanted = {tuple(line.split()) for line in control.read_text().splitlines() if line.strip()}
            except FileNotFoundError:
                wanted = set()
            for domain in domains:
                for region, gateways in GATEWAYS.items():
                    node.cut(domain, gateways, (domain, region) in wanted)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)
    finally:
        await node.daemon.stop()
        await node.close()
    return 0


# (b)'s tcp checks connect to these listening sockets (argv: port, addresses), served by a process
# of their own that accepts and closes every connection at once, with a deep backlog: a busy
# parent (or its GIL) never makes a connect time out. Plain Python, so it starts at once.
LISTENER = """
import selectors, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
selector = selectors.DefaultSelector()
for address in sys.argv[2:]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, int(sys.argv[1])))
    server.listen(4096)
    server.setblocking(False)
    selector.register(server, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        try:
            while True:
                key.fileobj.accept()[0].close()
        except (BlockingIOError, ConnectionError):
            pass
"""


def connects(addresses: list[str], port: int) -> bool:
    try:
        for address in addresses:
            socket.create_connection((address, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Cuts:
    """The parent's side: which (domain, region) each observer's probes fail for, in files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cut: dict[str, dict[str, str]] = {o: {} for o in OBSERVERS}  # observer -> domain -> region

    def set(self, observer: str, domain: str, region: str | None) -> None:
        if region is None:
            self.cut[observer].pop(domain, None)
        else:
            self.cut[observer][domain] = region
        scratch = self.folder / f".cut-{observer}"
        scratch.write_text("".join(f"{d} {r}\n" for d, r in sorted(self.cut[observer].items())))
        os.replace(scratch, self.folder / f"cut-{observer}")  # the child never reads half a list


@dataclass
class Fault:
    domain: str
    observer: str
    primary: str
    seen: bool  # its "down" vote reached etcd
    seconds: float  # from the cut to the heal
    others_down: list[str]  # other observers that voted the primary down meanwhile (a second fault)
    others_partial: list[str]  # other observers that saw one of its gateways down meanwhile
    moved: bool  # the domain's epoch changed from before the cut to the end of the fault
    records: list[str]  # what the zone file served meanwhile that was not all the primary's gateways


class Ballot:
    """Every observer's vote on (domain, region) as etcd holds it, polled every 0.1 s; remembers
    who saw the region down, or one of its gateways, while it watched."""

    def __init__(self, store: EtcdStore, domain: str, region: str) -> None:
        self.store, self.key = store, (domain, region)
        self.down: set[str] = set()
        self.partial: set[str] = set()

    async def until(self, wanted: Callable[[dict[str, RegionHealth]], bool], seconds: float) -> bool:
        end = time.monotonic() + seconds
        while True:
            try:
                views = await asyncio.to_thread(self.store.all_region_health, 0.0)
                votes = {o: v[self.key] for o, v in views.items() if self.key in v}
            except FailoverError:
                votes = {}
            self.down |= {o for o, vote in votes.items() if vote.status is Status.DOWN}
            self.partial |= {o for o, vote in votes.items() if vote.up < vote.total}
            if wanted(votes):
                return True
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.1)  # every read is a linearizable one: spare etcd


def all_up(observers: tuple[str, ...], votes: dict[str, RegionHealth]) -> bool:
    """Every one of ``observers`` votes the region up with every gateway up."""
    return all((v := votes.get(o)) is not None and v.status is Status.UP and v.up == v.total for o in observers)


def voted_down(observer: str, votes: dict[str, RegionHealth]) -> bool:
    return (vote := votes.get(observer)) is not None and vote.status is Status.DOWN


async def until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not within {deadline}s")
        await asyncio.sleep(0.05)


def start_children(args: argparse.Namespace, folder: Path, port: int, children: list[subprocess.Popen[bytes]]) -> None:
    """The three coordinators and, for tcp checks, the listeners; into ``children`` as they start."""

    def spawn(*argv: str) -> None:
        quiet = subprocess.DEVNULL
        children.append(subprocess.Popen([sys.executable, *argv], stdin=quiet, stdout=quiet))

    if args.fault_check == "tcp":
        addresses = [*EAST.values(), *WEST.values()]
        spawn("-c", LISTENER, str(port), *addresses)
        wait(lambda: connects(addresses, port), 30, "the tcp listeners", 0.05)
    for name in OBSERVERS:
        spawn(__file__, "--node", name, str(folder))


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


async def false_failovers(args: argparse.Namespace, work: Path, etcd: EtcdCluster, port: int) -> dict[str, Any]:
    folder = work / "faults"
    folder.mkdir()
    domains = {f"d{i}.bench.test": folder / f"zone-{i}" for i in range(args.domains)}
    interval = args.fault_interval
    state = {"ttl": "6s", "loop_wait": "1s", "retry_timeout": "2s"}
    if args.fault_check == "tcp":  # listeners of their own, on another port than (a)'s gateways
        port = free_port()
    hosts = ",".join(f"127.0.0.1:{m.client_port}" for m in etcd.members)
    prefix = f"/bench/faults/{os.getpid()}"
    for name in OBSERVERS:
        policy = cluster_policy(
            name, {"east": EAST, "west": WEST}, domains, port, hosts, prefix, interval=f"{interval * 1000:.0f}ms",
            timeout=f"{interval * 1000:.0f}ms", state=state, service="bench", kind=args.fault_check,
        )  # fmt: skip
        (folder / f"policy-{name}.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    store = EtcdStore(etcd.client(timeout=2.0), prefix, "bench")  # reads only: no lease, no vote
    watches = {d: ZoneWatch(ZonefileAdapter(d, path, "bench.test."), every=0.05) for d, path in domains.items()}
    cuts = Cuts(folder)
    children: list[subprocess.Popen[bytes]] = []
    background = [asyncio.create_task(w.run()) for w in watches.values()]
    faults: list[Fault] = []
    try:
        start_children(args, folder, port, children)
        await until(lambda: all(w.poll().addresses == tuple(EAST_ADDRS) for w in watches.values()), 120, "east")

        async def epoch_and_primary(domain: str) -> tuple[int, str]:
            state = await asyncio.to_thread(store.get_state, domain)
            return (state.epoch, state.primary or "-") if state else (0, "-")

        before = {d: (await epoch_and_primary(d))[0] for d in domains}
        audited = len(await asyncio.to_thread(store.history))
        marks = {d: len(w.seen) for d, w in watches.items()}
        per_domain = -(-args.faults // len(domains))
        started = time.monotonic()

        async def inject(index: int, domain: str) -> None:
            full = {"east": tuple(EAST_ADDRS), "west": tuple(WEST_ADDRS)}
            for k in range(min(per_domain, args.faults - index * per_domain)):
                epoch, primary = await epoch_and_primary(domain)
                observer = OBSERVERS[(k + index) % len(OBSERVERS)]
                ballot = Ballot(store, domain, primary)
                if not await ballot.until(functools.partial(all_up, OBSERVERS), 60):
                    raise TimeoutError(f"{domain}: the three votes on {primary} were not all up within 60s")
                ballot.down.clear()  # from here on: who else sees it down while this fault lasts
                ballot.partial.clear()
                cuts.set(observer, domain, primary)
                cut = time.monotonic()
                seen = await ballot.until(functools.partial(voted_down, observer), 10)
                if seen:  # the down vote stands in etcd meanwhile
                    await ballot.until(lambda v: False, args.hold * interval)
                cuts.set(observer, domain, None)
                seconds = time.monotonic() - cut
                if not await ballot.until(functools.partial(all_up, (observer,)), 30):
                    raise TimeoutError(f"{observer} did not see {primary} up again for {domain}")
                moved = (await epoch_and_primary(domain))[0] != epoch
                served = [s.describe() for s in watches[domain].since(cut) if s.addresses != full[primary]]
                down, partial = sorted(ballot.down - {observer}), sorted(ballot.partial - {observer})
                faults.append(Fault(domain, observer, primary, seen, seconds, down, partial, moved, served))
                if len(faults) % 100 == 0:
                    say(f"(b) {len(faults)} faults, {time.monotonic() - started:.0f}s")

        await asyncio.gather(*(inject(i, d) for i, d in enumerate(domains)))
        took = time.monotonic() - started
        epoch_changes = sum([(await epoch_and_primary(d))[0] - before[d] for d in domains])
        moves = [e for e in (await asyncio.to_thread(store.history))[audited:] if e.kind in MOVES]
        flips = zone_flips(watches, marks)

        # the control: two observers at once on one domain are a quorum, and that domain fails over
        domain = next(iter(domains))
        _, primary = await epoch_and_primary(domain)
        other = "west" if primary == "east" else "east"
        for name in ("east", "witness"):
            cuts.set(name, domain, primary)
        cut = time.monotonic()
        wanted = tuple(sorted(EAST_ADDRS if other == "east" else WEST_ADDRS))
        await until(lambda: watches[domain].poll().addresses == wanted, 30, "the control's failover")
        control = round(time.monotonic() - cut, 3)
    finally:
        for task in background:
            task.cancel()
        stop_children(children)
        store.client.close()
    single = [f for f in faults if not f.others_down]
    alone = [f for f in faults if not f.others_partial]  # no other observer saw even one gateway down
    noise = sum(
        1
        for name in OBSERVERS
        for line in (folder / f"{name}.log").read_text(errors="replace").splitlines()
        if "-> down" in line and "network is cut" not in line
    )
    return {
        "faults": len(faults),
        "faults_whose_down_vote_reached_etcd": sum(f.seen for f in faults),
        "single_observer_faults": len(single),
        "false_failovers": sum(f.moved for f in single),
        "faults_where_another_observer_also_voted_down": {
            "count": len(faults) - len(single),
            "primary_changes": sum(f.moved for f in faults if f.others_down),
            "why": "probes that really failed on this machine (timeouts under load), not injected",
        },
        "primary_changes_in_all": {"epochs_in_etcd": epoch_changes, "audited_moves": len(moves), "markers": len(flips)},
        "changes_seen": [f"{e.domain}: {e.kind}: {e.detail}" for e in moves[:5]] + flips[:5],
        "records_short_of_a_gateway": {  # the primary stayed, but the zone file left out one of its gateways
            "faults_where_no_other_observer_saw_a_gateway_down": len(alone),
            "of_them_with_a_gateway_left_out": sum(bool(f.records) for f in alone),
            "in_all_faults": sum(bool(f.records) for f in faults),
            "seen": [f"{f.domain} ({f.observer} cut): {f.records[0]}" for f in faults if f.records][:5],
        },
        "fault_length_s": {
            "min": round(min(f.seconds for f in faults), 3),
            "p50": round(statistics.median(f.seconds for f in faults), 3),
        },
        "probe_failures_not_injected": noise,
        "seconds": round(took, 1),
        "setup": {
            "coordinators": "3 processes (east, west, witness), each one Daemon with its own store and session",
            "domains_in_parallel": len(domains),
            "check": args.fault_check,
            "interval_s": interval,
            "fall": 3,
            "rise": 2,
            "fault": "with all three votes on the primary up, one observer's probes of the primary's gateways fail "
            f"until its down vote is in etcd, then {args.hold:g} intervals more; then they heal and the fault ends "
            "with its up vote",
            "lease": state,
            "dns": "a zone file per domain",
        },
        "control_two_observers_failover_s": control,
    }


def zone_flips(watches: dict[str, ZoneWatch], marks: dict[str, int]) -> list[str]:
    """Every change of the marker's primary in the zone files since the marks."""
    flips: list[str] = []
    for domain, watch in watches.items():
        previous = watch.seen[marks[domain] - 1] if marks[domain] else None
        for served in watch.seen[marks[domain] :]:
            before = previous.marker.primary if previous is not None and previous.marker else None
            if served.marker is not None and before is not None and served.marker.primary != before:
                flips.append(f"{domain}: {served.describe()}")
            previous = served
    return flips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="(a): trials for each of the two figures")
    parser.add_argument("--faults", type=int, default=1000, help="(b): single-observer faults in all")
    parser.add_argument("--domains", type=int, default=10, help="(b): domains faulted in parallel")
    parser.add_argument("--fault-interval", type=float, default=0.2, help="(b): probe interval (= timeout), seconds")
    parser.add_argument(
        "--fault-check",
        choices=["tcp", "http"],
        default="tcp",
        help="(b): tcp: the kernel answers, so the "
        "loopback gateways' own CPU never fails a probe; http: GET /ready, as in (a)",
    )
    parser.add_argument("--hold", type=float, default=3.0, help="(b): intervals each down vote stands")
    parser.add_argument("--etcd-members", type=int, default=1, help="1 leaves the CPU to the coordinators")
    parser.add_argument("--quick", action="store_true", help="3 trials and 60 faults")
    parser.add_argument("--skip", choices=["a", "b"], help="leave one part out")
    parser.add_argument("--node", nargs=2, metavar=("OBSERVER", "FOLDER"), help=argparse.SUPPRESS)  # (b)'s children
    args = parser.parse_args()
    if args.node:
        return node_main(args.node[0], Path(args.node[1]))
    if args.quick:
        args.trials, args.faults = 3, 60
    command = shlex.join(["python", "bench/quorum.py", *sys.argv[1:]])
    say(f"command: {command}")
    if etcd_binary() is None:
        say("bench/quorum.py needs etcd: apt-get install etcd-server")
        return 2
    work = Path(tempfile.mkdtemp(prefix="failover-bench-quorum-"))
    say(f"logs in {work}")
    result: dict[str, Any] = {"benchmark": "quorum", "command": command}
    if args.skip != "a":
        single = single_observer(args.trials)
    etcd = start_etcd(work / "etcd", size=args.etcd_members)
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**EAST, **WEST}.items()])
    pool.start()
    try:
        if args.skip != "a":
            quorum = quorum_trials(args.trials, work, etcd, pool, port)
            result["failover_time"] = {
                "setup": {
                    "interval": "1s", "fall": 3, "rise": 2, "dns": "BIND 9 (rfc2136, TSIG): the flip is its answer",
                    "coordinators": "3 `failover run` processes (east, west, witness)",
                    "etcd": f"{args.etcd_members} member(s) on loopback", "lease": "ttl 10s, loop_wait 2s, retry 3s",
                },
                "quorum": quorum,
                "single_observer": {k: single[k] for k in ("trials", "p50_s", "p95_s", "max_s", "min_s", "all_s")},
                "quorum_minus_single_s": {
                    "p50": round(quorum["p50_s"] - single["p50_s"], 3),
                    "p95": round(quorum["p95_s"] - single["p95_s"], 3),
                },
            }  # fmt: skip
        if args.skip != "b":
            result["false_failovers"] = asyncio.run(false_failovers(args, work, etcd, port))
    finally:
        pool.close()
        etcd.close()
        for member in etcd.members:  # 60+ MB of preallocated WAL each; the logs stay
            shutil.rmtree(member.data_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    bad = result.get("false_failovers", {}).get("false_failovers", 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
