"""Three ``failover run`` coordinators (east, west, witness) as one system on a real etcd cluster,
against a real BIND and real loopback gateways, and nftables rules that cut one of them off.

* ``Cluster`` writes one policy (regions east and west, one domain, interval 1s, fall 3,
  ``observers: [east, west, witness]``, an ``etcd://`` store under a fresh prefix) and starts
  one coordinator per observer, each as its own unix uid (40001..40003), so that a rule with
  ``meta skuid`` cuts exactly one coordinator's traffic, as a broken link would. It reads what
  matters from the servers themselves: the A records and the ``_failover.<domain>`` marker
  from BIND (``DnsRecorder`` keeps every change with the time it was first seen), the leader
  key and the members from etcd, and ``failover status --json`` through the CLI.
* ``Firewall`` is an nftables table of our own, ``inet failover_test_<pid>``: one output chain,
  one rule per cut (a uid's packets to some addresses and TCP ports, refused or dropped),
  deleted whole in teardown.

When the interpreter lives where other uids cannot read (pyenv under a 0700 /root), each
coordinator runs under ``setpriv`` with CAP_DAC_READ_SEARCH as its one ambient capability: it
can read the code, and its sockets still belong to its own uid. Only the processes started
here are signalled, by their pid.

Needs root, ``nft``, ``named`` and ``etcd``: elsewhere the tests skip and say what is missing;
in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.adapters.abc import Marker, marker_name
from failover.errors import FailoverError
from failover.store.etcd_client import EtcdClient
from tests.conftest import EAST, WEST, failover_cmd
from tests.support.bind import Bind, require_named
from tests.support.etcd import EtcdCluster, require_etcd

OBSERVERS = ("east", "west", "witness")
UIDS = {"east": 40001, "west": 40002, "witness": 40003}
EAST_ADDRS = tuple(sorted(EAST.values()))
WEST_ADDRS = tuple(sorted(WEST.values()))

# The timings under test: probe interval 1s, fall 3; a lease of 6s renewed every second, each
# etcd call bounded by 2s (Patroni's rule: 1 + 2 * 2 <= 6).
INTERVAL, FALL, RISE = 1.0, 3, 2
TTL, LOOP_WAIT, RETRY_TIMEOUT = 6.0, 1.0, 2.0


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + " (required in CI)")
    pytest.skip(message)


def require_cluster_tools() -> None:
    """Root (a uid per coordinator, nftables), nft that works here, named and etcd."""
    if os.geteuid() != 0:
        _missing("the cluster tests run as root: each coordinator under its own uid, cut off with nftables")
    if shutil.which("nft") is None:
        _missing("nftables is not installed: apt-get install -y nftables")
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        _missing(f"nft cannot change the ruleset here (CAP_NET_ADMIN?): {probe.stderr.strip()}")
    require_named()
    require_etcd()


# -- nftables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    handle: int
    text: str


class Firewall:
    """Cuts one uid's TCP traffic to some addresses and ports, in a table of our own."""

    def __init__(self) -> None:
        self.table = f"failover_test_{os.getpid()}"
        self._created = False

    def _nft(self, *args: str) -> str:
        done = subprocess.run(["nft", *args], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"nft {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _ensure_table(self) -> None:
        if not self._created:
            self._nft("add", "table", "inet", self.table)
            self._created = True  # from here on close() deletes it, even if the chain fails
            self._nft("add", "chain", "inet", self.table, "out",
                      "{ type filter hook output priority 0 ; policy accept ; }")

    def cut(self, uid: int, addresses: Iterable[str], ports: Iterable[int], how: str = "drop") -> Rule:
        """``how``: ``drop`` (packets vanish: the caller times out, as on a broken link) or
        ``reject`` (a TCP reset: connection refused at once)."""
        verdict = {"drop": "drop", "reject": "reject with tcp reset"}[how]
        addrs = ", ".join(sorted(set(addresses)))
        port_list = ", ".join(str(p) for p in sorted(set(ports)))
        text = f"meta skuid {uid} ip daddr {{ {addrs} }} tcp dport {{ {port_list} }} {verdict}"
        self._ensure_table()
        echoed = self._nft("--echo", "--handle", "add", "rule", "inet", self.table, "out", *text.split())
        found = re.search(r"# handle (\d+)", echoed)
        if not found:
            raise RuntimeError(f"nft did not say the new rule's handle: {echoed!r}")
        return Rule(int(found.group(1)), text)

    def restore(self, rule: Rule) -> None:
        self._nft("delete", "rule", "inet", self.table, "out", "handle", str(rule.handle))

    def rules(self) -> str:
        return self._nft("list", "table", "inet", self.table) if self._created else ""

    def close(self) -> None:
        if self._created:
            subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True, timeout=10)
            self._created = False


