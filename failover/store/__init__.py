"""State stores: ``open_store(url)`` picks the backend from the URL's scheme."""

from __future__ import annotations

from failover.errors import UsageError
from failover.store.abc import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from failover.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    raise UsageError(f"state.url {url!r}: no backend for this scheme yet (supported: sqlite:///)")
