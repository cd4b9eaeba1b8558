"""The embedded sqlite store: compare-and-set on epochs, round trips, the audit log, and
several processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import StoreError, UsageError
from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Status, Streak, StreakKey
from failover.store import open_store
from failover.store.sqlite import SqliteStore

D1, D2 = "api.example.com", "www.example.com"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def domain_state(epoch: int, primary: str = "east", domain: str = D1) -> DomainState:
    return DomainState(
        domain,
        primary=primary,
        secondary="west",
        epoch=epoch,
        changed_at=100.0 + epoch,
        failovers=(50.0, 100.0 + epoch),
        reason=f"epoch {epoch}",
    )


# -- compare-and-set ---------------------------------------------------------------------------


def test_put_state_is_a_compare_and_set_on_the_epoch(store: SqliteStore) -> None:
    assert store.get_state(D1) is None
    first = domain_state(1)
    assert store.put_state(first, expect_epoch=None) is True
    assert store.get_state(D1) == first
    # a second "first write" loses and writes nothing
    assert store.put_state(domain_state(1, primary="west"), expect_epoch=None) is False
    assert store.get_state(D1) == first
    # a stale or future epoch loses and writes nothing
    for wrong in (0, 2, 7):
        assert store.put_state(domain_state(9, primary="west"), expect_epoch=wrong) is False
        assert store.get_state(D1) == first
    second = domain_state(2, primary="west")
    assert store.put_state(second, expect_epoch=1) is True
    assert store.get_state(D1) == second
    assert store.put_state(domain_state(3), expect_epoch=1) is False
    assert store.get_state(D1) == second


def test_put_state_with_an_expectation_on_a_missing_row_fails(store: SqliteStore) -> None:
    assert store.put_state(domain_state(1), expect_epoch=0) is False
    assert store.get_state(D1) is None


def test_same_epoch_rewrite_keeps_the_epoch(store: SqliteStore) -> None:
    """A decision that does not move the primary rewrites the state under the same epoch."""
    assert store.put_state(domain_state(1), None)
    kept = DomainState(D1, primary="east", epoch=1, reason="no action")
    assert store.put_state(kept, expect_epoch=1)
    assert store.get_state(D1) == kept


def test_domains_are_independent(store: SqliteStore) -> None:
    assert store.put_state(domain_state(1), None)
    assert store.put_state(domain_state(4, domain=D2), None)
    assert store.get_state(D1).epoch == 1  # type: ignore[union-attr]
    assert store.get_state(D2).epoch == 4  # type: ignore[union-attr]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.builds(
        DomainState,
        domain=st.sampled_from([D1, D2]),
        primary=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
        secondary=st.one_of(st.none(), st.text(max_size=8)),
        epoch=st.integers(0, 2**40),
        changed_at=st.one_of(st.none(), st.floats(0, 2e9)),
        failovers=st.lists(st.floats(0, 2e9), max_size=5).map(tuple),
        reason=st.text(max_size=40),
    )
)
def test_state_round_trips_exactly(store: SqliteStore, state: DomainState) -> None:
    current = store.get_state(state.domain)
    assert store.put_state(state, current.epoch if current else None)
    assert store.get_state(state.domain) == state


# -- observations ------------------------------------------------------------------------------


def test_streaks_round_trip_per_observer(store: SqliteStore) -> None:
    key = StreakKey(D1, "use1-a", "http:8080/ready")
    other = StreakKey(D2, "use1-a", "tls:443")
    up = Streak(Status.UP, 3, 0, 12.5, "200 in 3ms", 0.003, None)
    down = Streak(Status.DOWN, 0, 4, 20.0, "connect refused", 1.0, "certificate expires in 2d")
    store.put_streaks("east", {key: up, other: down})
    store.put_streaks("west", {key: down})
    got = store.get_streaks("east")
    assert got == {key: up, other: down}
    assert got[key].status is Status.UP
    assert store.get_streaks("west") == {key: down}
    assert store.get_streaks("nobody") == {}
    store.put_streaks("east", {key: down})  # overwrite one, keep the other
    assert store.get_streaks("east") == {key: down, other: down}


def test_region_health_round_trip_and_freshness(store: SqliteStore) -> None:
    east = RegionHealth("east", Status.UP, 2, 2, 10.0, "2/2 gateways up")
    west = RegionHealth("west", Status.DOWN, 0, 1, None, "1/1 gateways failing: w 503")
    store.put_region_health("east", {(D1, "east"): east, (D1, "west"): west}, now=100.0)
    store.put_region_health("west", {(D1, "west"): east}, now=50.0)
    assert store.get_region_health("east") == {(D1, "east"): east, (D1, "west"): west}
    assert store.get_region_health("east")[(D1, "west")].status is Status.DOWN
    assert store.all_region_health(fresh_after=0.0) == {
        "east": {(D1, "east"): east, (D1, "west"): west},
        "west": {(D1, "west"): east},
    }
    assert set(store.all_region_health(fresh_after=100.0)) == {"east"}  # at or after
    assert store.all_region_health(fresh_after=100.1) == {}


# -- operator intent ---------------------------------------------------------------------------


def test_override_round_trip_and_clear(store: SqliteStore) -> None:
    pinned = Override(D1, "west", "DB migration", "alice@host", 100.0, until=7300.0, force=True)
    service_wide = Override("*", "east", "drill", "bob", 50.0)
    store.set_override(pinned)
    store.set_override(service_wide)
    assert store.overrides() == {D1: pinned, "*": service_wide}
    replaced = Override(D1, "east", "back", "alice@host", 200.0)
    store.set_override(replaced)
    assert store.overrides()[D1] == replaced
    assert store.clear_override(D1) == replaced
    assert store.clear_override(D1) is None
    assert store.overrides() == {"*": service_wide}


def test_drain_round_trip_and_clear(store: SqliteStore) -> None:
    drain = Drain("east", "kernel upgrade", "ops", 10.0)
    store.set_drain(drain)
    store.set_drain(drain)  # idempotent
    assert store.drains() == {"east": drain}
    assert store.clear_drain("east") == drain
    assert store.clear_drain("east") is None
    assert store.drains() == {}


# -- audit -------------------------------------------------------------------------------------


def entry(i: int, domain: str | None = D1, kind: str = "elected") -> AuditEntry:
    return AuditEntry(float(i), kind, domain, f"entry {i}", observer="east", data={"epoch": i, "tags": ["a", "b"]})


def test_audit_round_trip_and_history_oldest_first(store: SqliteStore) -> None:
    entries = [entry(1), entry(2, D2), entry(3, None, "drain"), entry(4), entry(5, D2)]
    for e in entries:
        store.audit(e)
    assert store.history() == entries
    assert store.history()[0].data == {"epoch": 1, "tags": ["a", "b"]}
    # a domain's history holds its own entries and the service-wide ones (domain None)
    assert store.history(D1) == [entries[0], entries[2], entries[3]]
    assert store.history(D2) == [entries[1], entries[2], entries[4]]
    # limit keeps the newest, still oldest first
    assert store.history(limit=2) == entries[3:]
    assert store.history(D2, limit=2) == [entries[2], entries[4]]
    assert store.history(limit=0) == []


def test_history_is_by_insertion_not_by_timestamp(store: SqliteStore) -> None:
    late, early = entry(9), entry(1)
    store.audit(late)
    store.audit(early)
    assert store.history() == [late, early]


def test_store_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    first.put_state(domain_state(1), None)
    first.audit(entry(1))
    first.set_drain(Drain("east", "r", "b", 1.0))
    first.close()
    again = SqliteStore(path)
    try:
        assert again.get_state(D1) == domain_state(1)
        assert again.history() == [entry(1)]
        assert set(again.drains()) == {"east"}
        assert again.is_leader("east", ttl=10.0) is True
    finally:
        again.close()


# -- errors ------------------------------------------------------------------------------------


def test_store_error_on_a_path_below_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        SqliteStore(blocker / "state.db")
    assert str(blocker / "state.db") in str(info.value)
    assert info.value.exit_code == 1


def test_store_error_when_the_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open state store"):
        SqliteStore(tmp_path)


@pytest.mark.parametrize("how", ["ABORT", "ROLLBACK"])
def test_a_refused_write_is_a_store_error_and_changes_nothing(store: SqliteStore, tmp_path: Path, how: str) -> None:
    """A write the database refuses mid-transaction (here a trigger standing in for a full
    disk or an I/O error) surfaces as StoreError, the contract the callers rely on. With
    ROLLBACK sqlite has already ended the transaction itself, as it does on SQLITE_FULL."""
    store.audit(entry(1))
    other = sqlite3.connect(tmp_path / "state.db")
    other.execute(
        f"CREATE TRIGGER refuse BEFORE INSERT ON audit BEGIN SELECT RAISE({how}, 'database or disk is full'); END"
    )
    other.commit()
    other.close()
    with pytest.raises(StoreError, match="disk is full"):
        store.audit(entry(2))
    assert store.history() == [entry(1)]
    # the store is still usable afterwards
    assert store.put_state(domain_state(1), None)


def test_open_store_by_url(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/x.db")
    try:
        assert isinstance(s, SqliteStore) and s.path == tmp_path / "x.db"
    finally:
        s.close()
    with pytest.raises(UsageError, match="no backend"):
        open_store("redis://localhost/0")


# -- several processes at once -----------------------------------------------------------------

CTX = multiprocessing.get_context("fork")
JOIN = 30.0


def _race_put_state(path: str, me: int, expect: int | None, barrier: Any, out: Any) -> None:
    s = SqliteStore(path)
    try:
        barrier.wait(timeout=JOIN)
        new = DomainState(D1, primary=f"r{me}", epoch=(expect or 0) + 1, reason=f"by {me}")
        out.put((me, s.put_state(new, expect)))
    finally:
        s.close()


def _append_audit(path: str, me: int, count: int, barrier: Any, out: Any) -> None:
    s = SqliteStore(path)
    try:
        barrier.wait(timeout=JOIN)
        for i in range(count):
            s.audit(AuditEntry(float(i), "applied", D1, f"{me}:{i}", observer=f"p{me}"))
        out.put((me, "done"))
    finally:
        s.close()


def _run_all(target: Any, args_for: list[tuple[Any, ...]]) -> list[Any]:
    barrier = CTX.Barrier(len(args_for))
    out = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, out)) for args in args_for]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=JOIN) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=JOIN)
            if p.is_alive():
                p.terminate()
                p.join()
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results


def test_processes_racing_put_state_exactly_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SqliteStore(path).close()  # schema and WAL mode before the race
    workers = 6
    expect: int | None = None
    for _round in range(3):
        results = dict(_run_all(_race_put_state, [(path, me, expect) for me in range(workers)]))
        winners = [me for me, won in results.items() if won]
        assert len(winners) == 1, results
        s = SqliteStore(path)
        try:
            stored = s.get_state(D1)
        finally:
            s.close()
        assert stored is not None and stored.primary == f"r{winners[0]}"
        assert stored.epoch == (expect or 0) + 1
        expect = stored.epoch


def test_concurrent_audit_appends_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SqliteStore(path).close()
    workers, count = 5, 40
    _run_all(_append_audit, [(path, me, count) for me in range(workers)])
    s = SqliteStore(path)
    try:
        history = s.history()
    finally:
        s.close()
    assert len(history) == workers * count
    assert {e.detail for e in history} == {f"{me}:{i}" for me in range(workers) for i in range(count)}
    for me in range(workers):  # each writer's entries keep their order
        mine = [int(e.detail.split(":")[1]) for e in history if e.observer == f"p{me}"]
        assert mine == list(range(count))


def test_close_while_other_threads_write_never_crashes(tmp_path: Path) -> None:
    """Closing under a writer used to crash the interpreter (sqlite closed mid-statement)."""
    import threading

    from failover.model import AuditEntry

    store = SqliteStore(tmp_path / "s.db")
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        for i in range(5000):  # bounded
            if stop.is_set():
                return
            try:
                store.audit(AuditEntry(float(i), "applied", "d", "x"))
            except StoreError:
                return
            except BaseException as exc:  # anything but StoreError is a bug
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    store.close()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    with pytest.raises(StoreError, match="closed"):
        store.history()
