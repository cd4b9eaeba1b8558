"""One contract, every state-store backend (sqlite and etcd; the stands are in tests/contract/stores.py).

What the coordinators rely on, whatever holds the state: ``put_state`` is a compare-and-set on
the domain's epoch, so of any number of writers racing on one epoch exactly one records a
change; observations stay apart per observer, a report replaces its observer's last one, and
stale reports drop out of the quorum; the audit
log keeps every entry, in the order written, across handles; an expiring override is removed
only while it is still the same override; after ``close()`` every call is a ``StoreError``;
and every model type comes back from another handle exactly as it went in.

Names are chosen to be prefixes of each other ("east" / "east2", a domain and the same name
with a suffix): a key-value backend that reads a prefix range must still keep them apart.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, is_dataclass
from enum import Enum

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import StoreError
from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Status, Streak, StreakKey
from failover.store import Store
from tests.contract.stores import StoreStand, store_fixture, store_stand_fixture  # noqa: F401  (fixtures)

pytest_plugins = ["tests.support.etcd"]  # etcd_server, for the etcd stand

D1 = "api.example.com"
D2 = "api.example.com.au"  # D1 is a prefix of it
EAST, EAST2, WEST = "east", "east2", "west"  # EAST is a prefix of EAST2
HTTP, TLS = "http:8080/ready", "tls:443"
JOIN = 30.0  # seconds any thread of a test may take before the test fails


def domain_state(epoch: int, primary: str = EAST, domain: str = D1) -> DomainState:
    return DomainState(
        domain,
        primary=primary,
        secondary=WEST,
        epoch=epoch,
        changed_at=100.0 + epoch,
        failovers=(50.0, 100.0 + epoch),
        reason=f"epoch {epoch}",
    )


def entry(i: int, domain: str | None = D1, kind: str = "elected", observer: str = EAST) -> AuditEntry:
    return AuditEntry(float(i), kind, domain, f"entry {i}", observer=observer, data={"epoch": i})


def known_bug(request: pytest.FixtureRequest, kind: str, bug: str, raises: type[BaseException]) -> None:
    """This test fails on one backend for a reported bug: expected to, strictly, so that the
    fix turns it red until this line goes."""
    if request.node.callspec.params["store_stand"] == kind:
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=f"{kind}: {bug}"))


def same(got: object, want: object) -> bool:
    """Equal, field for field, with the same types: 1.0 stays a float, -0.0 keeps its sign,
    a tuple stays a tuple and a Status a Status (``==`` would pass "up" for Status.UP, and
    ``RegionHealth.healthy`` would then be wrong)."""
    if type(got) is not type(want):
        return False
    if is_dataclass(want) and not isinstance(want, type):
        return all(same(getattr(got, f.name), getattr(want, f.name)) for f in fields(want))
    if isinstance(want, float):
        assert isinstance(got, float)
        return math.copysign(1.0, got) == math.copysign(1.0, want) and got == want
    if isinstance(want, tuple | list):
        assert isinstance(got, tuple | list)
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, Mapping):
        assert isinstance(got, Mapping)
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, Enum):
        return got is want
    return got == want


# -- compare-and-set on the epoch -----------------------------------------------------------------


def test_first_write_expects_no_state(store: Store) -> None:
    assert store.get_state(D1) is None
    for wrong in (0, 1):  # an expectation on a state that does not exist loses
        assert store.put_state(domain_state(1), expect_epoch=wrong) is False
        assert store.get_state(D1) is None
    first = domain_state(1)
    assert store.put_state(first, expect_epoch=None) is True
    assert store.get_state(D1) == first
    # a second "first write" loses and writes nothing
    assert store.put_state(domain_state(1, primary=WEST), expect_epoch=None) is False
    assert store.get_state(D1) == first


def test_stale_or_future_expectation_writes_nothing(store: Store) -> None:
    assert store.put_state(domain_state(1), None)
    second = domain_state(2, primary=WEST)
    assert store.put_state(second, expect_epoch=1) is True
    for wrong in (None, 0, 1, 3, 7):
        assert store.put_state(domain_state(9, primary=EAST2), expect_epoch=wrong) is False
        assert store.get_state(D1) == second


def test_same_epoch_rewrite_is_allowed(store: Store) -> None:
    """A decision that keeps the primary rewrites the state under the same epoch."""
    assert store.put_state(domain_state(1), None)
    kept = DomainState(D1, primary=EAST, epoch=1, reason="no action")
    assert store.put_state(kept, expect_epoch=1) is True
    assert store.get_state(D1) == kept
    assert store.put_state(domain_state(2), expect_epoch=1) is True  # and the epoch compared is still 1


def test_domains_have_their_own_epochs(store: Store) -> None:
    assert store.put_state(domain_state(4, domain=D2), None)
    assert store.get_state(D1) is None
    assert store.put_state(domain_state(1), None)  # D2's row is not D1's
    assert store.put_state(domain_state(5, domain=D2), expect_epoch=1) is False
    assert store.put_state(domain_state(2), expect_epoch=4) is False
    assert store.get_state(D1) == domain_state(1)
    assert store.get_state(D2) == domain_state(4, domain=D2)


def test_a_second_handle_sees_and_loses_to_the_first(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    assert a.put_state(domain_state(1), None)
    assert b.get_state(D1) == domain_state(1)
    assert b.put_state(domain_state(1, primary=WEST), None) is False
    assert b.put_state(domain_state(2, primary=WEST), expect_epoch=1) is True
    assert a.put_state(domain_state(2, primary=EAST2), expect_epoch=1) is False  # a's view is stale now
    assert a.get_state(D1) == domain_state(2, primary=WEST)


def test_racing_handles_exactly_one_wins_each_round(store_stand: StoreStand) -> None:
    """Three handles (three coordinators), two threads on each: every round all six try the
    same epoch at once; one records its change, the others write nothing."""
    handles = [store_stand.open(), store_stand.open_same(), store_stand.open_same()]
    contenders = [handle for handle in handles for _thread in range(2)]
    expect: int | None = None

    def race(me: int, handle: Store, barrier: threading.Barrier, base: int | None) -> bool:
        barrier.wait(timeout=JOIN)
        return handle.put_state(DomainState(D1, primary=f"r{me}", epoch=(base or 0) + 1, reason=f"by {me}"), base)

    with ThreadPoolExecutor(max_workers=len(contenders)) as pool:
        for _round in range(30):
            barrier = threading.Barrier(len(contenders))
            futures = [pool.submit(race, me, h, barrier, expect) for me, h in enumerate(contenders)]
            won = [me for me, future in enumerate(futures) if future.result(timeout=JOIN)]
            assert len(won) == 1, won
            for handle in handles:
                stored = handle.get_state(D1)
                assert stored is not None
                assert (stored.primary, stored.epoch) == (f"r{won[0]}", (expect or 0) + 1)
            expect = (expect or 0) + 1


# -- observations, per observer -------------------------------------------------------------------


def test_streaks_are_kept_per_observer(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    http, tls, other = StreakKey(D1, "use1-a", HTTP), StreakKey(D1, "use1-a", TLS), StreakKey(D2, "use1-a", HTTP)
    up = Streak(Status.UP, 3, 0, 12.5, "200 in 3ms", 0.003, None)
    down = Streak(Status.DOWN, 0, 4, 20.0, "connect refused", 1.0, "certificate expires in 2d")
    a.put_streaks(EAST, {http: up, tls: up, other: down})
    b.put_streaks(EAST2, {http: down})
    for handle in (a, b):
        assert handle.get_streaks(EAST) == {http: up, tls: up, other: down}
        assert handle.get_streaks(EAST2) == {http: down}
        assert handle.get_streaks(WEST) == {}
    # a write carries only the streaks that moved: it replaces those and keeps the rest
    b.put_streaks(EAST, {tls: down})
    b.put_streaks(EAST, {})
    assert a.get_streaks(EAST) == {http: up, tls: down, other: down}
    assert a.get_streaks(EAST2) == {http: down}


def test_region_health_is_kept_per_observer(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    up = RegionHealth(EAST, Status.UP, 2, 2, 10.0, "2/2 gateways up")
    down = RegionHealth(WEST, Status.DOWN, 0, 1, None, "1/1 gateways failing: w 503")
    a.put_region_health(EAST, {(D1, EAST): up, (D1, WEST): down, (D2, EAST): up}, now=100.0)
    b.put_region_health(EAST2, {(D1, WEST): up}, now=100.0)
    for handle in (a, b):
        assert handle.get_region_health(EAST) == {(D1, EAST): up, (D1, WEST): down, (D2, EAST): up}
        assert handle.get_region_health(EAST2) == {(D1, WEST): up}
        assert handle.get_region_health(WEST) == {}
        assert handle.all_region_health(fresh_after=0.0) == {
            EAST: {(D1, EAST): up, (D1, WEST): down, (D2, EAST): up},
            EAST2: {(D1, WEST): up},
        }
    b.put_region_health(EAST, {(D1, WEST): up}, now=110.0)  # a new report replaces the last one whole
    assert a.get_region_health(EAST) == {(D1, WEST): up}
    assert a.get_region_health(EAST2) == {(D1, WEST): up}


def test_all_region_health_honours_fresh_after(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    up = RegionHealth(EAST, Status.UP, 2, 2, 10.0, "2/2 gateways up")
    down = RegionHealth(EAST, Status.DOWN, 0, 2, 90.0, "2/2 gateways failing")
    a.put_region_health(EAST, {(D1, EAST): up}, now=100.0)
    b.put_region_health(EAST2, {(D1, EAST): down}, now=200.0)
    assert set(a.all_region_health(fresh_after=100.0)) == {EAST, EAST2}  # at or after
    assert a.all_region_health(fresh_after=100.5) == {EAST2: {(D1, EAST): down}}
    assert a.all_region_health(fresh_after=200.0) == {EAST2: {(D1, EAST): down}}
    assert a.all_region_health(fresh_after=200.5) == {}
    # a stale report is still its observer's own, for its own restart
    assert b.get_region_health(EAST) == {(D1, EAST): up}
    # a new report replaces the old one whole: no verdict of the old one lingers, fresh or not
    a.put_region_health(EAST, {(D2, EAST): down}, now=300.0)
    assert b.all_region_health(fresh_after=250.0) == {EAST: {(D2, EAST): down}}
    assert b.all_region_health(fresh_after=0.0) == {EAST: {(D2, EAST): down}, EAST2: {(D1, EAST): down}}
    assert b.all_region_health(fresh_after=0.0, others_than=EAST) == {EAST2: {(D1, EAST): down}}
    assert b.all_region_health(fresh_after=0.0, others_than="nobody") == b.all_region_health(fresh_after=0.0)
    assert b.get_region_health(EAST) == {(D2, EAST): down}


# -- operator intent ------------------------------------------------------------------------------


def test_override_set_replace_clear(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    pinned = Override(D1, WEST, "DB migration", "alice@host", 100.0, until=7300.0, force=True)
    service_wide = Override("*", EAST, "drill", "bob", 50.0)
    other = Override(D2, EAST2, "canary", "carol", 60.0)
    assert a.overrides() == {}
    a.set_override(pinned)
    a.set_override(service_wide)
    b.set_override(other)
    assert a.overrides() == b.overrides() == {D1: pinned, "*": service_wide, D2: other}
    replaced = Override(D1, EAST, "back", "alice@host", 200.0)
    b.set_override(replaced)
    b.set_override(replaced)  # idempotent
    assert a.overrides() == {D1: replaced, "*": service_wide, D2: other}
    assert a.clear_override(D1) == replaced
    assert b.clear_override(D1) is None
    assert b.overrides() == {"*": service_wide, D2: other}
    assert b.clear_override("*") == service_wide
    assert a.overrides() == {D2: other}


def test_expiring_an_override_never_removes_a_newer_one(store_stand: StoreStand) -> None:
    """The coordinator reads an expired override, and clears it only if it is still that one:
    an operator may have pinned again in between, through another coordinator."""
    a, b = store_stand.open(), store_stand.open_same()
    expired = Override(D1, WEST, "maintenance", "alice", 100.0, until=200.0)
    a.set_override(expired)
    seen = a.overrides()[D1]
    newer = Override(D1, WEST, "maintenance", "alice", 100.0, until=200.5)  # differs in one float
    b.set_override(newer)
    assert a.clear_override(D1, expect=seen) is None
    assert b.overrides() == {D1: newer}
    forced = Override(D1, WEST, "maintenance", "alice", 100.0, until=200.5, force=True)  # differs in one flag
    assert b.clear_override(D1, expect=forced) is None
    assert a.overrides() == {D1: newer}
    assert a.clear_override(D1, expect=newer) == newer
    assert b.overrides() == {}
    assert b.clear_override(D1, expect=newer) is None  # nothing left to expire


def test_drains_set_replace_clear(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    drain = Drain(EAST, "kernel upgrade", "ops", 10.0)
    other = Drain(EAST2, "network work", "netops", 11.0)
    assert a.drains() == {}
    a.set_drain(drain)
    a.set_drain(drain)  # idempotent
    b.set_drain(other)
    assert a.drains() == b.drains() == {EAST: drain, EAST2: other}
    again = Drain(EAST, "kernel upgrade, take two", "ops", 20.0)
    b.set_drain(again)
    assert a.drains() == {EAST: again, EAST2: other}
    assert a.clear_drain(EAST) == again
    assert b.clear_drain(EAST) is None
    assert b.drains() == {EAST2: other}


# -- audit ----------------------------------------------------------------------------------------


def test_history_is_oldest_first_by_writing_order(store: Store) -> None:
    late, early = entry(9), entry(1)
    store.audit(late)
    store.audit(early)  # the order written, not the timestamps
    store.audit(late)  # appended again, never merged with the first
    assert store.history() == [late, early, late]
    assert store.history(limit=None) == [late, early, late]


def test_history_across_interleaving_handles(store_stand: StoreStand) -> None:
    a, b = store_stand.open(), store_stand.open_same()
    written = []
    for i in range(12):
        e = entry(i, observer=EAST if i % 2 else WEST)
        (a if i % 2 else b).audit(e)
        written.append(e)
    assert a.history() == b.history() == written


def test_threads_on_two_handles_append_without_losing_any(store_stand: StoreStand) -> None:
    handles = [store_stand.open(), store_stand.open_same()]
    writers, count = 4, 25

    def append(me: int) -> None:
        for i in range(count):
            handles[me % 2].audit(AuditEntry(float(i), "applied", D1, f"{me}:{i}", observer=f"p{me}"))

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for future in [pool.submit(append, me) for me in range(writers)]:
            future.result(timeout=JOIN)
    history = handles[0].history()
    assert len(history) == writers * count
    for me in range(writers):  # each writer's entries keep its order
        assert [e.detail for e in history if e.observer == f"p{me}"] == [f"{me}:{i}" for i in range(count)]


def test_domain_filter_keeps_the_service_wide_entries(store: Store) -> None:
    entries = [entry(1), entry(2, D2), entry(3, None, "drain"), entry(4), entry(5, D2), entry(6, None, "undrain")]
    for e in entries:
        store.audit(e)
    assert store.history() == entries
    assert store.history(D1) == [entries[0], entries[2], entries[3], entries[5]]
    assert store.history(D2) == [entries[1], entries[2], entries[4], entries[5]]
    assert store.history("other.example.com") == [entries[2], entries[5]]


def test_limit_keeps_the_newest_still_oldest_first(store: Store) -> None:
    entries = [entry(1), entry(2, D2), entry(3, None, "drain"), entry(4), entry(5, D2)]
    for e in entries:
        store.audit(e)
    assert store.history(limit=2) == entries[3:]
    assert store.history(limit=1) == entries[4:]
    assert store.history(limit=99) == entries
    assert store.history(D1, limit=2) == [entries[2], entries[3]]
    assert store.history(D2, limit=2) == [entries[2], entries[4]]


def test_limit_zero_is_no_entries(store: Store, request: pytest.FixtureRequest) -> None:
    store.audit(entry(1))
    store.audit(entry(2, None))
    assert store.history(limit=0) == []
    assert store.history(D1, limit=0) == []


# -- a closed store -------------------------------------------------------------------------------

CALLS: dict[str, Callable[[Store], object]] = {
    "get_state": lambda s: s.get_state(D1),
    "put_state": lambda s: s.put_state(domain_state(2), 1),
    "get_streaks": lambda s: s.get_streaks(EAST),
    "put_streaks": lambda s: s.put_streaks(EAST, {StreakKey(D1, "g", HTTP): Streak()}),
    "get_region_health": lambda s: s.get_region_health(EAST),
    "put_region_health": lambda s: s.put_region_health(
        EAST, {(D1, EAST): RegionHealth(EAST, Status.UP, 1, 1, 1.0, "up")}, 5.0
    ),
    "all_region_health": lambda s: s.all_region_health(0.0),
    "overrides": lambda s: s.overrides(),
    "set_override": lambda s: s.set_override(Override(D1, WEST, "r", "b", 1.0)),
    "clear_override": lambda s: s.clear_override(D1),
    "clear_override_expect": lambda s: s.clear_override(D1, expect=Override(D1, WEST, "r", "b", 1.0)),
    "drains": lambda s: s.drains(),
    "set_drain": lambda s: s.set_drain(Drain(EAST, "r", "b", 1.0)),
    "clear_drain": lambda s: s.clear_drain(EAST),
    "audit": lambda s: s.audit(entry(2)),
    "history": lambda s: s.history(),
    "history_filtered": lambda s: s.history(D1, 5),
    "campaign": lambda s: s.campaign(EAST),
    "leading": lambda s: s.leading(),
    "leader": lambda s: s.leader(),
    "members": lambda s: s.members(),
    "last_seen": lambda s: s.last_seen(),
    "wait_for_change": lambda s: s.wait_for_change(0.05),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_every_call_on_a_closed_store_is_a_store_error(store_stand: StoreStand, call: str) -> None:
    store = store_stand.open()
    assert store.put_state(domain_state(1), None)
    store.audit(entry(1))
    store.close()
    with pytest.raises(StoreError):
        CALLS[call](store)
    store.close()  # closing twice, or resigning after close (both shutdown steps), is harmless
    store.resign()
    # what was written before close() is there for the next handle, and the refused call wrote nothing
    again = store_stand.open_same()
    assert again.get_state(D1) == domain_state(1)
    assert again.history() == [entry(1)]
    assert (again.get_streaks(EAST), again.overrides(), again.drains()) == ({}, {}, {})


def test_close_under_busy_threads_gives_only_store_errors(
    store_stand: StoreStand, request: pytest.FixtureRequest
) -> None:
    """Worker threads may still be inside a call when the daemon closes the store (a cancelled
    task's thread runs on): each call then finishes or raises StoreError, nothing else, and
    the process does not crash."""
    threads, warm_up, calls = 4, 20, list(CALLS.values())

    def hammer(store: Store, me: int, busy: threading.Semaphore) -> bool:
        """True once a call met the closed store; False if the deadline passed first."""
        deadline = time.monotonic() + JOIN
        for i in itertools.count():
            if time.monotonic() > deadline:
                return False
            try:
                calls[(me + i) % len(calls)](store)
            except StoreError:
                return True
            if i == warm_up:
                busy.release()
        raise AssertionError("unreachable")

    for _round in range(10):  # the window is narrow: a single round often misses it
        store, busy = store_stand.open(), threading.Semaphore(0)  # busy: released once per thread in full swing
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(hammer, store, me, busy) for me in range(threads)]
            assert all(busy.acquire(timeout=JOIN) for _ in range(threads)), "the threads never got going"
            store.close()
            met_closed = [future.result(timeout=2 * JOIN) for future in futures]  # re-raises all but StoreError
        assert all(met_closed), met_closed
        with pytest.raises(StoreError):
            store.history()


# -- every model type, field for field, through a second handle ------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)  # the policy's Name
LABELS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)  # "/", ":", "%"...
TIMES = st.floats(allow_nan=False, allow_infinity=False)
MAYBE_TIME = st.none() | TIMES
TEXT = st.text(max_size=60)  # any unicode, control characters included
STATUSES = st.sampled_from(Status)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TIMES | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
ROUND_TRIP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def pair(store_stand: StoreStand) -> tuple[Store, Store]:
    """A writer and a reader on the same data, shared by all of a test's examples: what the
    reader sees went through the backend's stored form, not through the writer's memory."""
    return store_stand.open(), store_stand.open_same()


@ROUND_TRIP
@given(
    st.builds(
        DomainState,
        domain=st.sampled_from([D1, D2]),
        primary=st.none() | NAMES,
        secondary=st.none() | NAMES,
        epoch=st.integers(0, 2**53),
        changed_at=MAYBE_TIME,
        failovers=st.lists(TIMES, max_size=5).map(tuple),
        reason=TEXT,
    )
)
def test_domain_state_round_trips(pair: tuple[Store, Store], state: DomainState) -> None:
    writer, reader = pair
    current = reader.get_state(state.domain)
    assert writer.put_state(state, current.epoch if current else None)
    assert same(reader.get_state(state.domain), state)


@ROUND_TRIP
@given(
    st.dictionaries(
        st.builds(StreakKey, domain=st.sampled_from([D1, D2]), gateway=NAMES, check=LABELS),
        st.builds(
            Streak,
            status=STATUSES,
            successes=st.integers(0, 2**31),
            failures=st.integers(0, 2**31),
            since=MAYBE_TIME,
            reason=TEXT,
            latency=MAYBE_TIME,
            warning=st.none() | TEXT,
        ),
        min_size=1,
        max_size=4,
    ),
    NAMES,
)
def test_streaks_round_trip(pair: tuple[Store, Store], streaks: dict[StreakKey, Streak], observer: str) -> None:
    writer, reader = pair
    writer.put_streaks(observer, streaks)
    got = reader.get_streaks(observer)
    for key, streak in streaks.items():
        assert same(got[key], streak)
    assert all(type(key) is StreakKey for key in got)


@ROUND_TRIP
@given(
    st.dictionaries(
        st.tuples(st.sampled_from([D1, D2]), NAMES),
        st.builds(
            RegionHealth,
            region=NAMES,
            status=STATUSES,
            up=st.integers(0, 1000),
            total=st.integers(0, 1000),
            since=MAYBE_TIME,
            reason=TEXT,
        ),
        min_size=1,
        max_size=4,
    ),
    NAMES,
    st.floats(0, 4e9),
)
def test_region_health_round_trips(
    pair: tuple[Store, Store],
    health: dict[tuple[str, str], RegionHealth],
    observer: str,
    now: float,
) -> None:
    writer, reader = pair
    writer.put_region_health(observer, health, now)
    own, everyone = reader.get_region_health(observer), reader.all_region_health(fresh_after=now)[observer]
    for key, verdict in health.items():
        assert same(own[key], verdict) and same(everyone[key], verdict)
        assert own[key].healthy is (verdict.status is Status.UP)
    assert all(type(key) is tuple for key in own)


@ROUND_TRIP
@given(
    st.builds(
        Override,
        domain=st.sampled_from([D1, D2, "*"]),
        region=NAMES,
        reason=TEXT,
        by=TEXT,
        at=TIMES,
        until=MAYBE_TIME,
        force=st.booleans(),
    )
)
def test_override_round_trips(pair: tuple[Store, Store], override: Override) -> None:
    writer, reader = pair
    writer.set_override(override)
    assert same(reader.overrides()[override.domain], override)
    assert same(reader.clear_override(override.domain, expect=override), override)  # identity survives the trip


@ROUND_TRIP
@given(st.builds(Drain, region=NAMES, reason=TEXT, by=TEXT, at=TIMES))
def test_drain_round_trips(pair: tuple[Store, Store], drain: Drain) -> None:
    writer, reader = pair
    writer.set_drain(drain)
    assert same(reader.drains()[drain.region], drain)


@ROUND_TRIP
@given(
    st.builds(
        AuditEntry,
        at=TIMES,
        kind=NAMES,
        domain=st.none() | st.sampled_from([D1, D2]),
        detail=TEXT,
        observer=st.just("") | NAMES,
        data=st.dictionaries(TEXT, JSON, max_size=4),
    )
)
def test_audit_entry_round_trips(pair: tuple[Store, Store], audit_entry: AuditEntry) -> None:
    writer, reader = pair
    writer.audit(audit_entry)
    assert same(reader.history(limit=1)[0], audit_entry)


def test_same_tells_types_apart() -> None:
    """The round-trip checks are only as strict as ``same``."""
    assert same(DomainState(D1, failovers=(1.0,)), DomainState(D1, failovers=(1.0,)))
    assert not same(DomainState(D1, failovers=(1.0,)), DomainState(D1, failovers=[1.0]))  # type: ignore[arg-type]
    assert not same(Streak(Status.UP), Streak("up"))  # type: ignore[arg-type]
    assert not same(Streak(since=1.0), Streak(since=1))
    assert not same(Streak(since=-0.0), Streak(since=0.0))
    assert not same(AuditEntry(1.0, "k", None, "d", data={"a": [1]}), AuditEntry(1.0, "k", None, "d", data={"a": (1,)}))
    assert not same(AuditEntry(1.0, "k", None, "d", data={"a": 1}), AuditEntry(1.0, "k", None, "d", data={"a": True}))


# -- leadership and membership ---------------------------------------------------------------


def test_one_leader_at_a_time_with_a_token_that_only_grows(store_stand: StoreStand) -> None:
    first, second = store_stand.open(), store_stand.open_same()
    a, b = first.campaign(EAST), second.campaign(WEST)
    if store_stand.kind == "sqlite":  # no leases on one machine: everyone may act, token 0
        assert (a, b, first.leading(), second.leading()) == (0, 0, 0, 0)
        return
    assert a is not None and a > 0 and b is None  # the first to campaign leads
    assert (first.leading(), second.leading()) == (a, None)
    leader = first.leader()
    assert leader is not None and second.leader() == leader
    first.resign()
    assert first.leading() is None
    taken = second.campaign(WEST)
    assert taken is not None and taken > a  # the next leader's fencing token is newer
    assert first.campaign(EAST) is None and second.leader() not in (None, leader)


def test_a_closed_session_takes_its_membership_and_leaves_its_report_to_expire(store_stand: StoreStand) -> None:
    first, second = store_stand.open(), store_stand.open_same()
    first.campaign(EAST)
    first.put_region_health(EAST, {(D1, EAST): RegionHealth(EAST, Status.DOWN, 0, 1, 1.0, "down")}, 5.0)
    if store_stand.kind == "sqlite":  # one machine: reports are kept until overwritten
        assert EAST in second.all_region_health(0.0)
        return
    (name,) = first.members()  # the process's own name (each handle is a process of its own)
    assert EAST in second.all_region_health(0.0)
    first.close()
    assert name not in second.members()  # revoked with the session's lease: not alive any more
    assert name in second.last_seen()  # but when it was last seen is kept
    # the vote stays until its own lease (as long as a report is fresh) runs out: a cron-run
    # observer's vote outlives its process, and a dead daemon's goes within that time
    assert EAST in second.all_region_health(0.0)
