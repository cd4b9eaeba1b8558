"""One relayed connection: the client and gateway protocols, and what the connections share.

Hot path rules (this is where the proxy's CPU goes):

* one ``Client`` and one ``UpstreamSide`` object per connection, both with ``__slots__``;
* ``data_received`` writes the chunk to the other transport's bound ``write`` and adds its
  length to a plain int: no lookups by label, no per-byte work, no logging;
* no coroutine per connection except uvloop's own ``create_connection``; no
  ``get_extra_info`` (a ``getsockname``/``getpeername`` each) unless PROXY headers are on;
* half-close is relayed with one ``shutdown`` only when the other side may still send;
  when both sides have sent EOF the sockets are closed, not shut down again;
* timers are shared: one sweep for connect timeouts here, one for idle connections and one
  timer per route change for the drain in ``LocalProxy``, instead of timers per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from failover.proxy import _proxyproto
from failover.proxy._settings import Settings
from failover.proxy._upstreams import Balancer, Upstream

_PENDING_LIMIT = 256 * 1024  # client bytes held while the upstream connect is in progress


class Connections:
    """The open connections of one listener and what they share: the balancer, the counters,
    the connects in progress and the sweep that times them out. ``LocalProxy`` is one; each
    ``Client`` reaches it as ``_p``."""

    def __init__(self, settings: Settings) -> None:
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._balancer = Balancer(settings)
        self._conns: dict[Client, None] = {}  # ordered set of open connections
        self._connect_timeout = settings.connect_timeout
        self._connect_sweep_every = max(settings.connect_timeout / 10, 0.005)
        self._connecting: dict[Client, float] = {}  # connects in progress -> deadline
        self._connect_sweeper: asyncio.TimerHandle | None = None
        self._max_connections = settings.max_connections
        self._proxy_protocol = settings.proxy_protocol
        self._closing = False
        self._all_closed: asyncio.Future[None] | None = None  # set once the last connection is gone
        # counters (plain ints; read by stats())
        self._active = 0
        self._total = 0
        self._rejected_max = 0
        self._rejected_no_upstream = 0
        self._bytes_in = 0
        self._bytes_out = 0

    def _sweep_connects(self) -> None:
        """Cancel connects past their deadline (deadlines grow in insertion order)."""
        now = self._loop.time()
        expired = []
        for conn, deadline in self._connecting.items():
            if deadline > now:
                break
            expired.append(conn)
        for conn in expired:
            del self._connecting[conn]
            conn._timed_out()
        if self._connecting and not self._closing:
            self._connect_sweeper = self._loop.call_later(self._connect_sweep_every, self._sweep_connects)
        else:
            self._connect_sweeper = None


def _discard(data: bytes) -> None:
    pass


class UpstreamSide(asyncio.Protocol):
    """The gateway side of one relayed connection (one per connect attempt)."""

    __slots__ = ("_c", "_n", "_write")

    def __init__(self, client: Client) -> None:
        self._c = client
        self._n = 0  # bytes relayed to the client
        self._write: Any = _discard  # the client transport's write, once adopted

    def __call__(self) -> UpstreamSide:  # the protocol factory create_connection wants
        return self

    def connection_made(self, transport: Any) -> None:
        self._c._upstream_made(self, transport)

    def data_received(self, data: bytes) -> None:
        self._write(data)
        self._n += len(data)

    def eof_received(self) -> bool:
        return self._c._upstream_eof()

    def pause_writing(self) -> None:
        self._c._ct.pause_reading()

    def resume_writing(self) -> None:
        self._c._ct.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        c = self._c
        if c._us is self and c._ut is not None:
            c._upstream_lost(exc)


class Client(asyncio.Protocol):
    """The client side of one relayed connection, and the state the connection shares.

    The upstream connect runs uvloop's ``create_connection`` coroutine, stepped by hand
    from the future it waits on (what a Task would do, without the Task, its context and
    its three extra callbacks per connection). Connect timeouts are enforced by the shared
    sweep (``Connections._sweep_connects``), which cancels that future.
    """

    __slots__ = (
        "_ceof",
        "_coro",
        "_ct",
        "_done",
        "_n",
        "_p",
        "_pending",
        "_pending_size",
        "_quiet",
        "_seen",
        "_send",
        "_tried",
        "_ueof",
        "_up",
        "_us",
        "_ut",
        "_waiter",
    )

    def __init__(self, proxy: Connections) -> None:
        self._p = proxy
        self._ut: Any = None  # upstream transport, once connected
        self._us: UpstreamSide | None = None
        self._up: Upstream | None = None
        self._send = self._hold
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._ceof = False
        self._ueof = False
        self._done = False
        self._n = 0  # bytes relayed to the upstream
        self._coro: Any = None  # the create_connection coroutine in progress
        self._waiter: asyncio.Future[Any] | None = None  # the future it waits on
        self._tried: list[Upstream] | None = None
        self._seen = -1  # for the idle sweep
        self._quiet = 0.0

    # -- client transport callbacks ------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self._ct = transport
        p = self._p
        p._total += 1
        if p._active >= p._max_connections or p._closing:
            p._rejected_max += 1
            self._done = True
            transport.abort()
            return
        p._active += 1
        p._conns[self] = None
        up = p._balancer.pick(None)
        if up is None:
            p._rejected_no_upstream += 1
            transport.abort()
            return
        self._connect(up)

    def data_received(self, data: bytes) -> None:
        self._send(data)
        self._n += len(data)

    def eof_received(self) -> bool:
        self._ceof = True
        ut = self._ut
        if ut is None:
            return True  # the EOF is passed on once connected
        if self._ueof:
            ut.close()  # both ways done: close, no second shutdown
            return False
        ut.write_eof()
        return True

    def pause_writing(self) -> None:
        if self._ut is not None:
            self._ut.pause_reading()

    def resume_writing(self) -> None:
        if self._ut is not None:
            self._ut.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        ut = self._ut
        if ut is not None:
            if exc is None:
                ut.close()
            else:
                ut.abort()
        self._finish()

    # -- upstream side ---------------------------------------------------------------------

    def _hold(self, data: bytes) -> None:
        """Before the upstream is connected: keep the client's bytes (bounded)."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _PENDING_LIMIT:
            self._ct.pause_reading()

    def _connect(self, up: Upstream) -> None:
        p = self._p
        self._up = up
        up.active += 1
        us = self._us = UpstreamSide(self)
        loop = p._loop
        self._coro = loop.create_connection(us, up.host, up.port)
        p._connecting[self] = loop.time() + p._connect_timeout
        if p._connect_sweeper is None:
            p._connect_sweeper = loop.call_later(p._connect_sweep_every, p._sweep_connects)
        self._step(None)

    def _step(self, _: object) -> None:
        """Run the connect coroutine up to its next wait, or to its end."""
        coro = self._coro
        try:
            waiter = coro.send(None)
        except StopIteration:
            self._coro = self._waiter = None  # connected: _upstream_made already ran
        except (Exception, asyncio.CancelledError) as exc:
            self._coro = self._waiter = None
            self._connect_failed(exc)
        else:
            self._waiter = waiter
            waiter.add_done_callback(self._step)

    def _timed_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and self._ut is None:
            waiter.cancel()  # the coroutine closes its transport; _step sees CancelledError

    def _upstream_made(self, us: UpstreamSide, transport: Any) -> None:
        waiter = self._waiter
        if self._done or us is not self._us or (waiter is not None and waiter.cancelled()):
            return  # abandoned (timed out or client gone): the coroutine closes it
        self._ut = transport
        p = self._p
        p._connecting.pop(self, None)
        up = self._up
        assert up is not None
        up.connections += 1
        us._write = self._ct.write
        pending = self._pending
        if p._proxy_protocol is not None:
            ct = self._ct
            hdr = _proxyproto.header(
                p._proxy_protocol, ct.get_extra_info("peername"), ct.get_extra_info("sockname")
            )
            pending.insert(0, hdr)
        if pending:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
            if self._pending_size > _PENDING_LIMIT and not self._ceof:
                self._ct.resume_reading()
            pending.clear()
        self._send = transport.write
        if self._ceof:
            transport.write_eof()

    def _connect_failed(self, exc: BaseException) -> None:
        p = self._p
        p._connecting.pop(self, None)
        if self._done or self._ct.is_closing():
            return  # the client went away, or the proxy is closing it
        up = self._up
        assert up is not None
        up.active -= 1
        p._balancer.connect_failed(up, exc)
        tried = self._tried
        if tried is None:
            tried = self._tried = [up]
        else:
            tried.append(up)
        nxt = p._balancer.pick(tried)
        if nxt is None:
            self._up = None
            p._rejected_no_upstream += 1
            self._ct.abort()
            return
        nxt.retries += 1
        self._connect(nxt)

    def _upstream_eof(self) -> bool:
        self._ueof = True
        if self._ceof:
            self._ct.close()
            return False
        self._ct.write_eof()
        return True

    def _upstream_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if exc is None:
            self._ct.close()
        else:
            self._ct.abort()
        self._finish()

    # -- end -------------------------------------------------------------------------------

    def _finish(self) -> None:
        self._done = True
        p = self._p
        p._active -= 1
        del p._conns[self]
        up = self._up
        if up is not None:
            up.active -= 1
        p._bytes_in += self._n
        us = self._us
        if us is not None:
            p._bytes_out += us._n
        if self._waiter is not None:
            p._connecting.pop(self, None)
            self._waiter.cancel()
        # Break the reference cycles (client <-> upstream side, bound methods) so that the
        # connection is freed by reference counting, not left to the cyclic GC.
        self._us = None
        self._send = _discard
        if p._closing and p._active == 0 and p._all_closed is not None and not p._all_closed.done():
            p._all_closed.set_result(None)

    def close(self, abort: bool = False) -> None:
        """Close both sides: gracefully (buffered bytes are flushed first), or at once."""
        for transport in (self._ct, self._ut):
            if transport is not None:
                if abort:
                    transport.abort()
                else:
                    transport.close()
        if self._waiter is not None:
            self._waiter.cancel()
