"""Every state-store backend behind one fixture, for the store contract suite.

A backend joins the suite with a ``StoreStand`` subclass (usually just ``fresh_url``) and
one entry in ``STANDS``; e.g. a Consul one would be:

    class ConsulStand(StoreStand):
        kind = "consul"

        def __init__(self, server: Consul) -> None:
            super().__init__()
            self.server = server

        def fresh_url(self) -> str:  # a new key prefix: empty, and no other test's keys under it
            return f"consul://127.0.0.1:{self.server.port}/contract-{next(_places)}"

    STANDS["consul"] = lambda request: ConsulStand(request.getfixturevalue("consul_server"))

Its server fixture (``consul_server``) must be visible to the test module: list its plugin in
the module's ``pytest_plugins`` (as ``tests.support.etcd`` is), or import it there.
"""

from __future__ import annotations

import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from failover.errors import StoreError
from failover.store import Store, open_store

if TYPE_CHECKING:
    from tests.support.etcd import EtcdCluster

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

    def connect(self, url: str, observer: str) -> Store:
        """A new handle on ``url`` for the process ``observer``; backends that need more than
        ``open_store`` override this."""
        return open_store(url, observer)

    def open(self) -> Store:
        self._url = self.fresh_url()
        return self._connect()

    def open_same(self) -> Store:
        if self._url is None:
            raise RuntimeError("open_same() before open(): there is no store to share yet")
        return self._connect()

    def _connect(self) -> Store:
        assert self._url is not None
        store = self.connect(self._url, f"handle{len(self._handles) + 1}")  # each handle its own process
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


class EtcdStand(StoreStand):
    """A fresh key prefix on the module's etcd (``etcd_server`` from tests.support.etcd)."""

    kind = "etcd"

    def __init__(self, server: EtcdCluster) -> None:
        super().__init__()
        self.server = server

    def fresh_url(self) -> str:
        hosts = ",".join(endpoint.removeprefix("http://") for endpoint in self.server.endpoints)
        return f"etcd://{hosts}/contract-{next(_places)}"


# kind -> how to build its stand (with whatever server fixtures it needs, via the request)
STANDS: dict[str, Callable[[pytest.FixtureRequest], StoreStand]] = {
    "sqlite": lambda request: SqliteStand(request.getfixturevalue("tmp_path")),
    "etcd": lambda request: EtcdStand(request.getfixturevalue("etcd_server")),
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
