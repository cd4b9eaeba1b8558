"""Every state-store backend behind one fixture, for the store contract suite.

A backend joins the suite with a ``StoreStand`` subclass and one entry in ``STANDS``:

    class EtcdStand(StoreStand):
        kind = "etcd"

        def __init__(self, server: Etcd) -> None:
            super().__init__()
            self.server = server

        def fresh_url(self) -> str:  # a new key prefix: empty, and no other test's keys under it
            return f"etcd://127.0.0.1:{self.server.port}/contract-{next(_places)}"

    STANDS["etcd"] = lambda request: EtcdStand(request.getfixturevalue("etcd_server"))

A server fixture such as ``etcd_server`` must be visible to the test module: define it here and
add it to the test module's import line next to ``store_stand_fixture``.
"""

from __future__ import annotations

import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failover.errors import StoreError
from failover.store import Store, open_store

_places = itertools.count(1)


class StoreStand(ABC):
    """Hands out store handles for one test and closes them all afterwards.

    ``open()`` is a fresh, empty store that no other test sees; ``open_same()`` is one more
    handle on the data of the latest ``open()``, as another process or another region's
    coordinator would hold it (its own connection, nothing shared in memory)."""

    kind: str

    def __init__(self) -> None:
        self._url: str | None = None
        self._handles: list[Store] = []

    @abstractmethod
    def fresh_url(self) -> str:
        """A ``state.url`` naming a place no store has written to yet."""

    def connect(self, url: str) -> Store:
        """A new handle on ``url``; backends that need more than ``open_store`` override this."""
        return open_store(url)

    def open(self) -> Store:
        self._url = self.fresh_url()
        return self._keep(self.connect(self._url))

    def open_same(self) -> Store:
        if self._url is None:
            raise RuntimeError("open_same() before open(): there is no store to share yet")
        return self._keep(self.connect(self._url))

    def _keep(self, store: Store) -> Store:
        self._handles.append(store)
        return store

    def close(self) -> None:
        for store in self._handles:
            with contextlib.suppress(StoreError):  # a test may have broken or closed it already
                store.close()
        self._handles.clear()


class SqliteStand(StoreStand):
    kind = "sqlite"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def fresh_url(self) -> str:
        return f"sqlite:///{self.directory / f'state-{next(_places)}.db'}"


# kind -> how to build its stand (with whatever server fixtures it needs, via the request)
STANDS: dict[str, Callable[[pytest.FixtureRequest], StoreStand]] = {
    "sqlite": lambda request: SqliteStand(request.getfixturevalue("tmp_path")),
}


@pytest.fixture(name="store_stand", params=list(STANDS))
def store_stand_fixture(request: pytest.FixtureRequest) -> Iterator[StoreStand]:
    stand = STANDS[request.param](request)
    try:
        yield stand
    finally:
        stand.close()


@pytest.fixture(name="store")
def store_fixture(store_stand: StoreStand) -> Store:
    """A fresh, empty store of each backend in turn."""
    return store_stand.open()
