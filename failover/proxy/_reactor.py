"""The proxy's own event source: one epoll for the listening sockets and every relayed socket.

The event loop (uvloop or plain asyncio) watches one descriptor, this epoll's; when it is
readable, ``_on_events`` takes a batch of events and calls each socket's handler. So the
relay costs the same on both loops, and nothing about a connection is registered with the
loop itself (see ``_relay.py`` for why). Listening sockets are level-triggered and
accepted from in batches; relayed sockets are edge-triggered and registered once.

Descriptor numbers are reused as soon as a socket is closed: a socket closed while a batch
is being handled marks its number stale until the batch ends, so that an event fetched for
the old socket never reaches a new one with the same number.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import select
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

from failover.proxy._relay import BUFFER, WATCH, Relay
from failover.proxy._settings import Settings
from failover.proxy._upstreams import Balancer

log = logging.getLogger("failover.proxy")

_BATCH = 512  # events handled per wake-up; more wait for the next loop iteration
_ACCEPT_BATCH = 64  # connections accepted per readable listener per wake-up
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_PAUSE = 1.0  # seconds a listener rests after running out of descriptors


class _Listener:
    __slots__ = ("accept", "family", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.family = int(sock.family)
        self.accept: Callable[[], tuple[int, Any]] = sock._accept  # type: ignore[attr-defined]  # (fd, address)


def listening_sockets(host: str, port: int, backlog: int, reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` resolves to (as
    ``create_server`` does). ``TCP_NODELAY`` is set here once: accepted sockets inherit it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, _, _, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                              f"{(exc.strerror or '').lower()}") from None
            sock.listen(backlog)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Reactor:
    """The listeners, the open relays and what they share: the balancer, the read buffer,
    the connects in progress and their timeout sweep, the counters. ``LocalProxy`` is one;
    each ``Relay`` reaches it as ``_p``."""

    def __init__(self, settings: Settings) -> None:
        self.balancer = Balancer(settings)
        self.buffer = bytearray(BUFFER)  # every recv lands here: one loop, one connection at a time
        self.view = memoryview(self.buffer)
        self.proxy_protocol = settings.proxy_protocol
        # Shared with the relays (public for them; the hot path reads them directly).
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by open()
        self.epoll: select.epoll | None = None
        self.handlers: dict[int, Callable[[int], None]] = {}  # descriptor -> its events' handler
        self.stale: set[int] = set()  # descriptors closed during the batch being handled
        self.connect_timeout = settings.connect_timeout
        self.connecting: dict[Relay, float] = {}  # connects in progress -> deadline
        self.connect_sweeper: asyncio.TimerHandle | None = None
        self._connect_sweep_every = max(settings.connect_timeout / 10, 0.005)
        self._listeners: list[_Listener] = []
        self._conns: dict[Relay, None] = {}  # ordered set of open connections
        self._max_connections = settings.max_connections
        self._closing = False
        self._all_closed: asyncio.Future[None] | None = None  # set once the last connection is gone
        # counters (plain ints; read by stats())
        self._active = 0
        self._total = 0
        self._rejected_max = 0
        self.rejected_no_upstream = 0
        self._bytes_in = 0
        self._bytes_out = 0

    # -- lifecycle -------------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop, socks: list[socket.socket]) -> None:
        self.loop = loop
        self.balancer.clock = loop.time
        self.epoll = epoll = select.epoll()
        for sock in socks:
            listener = _Listener(sock)
            self._listeners.append(listener)
            fd = sock.fileno()
            self.handlers[fd] = partial(self._accept, listener)
            epoll.register(fd, select.EPOLLIN)  # level-triggered: what a batch leaves is seen again
        loop.add_reader(epoll.fileno(), self._on_events)

    def stop_accepting(self) -> None:
        for listener in self._listeners:
            fd = listener.sock.fileno()
            if fd >= 0:
                self.drop(fd, listener.sock)
        self._listeners.clear()

    def shut(self) -> None:
        """Last step of stopping: every relay is gone; stop watching the epoll."""
        if self.epoll is not None and not self.epoll.closed:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()

    # -- events ------------------------------------------------------------------------------

    def _on_events(self) -> None:
        epoll = self.epoll
        if epoll is None or epoll.closed:
            return
        stale = self.stale
        stale.clear()
        handlers = self.handlers
        for fd, events in epoll.poll(0, _BATCH):
            if fd in stale:
                continue
            handler = handlers.get(fd)
            if handler is None:
                continue
            try:
                handler(events)
            except Exception:  # a bug must cost one connection, not the batch's other events
                log.exception("proxy: error handling a socket event")
                self._abort_fd(fd)

    def _abort_fd(self, fd: int) -> None:
        for relay in list(self._conns):
            if fd in (relay._cfd, relay._ufd):
                relay.close(abort=True)

    def drop(self, fd: int, sock: _socket.socket) -> None:
        """Close a registered socket (closing it takes it out of the epoll)."""
        del self.handlers[fd]
        self.stale.add(fd)
        sock.close()

    # -- accept ------------------------------------------------------------------------------

    def _accept(self, listener: _Listener, events: int) -> None:
        accept, family, balancer, handlers = listener.accept, listener.family, self.balancer, self.handlers
        epoll = self.epoll
        assert epoll is not None
        for _ in range(_ACCEPT_BATCH):
            try:
                fd, peer = accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._rest(listener, exc)
                    return
                continue  # e.g. ECONNABORTED: that client is gone; take the next
            self._total += 1
            if self._active >= self._max_connections or self._closing:
                self._rejected_max += 1
                _socket.close(fd)
                continue
            up = balancer.pick(None)
            if up is None:
                self.rejected_no_upstream += 1
                _socket.close(fd)
                continue
            cs = _socket.socket(family, socket.SOCK_STREAM, 0, fd)
            if cs.gettimeout() is not None:  # socket.setdefaulttimeout() was called: calls would poll first
                cs.setblocking(False)
            relay = Relay(self, cs, fd, peer)
            self._active += 1
            self._conns[relay] = None
            handlers[fd] = relay.on_client
            epoll.register(fd, WATCH)
            relay.connect(up)

    def _rest(self, listener: _Listener, exc: OSError) -> None:
        """Out of descriptors: stop accepting from this listener for a while (not a busy loop)."""
        log.error("proxy: cannot accept connections: %s; trying again in %gs", exc.strerror, _ACCEPT_PAUSE)
        epoll = self.epoll
        assert epoll is not None
        fd = listener.sock.fileno()
        epoll.modify(fd, 0)

        def resume() -> None:
            if not epoll.closed and listener.sock.fileno() == fd:
                epoll.modify(fd, select.EPOLLIN)

        self.loop.call_later(_ACCEPT_PAUSE, resume)

    # -- connects in progress ----------------------------------------------------------------

    def start_connect_sweep(self) -> None:
        self.connect_sweeper = self.loop.call_later(self._connect_sweep_every, self._sweep_connects)

    def _sweep_connects(self) -> None:
        """Time out connects past their deadline (deadlines grow in insertion order)."""
        now = self.loop.time()
        expired = []
        for relay, deadline in self.connecting.items():
            if deadline > now:
                break
            expired.append(relay)
        for relay in expired:
            del self.connecting[relay]
            relay.connect_timed_out()
        if self.connecting and not self._closing:
            self.start_connect_sweep()
        else:
            self.connect_sweeper = None

    # -- end -------------------------------------------------------------------------------

    def finished(self, relay: Relay) -> None:
        """Close the relay's sockets (which takes them out of the epoll) and forget it."""
        handlers, stale = self.handlers, self.stale
        us = relay._us
        if us is not None:
            del handlers[relay._ufd]
            stale.add(relay._ufd)
            us.close()
        del handlers[relay._cfd]
        stale.add(relay._cfd)
        relay._cs.close()
        self._active -= 1
        del self._conns[relay]
        self.connecting.pop(relay, None)
        up = relay._up
        if up is not None:
            up.active -= 1
        self._bytes_in += relay._n
        self._bytes_out += relay._m
        if self._closing and self._active == 0 and self._all_closed is not None and not self._all_closed.done():
            self._all_closed.set_result(None)
