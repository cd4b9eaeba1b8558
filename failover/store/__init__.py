"""State stores: ``open_store`` picks the backend from the URL's scheme.

``sqlite:///path`` is the embedded default (one machine); ``etcd://`` / ``etcds://`` is the
distributed store that coordinators in several regions share (``failover.store.etcd``).
"""

from __future__ import annotations

from failover.errors import UsageError
from failover.policy import State
from failover.store.abc import Store

__all__ = ["Store", "open_store"]


def open_store(state: State | str, observer: str = "", report_ttl: float | None = None) -> Store:
    """The store a policy's ``state`` block names; ``observer`` is this process (etcd keeps
    its session, its reports and its leadership under that name); ``report_ttl``: how long
    its reports outlive it (``Policy.report_freshness()``)."""
    url = state if isinstance(state, str) else state.url
    if url.startswith("sqlite:///"):
        from failover.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("etcd://", "etcds://")):
        from failover.store.etcd import EtcdStore

        if not observer:
            raise UsageError("an etcd store needs the observer this process is (policy observer or FAILOVER_OBSERVER)")
        block = state if isinstance(state, State) else State(url=url)
        return EtcdStore.from_policy(block, observer, report_ttl)
    raise UsageError(f"state.url {url!r}: no backend for this scheme (supported: sqlite:///, etcd://, etcds://)")
