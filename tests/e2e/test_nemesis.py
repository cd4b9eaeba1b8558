"""(e) A seeded nemesis against the three coordinators (east, west, witness) of
tests/support/cluster.py, on a real three-member etcd, a real BIND and real gateways.

For ``FAILOVER_NEMESIS_SECONDS`` (default 75) a schedule drawn from ``FAILOVER_NEMESIS_SEED``
(default: a fresh one, printed) injects one or two faults at a time, each healed after a random
hold: a coordinator's uid cut (nftables) from etcd, from one region's gateways or from BIND;
SIGSTOP/SIGCONT of an etcd member or a coordinator; kill -9 of a coordinator (restarted as the
same observer) or of an etcd member (restarted on its data); and now and then the primary
region's gateways stopped, so that failovers happen. Meanwhile every change BIND shows is
recorded, and etcd's leader key (holder, fencing token) is polled. At the end everything is
healed and, from BIND's records, the leader key's history and ``failover history --json``:

* no epoch ever names two primaries; once a marker exists it never disappears, and the A
  records are always the marker's primary region's gateways;
* epochs and fencing tokens never go back in BIND's successive markers;
* no write from a non-leader: each marker's ``by=`` held the leader key with that ``token=``
  (seen by the poller, or else in etcd's own history at that revision); the tokens the leader
  key carried only grew;
* each change BIND committed (read from its journal, so none is missed) has its decision in
  the audit log: the decision entry (elected, failover, failback, override) that introduced
  its epoch, with the same primary; an ``applying`` entry by its writer for each of its
  updates (recorded before sending); and the ``applied`` entry, unless its writer was killed
  or lost etcd right then or its adapter reported an error (listed);
* no coordinator crashes (one that exits at once when started while etcd is out of its reach
  is started again, as systemd's Restart=always does in deployments, and listed);
* with everything healed the system converges: BIND publishes the primary ``failover status``
  shows under the leader's token, with exactly one leader, and stays so.

The seed, the plan and a one-line summary are printed (and listed under "nemesis" at the end
of the run); replay with the same ``FAILOVER_NEMESIS_SEED`` and ``FAILOVER_NEMESIS_SECONDS``.
The first tests below check the checks on made-up histories.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The helpers are plugins of this module too (pytest_plugins below): have their asserts rewritten.
pytest.register_assert_rewrite("tests.support.cluster", "tests.support.etcd", "tests.support.nemesis")

from failover.adapters.abc import Marker  # noqa: E402
from failover.errors import FailoverError  # noqa: E402
from failover.localgw import ThreadedGateways  # noqa: E402
from tests.support.bind import Bind  # noqa: E402
from tests.support.cluster import (  # noqa: E402
    EAST_ADDRS,
    LOOP_WAIT,
    OBSERVERS,
    RETRY_TIMEOUT,
    WEST_ADDRS,
    Firewall,
    Published,
    Seen,
    require_cluster_tools,
)
from tests.support.etcd import EtcdCluster  # noqa: E402
from tests.support.nemesis import (  # noqa: E402
    ETCD_FAULTS,
    KINDS,
    LeaderRecorder,
    LeaderSeen,
    Nemesis,
    NemesisCluster,
    journal,
    parse_journal,
    plan,
    remember,
)

pytest_plugins = ["tests.support.etcd", "tests.support.cluster", "tests.support.nemesis"]

SECONDS = float(os.environ.get("FAILOVER_NEMESIS_SECONDS", "75"))
SEED = int(os.environ.get("FAILOVER_NEMESIS_SEED") or secrets.randbelow(2**31))
REGION_ADDRS = {"east": EAST_ADDRS, "west": WEST_ADDRS}
DECISION_KINDS = ("elected", "failover", "failback", "override")
CONVERGE_DEADLINE = 60.0

Gateways = tuple[ThreadedGateways, int]
Explain = Callable[[str, float], str | None]  # (writer, when its change was seen) -> why no `applied`


# -- the invariants, over what was recorded -----------------------------------------------------------
@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def align(states: Sequence[Published], polled: Sequence[Seen], end: float) -> tuple[list[Seen], list[Seen]]:
    """BIND's journal (every committed state) with the time the poller first saw each; a state
    it never saw gets the time of the next one it did (an upper bound), or ``end``. Also the
    polled states the journal lacks (none, unless this reading of the journal is wrong)."""
    seen = [s for s in polled if s.published != Published((), None)]
    times: list[float | None] = []
    matched = 0
    for state in states:
        if matched < len(seen) and seen[matched].published == state:
            times.append(seen[matched].at)
            matched += 1
        else:
            times.append(None)
    timeline: list[Seen] = []
    upper = end
    for state, at in reversed(list(zip(states, times, strict=True))):
        upper = at if at is not None else upper
        timeline.append(Seen(upper, state))
    return timeline[::-1], seen[matched:]


def markers_of(history: Sequence[Seen]) -> list[tuple[float, Marker]]:
    return [(s.at, s.published.marker) for s in history if s.published.marker is not None]


def check_markers(history: Sequence[Seen], found: Findings) -> None:
    """One primary per epoch; epochs and tokens never go back; a marker never disappears; the
    A records are the marker's primary region's gateways."""
    primaries: dict[int, set[str]] = {}
    previous: Marker | None = None
    top_token = 0
    for seen in history:
        marker, addresses = seen.published.marker, seen.published.addresses
        if marker is None:
            if previous is not None:
                found.violations.append(f"the marker disappeared (was {previous.text()}), BIND shows {addresses}")
            continue
        primaries.setdefault(marker.epoch, set()).add(marker.primary)
        region = REGION_ADDRS.get(marker.primary, ())
        if not addresses or not set(addresses) <= set(region):
            found.violations.append(f"A records {addresses} beside marker {marker.text()}: not {marker.primary}'s")
        if previous is not None and marker.epoch < previous.epoch:
            found.violations.append(f"epoch went back: {previous.text()} then {marker.text()}")
        if marker.token < top_token:
            found.violations.append(f"token went back: {marker.text()} after a marker with token {top_token}")
        top_token = max(top_token, marker.token)
        previous = marker
    for epoch, names in sorted(primaries.items()):
        if len(names) > 1:
            found.violations.append(f"epoch {epoch} named {len(names)} primaries: {sorted(names)}")


def check_writers(history: Sequence[Seen], leaders: Sequence[LeaderSeen], held_at: Callable[[str, int], bool],
                  found: Findings) -> None:
    """Every marker's writer held the leader key with that token; the key's token only grew."""
    polled = {(seen.holder, seen.token) for seen in leaders if seen.holder is not None}
    for by, token in sorted({(m.by, m.token) for _, m in markers_of(history)}, key=lambda x: x[1]):
        if (by, token) in polled:
            continue
        if held_at(by, token):
            found.notes.append(f"{by} with token {token} not seen by the poller; etcd's history confirms it")
        else:
            found.violations.append(f"a marker by={by} token={token}: {by} never held the leader key with that token "
                                    f"(leaders seen: {sorted(polled, key=lambda x: x[1] or 0)})")
    tokens = [seen.token for seen in leaders if seen.token is not None]
    if tokens != sorted(tokens):
        found.violations.append(f"the leader key's token went back: {tokens}")
    # A write under a token older than the one the key already held (a leader paused between
    # its check and its send): allowed, fenced by the marker; said for the record.
    for at, marker in markers_of(history):
        held = [s for s in leaders if s.at <= at - 0.5]
        if held and held[-1].token is not None and held[-1].token > marker.token:
            found.notes.append(f"marker {marker.text()} appeared while the key held token {held[-1].token}")


def check_audit(history: Sequence[Seen], audit: Sequence[dict[str, Any]], explain: Explain,
                found: Findings) -> None:
    """Each change's decision, `applying` and `applied` entries (see the module's docstring)."""
    decided: dict[int, set[str]] = {}
    for entry in audit:
        if entry["kind"] in DECISION_KINDS:
            decided.setdefault(int(entry["data"]["epoch"]), set()).add(str(entry["data"]["primary"]))
    for epoch, names in sorted(decided.items()):
        if len(names) > 1:
            found.violations.append(f"the audit log decided epoch {epoch} for {len(names)} primaries: {sorted(names)}")

    def by(observer: str, kind: str, epoch: int) -> list[int]:
        return [i for i, e in enumerate(audit) if e["kind"] == kind and e["observer"] == observer
                and int(e["data"].get("epoch", -1)) == epoch]

    first_seen: dict[tuple[str, int, str], float] = {}
    updates: Counter[tuple[str, int, str]] = Counter()  # each state is one update by the marker's writer
    for at, marker in markers_of(history):
        first_seen.setdefault((marker.by, marker.epoch, marker.primary), at)
        updates[(marker.by, marker.epoch, marker.primary)] += 1
    for (writer, epoch, primary), at in first_seen.items():
        what = f"epoch {epoch} ({primary}) written by {writer}"
        if primary not in decided.get(epoch, set()):
            found.violations.append(f"{what}: no decision entry ({'/'.join(DECISION_KINDS)}) for it in the audit "
                                    f"log (decided: {decided.get(epoch)})")
        applying = by(writer, "applying", epoch)
        if len(applying) < updates[(writer, epoch, primary)]:
            found.violations.append(f"{what}: {updates[(writer, epoch, primary)]} updates in BIND, "
                                    f"{len(applying)} `applying` entries by {writer}")
        if not applying:
            continue
        if by(writer, "applied", epoch):
            continue
        # what the writer recorded right after each `applying` of this epoch
        after = [next((audit[j] for j in range(i + 1, len(audit)) if audit[j]["observer"] == writer
                       and audit[j]["kind"] in ("applied", "error", "lost_race", "applying")), None) for i in applying]
        errors = [e for e in after if e is not None and e["kind"] == "error"]
        why = (f"its adapter reported: {errors[0]['detail']}" if errors else None) or explain(writer, at)
        if why is None:
            found.violations.append(f"{what}: `applying` but no `applied` entry, and nothing explains it")
        else:
            found.notes.append(f"{what}: no `applied` entry: {why}")


def explainer(nemesis: Nemesis) -> Explain:
    """Why a writer may have published a change and recorded nothing after it: killed, cut
    from etcd or BIND (its read-back), or an etcd member down (a write then has no known
    outcome), around the time the change appeared."""

    def explain(writer: str, at: float) -> str | None:
        for injected in nemesis.done:
            if not injected.active_during(at - 2.0, at + RETRY_TIMEOUT + 2.0):
                continue
            mine = injected.subject == writer and injected.kind in ("coordinator_kill", "etcd_cut", "bind_cut")
            if mine or injected.kind in ETCD_FAULTS:
                return f"{injected.describe()} at +{injected.at - nemesis.began:.1f}s"
        return None

    return explain


@dataclass
class Run:
    """What one run recorded, for the summary line."""

    history: list[Seen]  # every state BIND committed (its journal), with when it was first seen
    polled: int  # how many of them the poller saw
    leaders: list[LeaderSeen]
    audit: list[dict[str, Any]]
    converged: float | None = None  # seconds from healing to a converged system
    revisions: tuple[int, float] = (0, 0.0)  # etcd revisions written during the faults, and their seconds
    settled_rate: float | None = None  # etcd revisions per second once converged


def summary(nemesis: Nemesis, run: Run, found: Findings) -> str:
    counts = nemesis.counts()
    faults = ", ".join(f"{kind} {counts[kind]}" for kind in KINDS if counts[kind])
    markers = markers_of(run.history)
    changes = [m for i, (_, m) in enumerate(markers) if i == 0 or m.primary != markers[i - 1][1].primary]
    tokens = sorted({s.token for s in run.leaders if s.token is not None})
    epochs = f"{markers[0][1].epoch}..{markers[-1][1].epoch}" if markers else "-"
    # how long each outage took to move the primary, if it did before the next one
    outages = [i for i in nemesis.done if i.kind == "outage"]
    delays = []
    for outage, following in zip(outages, [*outages[1:], None], strict=True):
        before = following.at if following is not None else float("inf")
        moved = next((at for at, m in markers if outage.at <= at < before and m.primary != outage.subject), None)
        delays.append("-" if moved is None else f"{moved - outage.at:.1f}s")
    count, seconds = run.revisions
    settled = f", {run.settled_rate:.0f}/s settled" if run.settled_rate is not None else ""
    crashed = sum(e.crashed for e in nemesis.exits)
    return (f"seed {SEED} ({nemesis.ended - nemesis.began:.0f}s of faults): {faults}; skipped {len(nemesis.skipped)}; "
            f"crashes {crashed}, refused starts {len(nemesis.exits) - crashed}; "
            f"BIND updates {len(run.history)} ({run.polled} seen by polling), "
            f"primaries {'>'.join(m.primary for m in changes)} ({len(changes) - 1} failovers; after each outage: "
            f"{' '.join(delays) or '-'}), epochs {epochs}; leader changes {max(0, len(tokens) - 1)} (tokens {tokens}), "
            f"leader polls failed {nemesis.leaders.errors}; audit entries {len(run.audit)}; notes {len(found.notes)}; "
            f"etcd revisions {count} ({count / max(seconds, 1e-9):.0f}/s{settled}); converged "
            + (f"{run.converged:.1f}s after healing" if run.converged is not None else "NOT"))


# -- the checks, checked -------------------------------------------------------------------------------
def seen(at: float, epoch: int, primary: str, by: str, token: int) -> Seen:
    return Seen(at, Published(REGION_ADDRS[primary], Marker(epoch, primary, by, 1700000000, token)))


CLEAN = [Seen(0.0, Published((), None)), seen(1.0, 1, "east", "east", 10), seen(2.0, 1, "east", "west", 20),
         seen(3.0, 2, "west", "west", 20)]
LEADERS = [LeaderSeen(0.5, "east", 10), LeaderSeen(1.5, None, None), LeaderSeen(1.8, "west", 20)]
AUDIT: list[dict[str, Any]] = [
    {"kind": "elected", "observer": "witness", "data": {"epoch": 1, "primary": "east"}},
    {"kind": "applying", "observer": "east", "data": {"epoch": 1}},
    {"kind": "applied", "observer": "east", "data": {"epoch": 1}},
    {"kind": "applying", "observer": "west", "data": {"epoch": 1}},
    {"kind": "applied", "observer": "west", "data": {"epoch": 1}},
    {"kind": "failover", "observer": "east", "data": {"epoch": 2, "primary": "west"}},
    {"kind": "applying", "observer": "west", "data": {"epoch": 2}},
    {"kind": "applied", "observer": "west", "data": {"epoch": 2}},
]


def run_checks(history: Sequence[Seen], leaders: Sequence[LeaderSeen] = LEADERS,
               audit: Sequence[dict[str, Any]] = AUDIT, held_at: Callable[[str, int], bool] = lambda b, t: False,
               explain: Explain = lambda w, t: None) -> Findings:
    found = Findings()
    check_markers(history, found)
    check_writers(history, leaders, held_at, found)
    check_audit(history, audit, explain, found)
    return found


def test_the_checks_pass_a_clean_history() -> None:
    assert run_checks(CLEAN) == Findings()


@pytest.mark.parametrize(("history", "expected"), [
    ([*CLEAN, seen(4.0, 2, "east", "west", 20)], "epoch 2 named 2 primaries"),
    ([*CLEAN, seen(4.0, 1, "east", "west", 20)], "epoch went back"),
    ([*CLEAN, seen(4.0, 2, "west", "east", 10)], "token went back"),
    ([*CLEAN, Seen(4.0, Published(WEST_ADDRS, None))], "the marker disappeared"),
    ([*CLEAN, Seen(4.0, Published(EAST_ADDRS, CLEAN[-1].published.marker))], "not west's"),
    ([*CLEAN, seen(4.0, 2, "west", "witness", 30)], "witness never held the leader key"),
])
def test_the_checks_catch_a_broken_history(history: list[Seen], expected: str) -> None:
    found = run_checks(history)
    assert any(expected in v for v in found.violations), found


def test_the_checks_ask_etcd_for_a_leadership_the_poller_missed() -> None:
    history = [*CLEAN, seen(4.0, 2, "west", "witness", 30)]
    audit = [*AUDIT, {"kind": "applying", "observer": "witness", "data": {"epoch": 2}},
             {"kind": "applied", "observer": "witness", "data": {"epoch": 2}}]
    found = run_checks(history, audit=audit, held_at=lambda by, token: (by, token) == ("witness", 30))
    assert found.violations == [] and "etcd's history confirms it" in found.notes[0], found


def test_the_checks_want_each_change_in_the_audit_log() -> None:
    no_decision = [e for e in AUDIT if e["kind"] != "failover"]
    assert any("no decision entry" in v for v in run_checks(CLEAN, audit=no_decision).violations)
    no_applying = [e for e in AUDIT if (e["kind"], e["observer"]) != ("applying", "west")]
    assert any("0 `applying` entries by west" in v for v in run_checks(CLEAN, audit=no_applying).violations)
    unannounced = [*CLEAN, Seen(4.0, Published(("127.0.0.21",), CLEAN[-1].published.marker))]
    assert any("2 updates in BIND, 1 `applying` entries by west" in v for v in run_checks(unannounced).violations)
    no_applied = [e for e in AUDIT if (e["kind"], e["data"]["epoch"]) != ("applied", 2)]
    assert any("nothing explains it" in v for v in run_checks(CLEAN, audit=no_applied).violations)
    explained = run_checks(CLEAN, audit=no_applied, explain=lambda w, t: "coordinator_kill(west)")
    assert explained.violations == [] and explained.notes == [
        "epoch 2 (west) written by west: no `applied` entry: coordinator_kill(west)"]
    errored = [*no_applied, {"kind": "error", "observer": "west", "detail": "rfc2136: no answer", "data": {}}]
    assert run_checks(CLEAN, audit=errored).violations == []


JOURNAL = """\
del example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 1 3600 600 86400 30
add example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 2 3600 600 86400 30
add api.example.com. 30\tIN\tA\t127.0.0.11
add api.example.com. 30\tIN\tA\t127.0.0.12
add _failover.api.example.com. 30 IN TXT\t"epoch=1 primary=east by=east at=1700000000 token=10"
del example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 2 3600 600 86400 30
del other.example.com. 30\tIN\tA\t127.0.0.99
add example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 3 3600 600 86400 30
del example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 3 3600 600 86400 30
del api.example.com. 30\tIN\tA\t127.0.0.11
add example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 4 3600 600 86400 30
del example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 4 3600 600 86400 30
del api.example.com. 30\tIN\tA\t127.0.0.12
del _failover.api.example.com. 30 IN TXT\t"epoch=1 primary=east by=east at=1700000000 token=10"
add example.com.\t\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 5 3600 600 86400 30
add api.example.com. 30\tIN\tA\t127.0.0.21
add api.example.com. 30\tIN\tA\t127.0.0.22
add _failover.api.example.com. 30 IN TXT\t"epoch=2 primary=west by=east at=1700000009 token=10"
"""


def test_the_journal_reads_as_the_states_bind_published() -> None:
    states = parse_journal(JOURNAL, "api.example.com")
    east = Marker(1, "east", "east", 1700000000, 10)
    assert states == [Published(EAST_ADDRS, east), Published(("127.0.0.12",), east),
                      Published(WEST_ADDRS, Marker(2, "west", "east", 1700000009, 10))]


def test_the_journal_gets_the_times_polling_saw() -> None:
    states = [s.published for s in CLEAN[1:]]
    polled = [CLEAN[0], CLEAN[1], CLEAN[3]]  # the poller missed the second state
    timeline, unknown = align(states, polled, end=9.0)
    assert [s.at for s in timeline] == [1.0, 3.0, 3.0] and unknown == []
    _, unknown = align(states[:1], polled, end=9.0)
    assert unknown == [CLEAN[3]]


# -- the nemesis ---------------------------------------------------------------------------------------
def convergence(cluster: NemesisCluster) -> tuple[list[str], tuple[str, int] | None]:
    """What still differs from a converged system (empty: converged), and the leader."""
    dead = [n for n, c in cluster.coordinators.items() if not c.running]
    try:
        lead = cluster.leader()
    except FailoverError as exc:
        return [f"etcd: {exc}"], None
    problems = [f"not running: {dead}"] if dead else []
    if lead is None:
        problems.append("no leader key")
    status = cluster.status()
    if status.returncode != 0 or status.data is None:
        return [*problems, f"status exit {status.returncode}: {status.stderr.strip()[-300:]}"], lead
    data = status.data
    if lead is not None and data["leader"] != lead[0]:
        problems.append(f"status says leader {data['leader']}, the key {lead}")
    silent = sorted(n for n, o in data["observers"].items() if not o["alive"])
    if silent:
        problems.append(f"observers not alive: {silent}")
    primary = data["domains"][cluster.domain]["primary"]
    now = cluster.recorder.latest()
    marker = now.marker if now is not None else None
    if primary not in REGION_ADDRS or now is None or marker is None:
        problems.append(f"status primary {primary}, BIND {now}")
    elif (marker.primary, now.addresses) != (primary, REGION_ADDRS[primary]):
        problems.append(f"status primary {primary}, BIND publishes {now.addresses} {marker.text()}")
    elif lead is not None and marker.token != lead[1]:
        problems.append(f"BIND's marker has token {marker.token}, the leader {lead}")
    return problems, lead


def wait_converged(nemesis: Nemesis, deadline: float) -> tuple[float, tuple[str, int]]:
    cluster = nemesis.cluster
    end = time.monotonic() + deadline
    while True:
        nemesis.supervise()
        problems, lead = convergence(cluster)
        if not problems and lead is not None:
            return time.monotonic(), lead
        if time.monotonic() >= end:
            raise AssertionError(f"not converged within {deadline:g}s of healing: {problems}\n{cluster.logs()}")
        time.sleep(0.3)


@pytest.fixture
def cluster_tools() -> None:
    require_cluster_tools()


@pytest.fixture
def nemesis(cluster_tools: None, bind: Bind, etcd_cluster: EtcdCluster, gateways: Gateways, firewall: Firewall,
            tmp_path: Path) -> Iterator[Nemesis]:
    pool, port = gateways
    cluster = NemesisCluster(bind, etcd_cluster, port, tmp_path, "nemesis")
    leaders = LeaderRecorder(etcd_cluster, cluster.prefix)
    running = Nemesis(cluster, etcd_cluster, bind, pool, firewall, leaders)
    try:
        yield running
    finally:
        try:
            running.heal_all()
        finally:
            leaders.close()
            cluster.close()


@pytest.mark.bind
@pytest.mark.timeout(int(SECONDS) + 240)
def test_e_seeded_nemesis_one_primary_per_epoch_fenced_writes_every_change_audited(
    nemesis: Nemesis, request: pytest.FixtureRequest
) -> None:
    cluster, leaders = nemesis.cluster, nemesis.leaders
    steps = plan(SEED, SECONDS)
    first = random.Random(f"{SEED}-first").choice(OBSERVERS)
    replay = f"FAILOVER_NEMESIS_SEED={SEED} FAILOVER_NEMESIS_SECONDS={SECONDS:g}"
    print(f"\nnemesis seed {SEED} ({replay} replays it); {first} leads first; plan: "
          + " | ".join(" + ".join(f.describe() for f in s.faults) + f" gap {s.gap:.1f}s" for s in steps))
    request.node.user_properties.append(("nemesis_seed", SEED))

    leaders.start()
    cluster.start(first=first)
    cluster.wait_ready()
    start_revision = leaders.revision()
    try:
        nemesis.run(steps, SECONDS)
    finally:
        nemesis.heal_all()
    healed = time.monotonic()
    revisions = (leaders.revision() - start_revision, healed - nemesis.began)
    converged: float | None = None
    settled_rate: float | None = None
    found = Findings()
    try:
        converged_at, lead = wait_converged(nemesis, CONVERGE_DEADLINE)
        converged = converged_at - healed
        steady, before = cluster.recorder.latest(), (leaders.revision(), time.monotonic())
        time.sleep(2 * LOOP_WAIT)  # the converged state holds: one leader, the same records
        assert (cluster.leader(), cluster.recorder.latest()) == (lead, steady), "moved after converging"
        settled_rate = (leaders.revision() - before[0]) / (time.monotonic() - before[1])
    except (AssertionError, FailoverError) as exc:
        found.violations.append(str(exc))
    audit = cluster.history()
    polled = cluster.recorder.since(float("-inf"))
    states = journal(nemesis.bind, cluster.domain)
    if states is None:  # no named-journalprint: what polling saw
        history = [s for s in polled if s.published != Published((), None)]
        found.notes.append("no named-journalprint: checked what polling saw")
    else:
        history, unknown = align(states, polled, time.monotonic())
        found.violations += [f"polling saw {s.published} at +{s.at - nemesis.began:.1f}s; BIND's journal has no such "
                             "state" for s in unknown]
    leader_history = leaders.snapshot()
    check_markers(history, found)
    check_writers(history, leader_history, leaders.held_at, found)
    check_audit(history, audit, explainer(nemesis), found)
    found.violations += [f"could not heal {what}" for what in nemesis.heal_errors]
    for gone in nemesis.exits:
        what = (f"{gone.name} exited by itself (code {gone.returncode}) at +{gone.at - nemesis.began:.1f}s"
                f"{', just after a start' if gone.at_start else ''}: {gone.said}")
        (found.notes if gone.at_start else found.violations).append(what)

    run = Run(history, sum(1 for s in polled if s.published != Published((), None)), leader_history, audit,
              converged, revisions, settled_rate)
    line = summary(nemesis, run, found)
    remember(request.config, line)
    request.node.user_properties.append(("nemesis_summary", line))
    timelines = ("faults:\n  " + "\n  ".join(nemesis.timeline())
                 + "\nBIND (journal; time first seen, or an upper bound):\n  " + "\n  ".join(
                     f"{s.at - nemesis.began:7.2f} {','.join(s.published.addresses)} "
                     f"{s.published.marker.text() if s.published.marker else None}" for s in history)
                 + "\nleader key:\n  " + "\n  ".join(
                     f"{s.at - nemesis.began:7.2f} {s.holder} {s.token}" for s in leader_history))
    notes = "notes:\n  " + "\n  ".join(found.notes) if found.notes else "notes: none"
    report = cluster.logdir / "nemesis.txt"  # beside the coordinators' logs, kept by pytest
    report.write_text(f"{replay}\n{line}\n{timelines}\n{notes}\n")
    print(f"{line}\n{timelines}\n{notes}\nwritten to {report}")
    if found.violations:
        pytest.fail(f"{replay} to replay; details in {report}\n{line}\nviolations:\n  " + "\n  ".join(found.violations)
                    + f"\n{timelines}\n{cluster.logs()}")
