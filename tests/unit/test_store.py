"""What only the sqlite store does: a file that outlives its handles, refused writes and bad
paths, and several processes writing at once. The Store contract itself (compare-and-set,
observations, audit order, overrides, closed-store errors, round trips) is checked over every
backend in tests/contract/test_store_contract.py."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from failover.errors import StoreError, UsageError
from failover.model import AuditEntry, DomainState, Drain
from failover.store import open_store
from failover.store.sqlite import SqliteStore

D1 = "api.example.com"


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


def entry(i: int, domain: str | None = D1, kind: str = "elected") -> AuditEntry:
    return AuditEntry(float(i), kind, domain, f"entry {i}", observer="east", data={"epoch": i, "tags": ["a", "b"]})


# -- the file ----------------------------------------------------------------------------------


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
        # no leases on one machine: every process leads, with token 0, fenced by put_state and markers
        assert again.campaign("east") == again.leading() == 0
        assert again.leader() is None and again.members() == {}
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