# -- what BIND publishes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    addresses: tuple[str, ...]
    marker: Marker | None


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when first seen
    published: Published


class DnsRecorder:
    """Polls BIND every ``every`` seconds and keeps each new (A records, marker) with the time
    it was first seen: what the tests assert on, never the coordinators' logs."""

    def __init__(self, read: Callable[[], Published], every: float = 0.05) -> None:
        self._read = read
        self.every = every
        self.history: list[Seen] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dns-recorder")

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> DnsRecorder:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = self._read()
            except Exception:  # BIND busy for a moment: the next poll tells
                self.errors += 1
            else:
                seen = time.monotonic()
                with self._lock:
                    if not self.history or self.history[-1].published != now:
                        self.history.append(Seen(seen, now))
            self._stop.wait(self.every)

    def latest(self) -> Published | None:
        with self._lock:
            return self.history[-1].published if self.history else None

    def since(self, start: float) -> list[Seen]:
        """What was published at ``start`` (the last value seen before it) and every change after."""
        with self._lock:
            before = [s for s in self.history if s.at <= start]
            return before[-1:] + [s for s in self.history if s.at > start]

    def wait(self, condition: Callable[[Published], bool], after: float, deadline: float, what: str) -> float:
        """When a value matching ``condition`` was first published at or after ``after`` (a
        monotonic time; ``after`` itself if the value current then matches). Waits up to
        ``deadline`` seconds from now for one."""
        end = time.monotonic() + deadline
        while True:
            for seen in self.since(after):
                if condition(seen.published):
                    return max(seen.at, after)
            if time.monotonic() >= end:
                raise AssertionError(f"{what}: not seen within {deadline}s; BIND shows {self.latest()}")
            time.sleep(self.every / 2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the coordinators ------------------------------------------------------------------------------
@dataclass
class Process:
    name: str
    uid: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log(self, limit: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:] if self.log_path.exists() else ""


@dataclass
class StatusResult:
    returncode: int
    data: dict[str, Any] | None
    stderr: str
    seconds: float


@functools.cache
def _reaches_code(uid: int) -> bool:
    """Can ``uid`` run this interpreter and import failover with no help (asked once per uid)?"""
    try:
        done = subprocess.run([failover_cmd()[0], "-c", "import failover.cli"], user=uid, group=uid,
                              extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
                              capture_output=True, timeout=60)
    except PermissionError:  # the interpreter itself is out of reach
        return False
    return done.returncode == 0


class Cluster:
    def __init__(self, bind: Bind, etcd: EtcdCluster, gateway_port: int, logdir: Path, label: str) -> None:
        self.bind = bind
        self.etcd = etcd
        self.gateway_port = gateway_port
        tag = f"{re.sub(r'[^a-z0-9-]', '-', label.lower())[:40].strip('-')}-{secrets.token_hex(3)}"
        self.domain = f"{tag}.{bind.zone.rstrip('.')}"
        self.prefix = f"/failover-test/{tag}"
        # The coordinators read the policy as their own uid: a directory of ours, readable by all
        # (pytest's tmp_path sits under a 0700 directory). No secret goes in it.
        self.workdir = Path(tempfile.mkdtemp(prefix="failover-cluster-"))
        self.workdir.chmod(0o755)
        self.logdir = logdir
        self.policy_path = self.workdir / "policy.yaml"
        self.policy_path.write_text(yaml.safe_dump(self.policy(), sort_keys=False))
        self.policy_path.chmod(0o644)
        self.coordinators = {name: Process(name, UIDS[name], logdir / f"{name}.log") for name in OBSERVERS}
        self._client = EtcdClient(etcd.endpoints, timeout=1.0)
        self.recorder = DnsRecorder(self.published)

    # -- the policy ------------------------------------------------------------------------------
    @property
    def etcd_ports(self) -> list[int]:
        return [m.client_port for m in self.etcd.members]

    def policy(self) -> dict[str, Any]:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.etcd_ports)
        return {
            "service": "payments-api",
            "observer": "east",  # FAILOVER_OBSERVER says which one each process is
            "regions": [
                {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
                {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
            ],
            "domains": [{
                "name": self.domain,
                "checks": [{"kind": "http", "port": self.gateway_port, "path": "/ready",
                            "interval": f"{INTERVAL:g}s", "timeout": "500ms"}],
                "traffic": [{
                    "kind": "rfc2136", "server": self.bind.server, "zone": self.bind.zone, "ttl": 30,
                    "tsig": {"name": self.bind.key_name, "algorithm": self.bind.algorithm,
                             "secret_env": "FAILOVER_TSIG_SECRET"},
                }],
            }],
            "health": {"rise": RISE, "fall": FALL},
            "election": {"failback": "manual", "hold_down": "0s", "max_failovers_per_hour": 20},
            "observers": list(OBSERVERS),
            "state": {"url": f"etcd://{hosts}{self.prefix}", "ttl": f"{TTL:g}s",
                      "loop_wait": f"{LOOP_WAIT:g}s", "retry_timeout": f"{RETRY_TIMEOUT:g}s"},
        }

    def env(self, observer: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAILOVER_", "ETCD"))}
        env.update(FAILOVER_OBSERVER=observer, FAILOVER_TSIG_SECRET=self.bind.key_secret,
                   PYTHONDONTWRITEBYTECODE="1")
        return env

    # -- coordinators ----------------------------------------------------------------------------
    def start(self, first: str | None = None) -> None:
        """Start the three coordinators; with ``first``, that one alone until it leads, so a
        scenario knows who leads (the others only campaign while nobody does)."""
        if not self.recorder.started:
            self.recorder.start()
        if first is not None:
            self._start(self.coordinators[first])
            self.wait_leader(lambda lead: lead[0] == first, 30, f"{first} leading")
        for name in OBSERVERS:
            if name != first:
                self._start(self.coordinators[name])

    def _start(self, coordinator: Process) -> None:
        assert not coordinator.running, f"{coordinator.name} is already running"
        uid = coordinator.uid
        home = self.workdir / coordinator.name
        home.mkdir(exist_ok=True)
        os.chown(home, uid, uid)
        command = [*failover_cmd(), "run", "--policy", str(self.policy_path)]
        if not _reaches_code(uid):
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *command]
            drop: dict[str, Any] = {}
        else:
            drop = {"user": uid, "group": uid, "extra_groups": []}
        env = {**self.env(coordinator.name), "HOME": str(home)}
        with coordinator.log_path.open("ab") as log:
            coordinator.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                   cwd=home, **drop)

    def kill(self, name: str) -> None:
        """SIGKILL, the way a machine dies: nothing resigns, the lease runs out by itself."""
        coordinator = self.coordinators[name]
        coordinator.signal(signal.SIGKILL)
        coordinator.wait(10)

    def terminate(self, name: str, timeout: float = 20.0) -> int | None:
        coordinator = self.coordinators[name]
        coordinator.signal(signal.SIGTERM)
        code = coordinator.wait(timeout)
        if code is None:
            coordinator.signal(signal.SIGKILL)
            coordinator.wait(10)
        return code

    def close(self) -> None:
        self.recorder.close()
        running = [c for c in self.coordinators.values() if c.running]
        for coordinator in running:
            coordinator.signal(signal.SIGTERM)
        for coordinator in running:
            if coordinator.wait(20) is None:
                coordinator.signal(signal.SIGKILL)
                coordinator.wait(10)
        self._client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, limit: int = 2500) -> str:
        return "\n".join(f"--- {c.name} (uid {c.uid}, pid {c.process.pid if c.process else '-'}):\n{c.log(limit)}"
                         for c in self.coordinators.values())

    # -- what BIND publishes ------------------------------------------------------------------------
    def addresses(self) -> tuple[str, ...]:
        return tuple(self.bind.query(self.domain))

    def marker(self) -> Marker | None:
        values = self.bind.query(marker_name(self.domain), "TXT")
        return Marker.parse(values[0]) if len(values) == 1 else None

    def serial(self) -> int:
        return int(self.bind.query(self.bind.zone, "SOA")[0].split()[2])

    def published(self) -> Published:
        """The records and the marker as of one zone serial: two queries could straddle an
        update (which changes both at once) and show a state that never existed."""
        for _ in range(10):
            serial = self.serial()
            now = Published(self.addresses(), self.marker())
            if self.serial() == serial:
                return now
        raise RuntimeError(f"{self.bind.zone} kept changing while {self.domain} was read")

    # -- etcd, read directly --------------------------------------------------------------------------
    def leader(self) -> tuple[str, int] | None:
        """The leader key: who leads and its fencing token (the key's create revision)."""
        kv = self._client.get(f"{self.prefix}/leader".encode())
        return (kv.value.decode(), kv.create_revision) if kv else None

    def members(self) -> set[str]:
        found = self._client.range(f"{self.prefix}/members/".encode(), prefix=True).kvs
        return {kv.key.decode().rsplit("/", 1)[1] for kv in found}

    def wait_leader(
        self, condition: Callable[[tuple[str, int]], bool], deadline: float, what: str
    ) -> tuple[float, tuple[str, int]]:
        """When a leader key matching ``condition`` was first read (polled every 20 ms)."""
        end = time.monotonic() + deadline
        last: tuple[str, int] | None = None
        while time.monotonic() < end:
            try:
                last = self.leader()
            except FailoverError:
                last = None
            if last is not None and condition(last):
                return time.monotonic(), last
            time.sleep(0.02)
        raise AssertionError(f"{what}: not within {deadline}s (leader key: {last})\n{self.logs()}")

    def wait_ready(self, deadline: float = 40.0) -> tuple[str, int]:
        """Every coordinator a member, one leader, east published with a marker carrying the
        leader's token; returns the leader."""
        end = time.monotonic() + deadline
        state = "nothing yet"
        while time.monotonic() < end:
            dead = [c.name for c in self.coordinators.values() if not c.running]
            if dead:
                raise AssertionError(f"coordinator(s) {dead} exited while starting\n{self.logs()}")
            try:
                members, leader = self.members(), self.leader()
            except FailoverError as exc:
                state = f"etcd: {exc}"
            else:
                now = self.recorder.latest()
                state = f"members {sorted(members)}, leader {leader}, BIND {now}"
                if (members == set(OBSERVERS) and leader is not None and now is not None
                        and now.addresses == EAST_ADDRS and now.marker is not None
                        and now.marker.primary == "east" and now.marker.token == leader[1]):
                    self.check_uids()
                    return leader
            time.sleep(0.05)
        raise AssertionError(f"the cluster was not ready within {deadline}s: {state}\n{self.logs()}")

    def check_uids(self) -> None:
        """Each coordinator runs as its own uid: what the nftables rules match on."""
        for c in self.coordinators.values():
            if c.running:
                line = next(x for x in Path(f"/proc/{c.pid}/status").read_text().splitlines() if x.startswith("Uid:"))
                assert line.split()[1:] == [str(c.uid)] * 4, f"{c.name} (pid {c.pid}) runs as {line}"

    # -- the CLI (as root; it never campaigns while someone leads) ------------------------------------------
    def cli(self, *args: str, observer: str = "witness", timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*failover_cmd(), *args, "--policy", str(self.policy_path)], env=self.env(observer),
                              capture_output=True, text=True, timeout=timeout)

    def history(self, observer: str = "witness") -> list[dict[str, Any]]:
        """The audit log (``failover history --json``), oldest first."""
        done = self.cli("history", "--json", "--domain", self.domain, observer=observer)
        assert done.returncode == 0, done.stderr
        entries: list[dict[str, Any]] = json.loads(done.stdout)
        return entries

    def status(self, observer: str = "witness") -> StatusResult:
        began = time.monotonic()
        done = self.cli("status", "--json", observer=observer)
        took = time.monotonic() - began
        data = json.loads(done.stdout) if done.returncode == 0 else None
        return StatusResult(done.returncode, data, done.stderr, took)


# -- fixtures and the figures the scenarios measured --------------------------------------------------
FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def firewall() -> Iterator[Firewall]:
    wall = Firewall()
    try:
        yield wall
    finally:
        wall.close()


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Callable[[str, float, str], None]:
    """Records a measured figure: shown in the terminal summary and in the junit properties."""

    def record(what: str, seconds: float, bound: str) -> None:
        request.config.stash.setdefault(FIGURES, []).append(
            f"{request.node.name}: {what}: {seconds:.2f}s ({bound})")
        request.node.user_properties.append((what, round(seconds, 3)))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures = terminalreporter.config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("cluster figures")
        for line in figures:
            terminalreporter.write_line(line)
