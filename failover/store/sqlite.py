"""The embedded store: one sqlite file in WAL mode.

Safe when a cron run, the daemon and an operator's ``promote`` touch it at once: every write
is a short ``BEGIN IMMEDIATE`` transaction (writers queue on sqlite's lock, readers never
block in WAL), and the compare-and-set on a domain's epoch happens inside that transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from failover.errors import StoreError
from failover.model import AuditEntry, DomainState, Drain, Override, RegionHealth, Streak, StreakKey
from failover.store import codec
from failover.store.abc import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS state (domain TEXT PRIMARY KEY, epoch INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streak (
    observer TEXT, domain TEXT, gateway TEXT, checkname TEXT, data TEXT NOT NULL,
    PRIMARY KEY (observer, domain, gateway, checkname));
CREATE TABLE IF NOT EXISTS region_health (
    observer TEXT, domain TEXT, region TEXT, data TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (observer, domain, region));
CREATE TABLE IF NOT EXISTS override (domain TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drain (region TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_domain ON audit (domain, id);
"""


class SqliteStore(Store):
    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open state store {self.path}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreError(f"state store {self.path} is closed")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"state store {self.path} is busy or unwritable: {exc}") from None
            try:
                yield self._db
            except BaseException as exc:
                if self._db.in_transaction:  # sqlite may have rolled back already (SQLITE_FULL, IOERR)
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):  # disk full, I/O error, read-only: the contract's StoreError
                    raise StoreError(f"state store {self.path}: write failed: {exc}") from None
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._db.in_transaction:  # a failed COMMIT (busy) leaves it open: close it
                        self._db.execute("ROLLBACK")
                    raise StoreError(f"state store {self.path}: commit failed: {exc}") from None

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[str, ...]]:
        try:
            with self._lock:
                if self._closed:
                    raise StoreError(f"state store {self.path} is closed")
                return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self.path}: read failed: {exc}") from None

    # -- decisions ---------------------------------------------------------------------------
    def get_state(self, domain: str) -> DomainState | None:
        rows = self._read("SELECT data FROM state WHERE domain = ?", (domain,))
        return codec.state(rows[0][0]) if rows else None

    def put_state(self, state: DomainState, expect_epoch: int | None) -> bool:
        with self._write() as db:
            row = db.execute("SELECT epoch FROM state WHERE domain = ?", (state.domain,)).fetchone()
            stored = row[0] if row else None
            if stored != expect_epoch:
                return False
            db.execute(
                "INSERT OR REPLACE INTO state (domain, epoch, data) VALUES (?, ?, ?)",
                (state.domain, state.epoch, codec.dumps(state)),
            )
            return True

    # -- observations ------------------------------------------------------------------------
    def get_streaks(self, observer: str) -> dict[StreakKey, Streak]:
        rows = self._read("SELECT domain, gateway, checkname, data FROM streak WHERE observer = ?", (observer,))
        return {StreakKey(d, g, c): codec.streak(data) for d, g, c, data in rows}

    def put_streaks(self, observer: str, streaks: Mapping[StreakKey, Streak]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO streak VALUES (?, ?, ?, ?, ?)",
                [(observer, k.domain, k.gateway, k.check, codec.dumps(v)) for k, v in streaks.items()],
            )

    def get_region_health(self, observer: str) -> dict[tuple[str, str], RegionHealth]:
        rows = self._read("SELECT domain, region, data FROM region_health WHERE observer = ?", (observer,))
        return {(d, r): codec.region_health(data) for d, r, data in rows}

    def put_region_health(self, observer: str, health: Mapping[tuple[str, str], RegionHealth], now: float) -> None:
        with self._write() as db:  # a report replaces the observer's last one whole, as etcd's one key does
            db.execute("DELETE FROM region_health WHERE observer = ?", (observer,))
            db.executemany(
                "INSERT OR REPLACE INTO region_health VALUES (?, ?, ?, ?, ?)",
                [(observer, d, r, codec.dumps(v), now) for (d, r), v in health.items()],
            )

    def all_region_health(
        self, fresh_after: float, others_than: str | None = None
    ) -> dict[str, dict[tuple[str, str], RegionHealth]]:
        rows = self._read(
            "SELECT observer, domain, region, data FROM region_health WHERE updated >= ? AND observer IS NOT ?",
            (fresh_after, others_than),
        )
        out: dict[str, dict[tuple[str, str], RegionHealth]] = {}
        for observer, d, r, data in rows:
            out.setdefault(observer, {})[(d, r)] = codec.region_health(data)
        return out

    # -- operator intent ---------------------------------------------------------------------
    def overrides(self) -> dict[str, Override]:
        return {d: codec.override(data) for d, data in self._read("SELECT domain, data FROM override")}

    def set_override(self, override: Override) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO override VALUES (?, ?)", (override.domain, codec.dumps(override)))

    def clear_override(self, domain: str, expect: Override | None = None) -> Override | None:
        with self._write() as db:
            row = db.execute("SELECT data FROM override WHERE domain = ?", (domain,)).fetchone()
            if row is None or (expect is not None and codec.override(row[0]) != expect):
                return None
            db.execute("DELETE FROM override WHERE domain = ?", (domain,))
            return codec.override(row[0])

    def drains(self) -> dict[str, Drain]:
        return {r: codec.drain(data) for r, data in self._read("SELECT region, data FROM drain")}

    def set_drain(self, drain: Drain) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO drain VALUES (?, ?)", (drain.region, codec.dumps(drain)))

    def clear_drain(self, region: str) -> Drain | None:
        with self._write() as db:
            row = db.execute("SELECT data FROM drain WHERE region = ?", (region,)).fetchone()
            db.execute("DELETE FROM drain WHERE region = ?", (region,))
            return codec.drain(row[0]) if row else None

    # -- audit -------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        with self._write() as db:
            db.execute("INSERT INTO audit (domain, data) VALUES (?, ?)", (entry.domain, codec.dumps(entry)))

    def history(self, domain: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        where, args = ("WHERE domain = ? OR domain IS NULL", (domain,)) if domain else ("", ())
        sql = f"SELECT data FROM audit {where} ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._read(sql, args)
        return [codec.audit(data) for (data,) in reversed(rows)]

    # -- leadership: no leases on one machine (see Store), but a closed store never answers "act now"
    def _open(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreError(f"state store {self.path} is closed")

    def campaign(self, observer: str, take: bool = True) -> int | None:
        self._open()
        return 0

    def leading(self) -> int | None:
        self._open()
        return 0

    def leader(self) -> str | None:
        self._open()
        return None

    def members(self) -> dict[str, float]:
        self._open()
        return {}

    def last_seen(self) -> dict[str, float]:
        self._open()
        return {}

    def wait_for_change(self, timeout: float) -> bool:
        self._open()
        return False

    def close(self) -> None:
        # Under the lock: a worker thread may still be inside a statement (a cancelled task's
        # to_thread call runs on), and closing under it crashes sqlite, not just Python.
        with self._lock:
            self._closed = True
            self._db.close()
