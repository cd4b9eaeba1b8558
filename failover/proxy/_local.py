"""The relay inside one process: listener, upstream choice, and the two protocols per connection.

Hot path rules (this is where the proxy's CPU goes):

* one ``_Client`` and one ``_UpstreamSide`` object per connection, both with ``__slots__``;
* ``data_received`` writes the chunk to the other transport's bound ``write`` and adds its
  length to a plain int: no lookups by label, no per-byte work, no logging;
* no coroutine per connection except uvloop's own ``create_connection``; no
  ``get_extra_info`` (a ``getsockname``/``getpeername`` each) unless PROXY headers are on;
* half-close is relayed with one ``shutdown`` only when the other side may still send;
  when both sides have sent EOF the sockets are closed, not shut down again;
* timers are shared: one sweep for idle connections and one timer per route change for
  the drain, instead of a timer per connection. Connect timeouts are a timer per connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from functools import partial
from typing import Any

from failover.proxy import _proxyproto
from failover.proxy._route import Route, split_address
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyStats, UpstreamStats

log = logging.getLogger("failover.proxy")

_PENDING_LIMIT = 256 * 1024  # client bytes held while the upstream connect is in progress
_NO_UPSTREAM: tuple[_Upstream, ...] = ()


class _Upstream:
    """One gateway address of one region, with the counters the balancer and metrics need."""

    __slots__ = (
        "active",
        "address",
        "connections",
        "ejected_until",
        "failures",
        "host",
        "port",
        "region",
        "retries",
    )

    def __init__(self, region: str, address: str, host: str, port: int) -> None:
        self.region = region
        self.address = address
        self.host = host
        self.port = port
        self.active = 0
        self.connections = 0
        self.failures = 0
        self.retries = 0
        self.ejected_until = 0.0

    def __repr__(self) -> str:
        return f"{self.region}/{self.address}"


def _discard(data: bytes) -> None:
    pass


class _UpstreamSide(asyncio.Protocol):
    """The gateway side of one relayed connection (one per connect attempt)."""

    __slots__ = ("_c", "_n", "_write")

    def __init__(self, client: _Client) -> None:
        self._c = client
        self._n = 0  # bytes relayed to the client
        self._write: Any = _discard  # the client transport's write, once adopted

    def __call__(self) -> _UpstreamSide:  # the protocol factory create_connection wants
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


class _Client(asyncio.Protocol):
    """The client side of one relayed connection, and the state the connection shares.

    The upstream connect runs uvloop's ``create_connection`` coroutine, stepped by hand
    from the future it waits on (what a Task would do, without the Task, its context and
    its three extra callbacks per connection). Connect timeouts are enforced by the
    proxy's shared sweep, which cancels that future.
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

    def __init__(self, proxy: LocalProxy) -> None:
        self._p = proxy
        self._ut: Any = None  # upstream transport, once connected
        self._us: _UpstreamSide | None = None
        self._up: _Upstream | None = None
        self._send = self._hold
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._ceof = False
        self._ueof = False
        self._done = False
        self._n = 0  # bytes relayed to the upstream
        self._coro: Any = None  # the create_connection coroutine in progress
        self._waiter: asyncio.Future[Any] | None = None  # the future it waits on
        self._tried: list[_Upstream] | None = None
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
        up = p._pick(None)
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

    def _connect(self, up: _Upstream) -> None:
        p = self._p
        self._up = up
        up.active += 1
        us = self._us = _UpstreamSide(self)
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

    def _upstream_made(self, us: _UpstreamSide, transport: Any) -> None:
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
        p._connect_failed(up, exc)
        tried = self._tried
        if tried is None:
            tried = self._tried = [up]
        else:
            tried.append(up)
        nxt = p._pick(tried)
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

    def _close(self, abort: bool = False) -> None:
        """Close both sides: gracefully (buffered bytes are flushed first), or at once."""
        for transport in (self._ct, self._ut):
            if transport is not None:
                if abort:
                    transport.abort()
                else:
                    transport.close()
        if self._waiter is not None:
            self._waiter.cancel()


class LocalProxy:
    """The relay in this process and event loop. ``Proxy`` wraps it (and worker processes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[_Client, None] = {}  # ordered set of open connections
        self._upstreams: dict[tuple[str, str], _Upstream] = {}
        self._route = Route()
        self._tiers: tuple[tuple[_Upstream, ...], ...] = ()
        self._first: tuple[_Upstream, ...] = _NO_UPSTREAM
        self._rr = 0
        self._eject_horizon = 0.0  # no ejection lasts beyond this loop time
        self._least = settings.balance == "least_connections"
        self._connect_timeout = settings.connect_timeout
        self._connect_sweep_every = max(settings.connect_timeout / 10, 0.005)
        self._connecting: dict[_Client, float] = {}  # connects in progress -> deadline
        self._connect_sweeper: asyncio.TimerHandle | None = None
        self._max_connections = settings.max_connections
        self._proxy_protocol = settings.proxy_protocol
        self._closing = False
        self._all_closed: asyncio.Future[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._address: tuple[str, int] | None = None
        # counters (plain ints; read by stats())
        self._active = 0
        self._total = 0
        self._rejected_max = 0
        self._rejected_no_upstream = 0
        self._closed_idle = 0
        self._closed_drained = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._route_changes = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            partial(_Client, self),
            s.host,
            s.port,
            backlog=s.backlog,
            reuse_address=True,
            reuse_port=s.reuse_port or None,
        )
        sockname = self._server.sockets[0].getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))
        if s.idle_timeout > 0:
            self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the proxy is not started")
        return self._address

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection gracefully; abort what is left at ``timeout``."""
        if self._closing:
            return
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._connect_sweeper is not None:
            self._connect_sweeper.cancel()
            self._connect_sweeper = None
        if self._server is not None:
            self._server.close()
        if self._active:
            self._all_closed = self._loop.create_future()
            for conn in list(self._conns):
                conn._close()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_closed), timeout)
            except TimeoutError:
                log.warning("proxy %s: %d connections did not close in %gs; aborting them",
                            self.settings.listen, self._active, timeout)
                for conn in list(self._conns):
                    conn._close(abort=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # -- routing ---------------------------------------------------------------------------

    @property
    def route(self) -> Route:
        return self._route

    def set_route(self, route: Route) -> None:
        """Send new connections by ``route`` from now on; drain connections it leaves behind."""
        if route == self._route:
            return
        port = self.settings.upstream_port
        tiers: list[tuple[_Upstream, ...]] = []
        for region, addresses in route.tiers:
            ups = []
            for address in addresses:
                up = self._upstreams.get((region, address))
                if up is None:
                    host, uport = split_address(address, port)
                    up = self._upstreams[(region, address)] = _Upstream(region, address, host, uport)
                if up not in ups:
                    ups.append(up)
            if ups:
                tiers.append(tuple(ups))
        self._route = route
        self._route_changes += 1
        self._tiers = tuple(tiers)
        promoted = set(tiers[0] if tiers else ()) - set(self._first)
        for up in promoted:
            # The coordinator moved traffic here on the probes' word: lift a passive ejection left
            # from an old outage (Envoy's successful_active_health_check_uneject_host).
            up.ejected_until = 0.0
        self._first = tiers[0] if tiers else _NO_UPSTREAM
        first = set(self._first)
        leaving = [c for c in self._conns if c._up not in first]
        drain = self.settings.drain_time
        if leaving and self._loop is not None:
            if drain > 0:
                self._loop.call_later(drain, self._drain, leaving)
            else:
                self._drain(leaving)
        log.info(
            "proxy %s: route %s%s",
            self.settings.listen,
            route,
            f"; {len(leaving)} connections elsewhere close in {drain:g}s" if leaving else "",
        )

    def _drain(self, conns: list[_Client]) -> None:
        first = set(self._first)
        for conn in conns:
            if not conn._done and conn._up not in first:
                self._closed_drained += 1
                conn._close()

    def _pick(self, tried: list[_Upstream] | None) -> _Upstream | None:
        """The upstream for a new connect: balanced over the first tier, skipping ejected ones.

        After a failure (``tried`` holds what failed): the rest of the first tier, then the
        next tiers, each balanced; then, as a last resort, ejected addresses not yet tried.
        """
        now = math.inf  # "no ejection is in force": every ejected_until <= now
        if self._eject_horizon:
            t = self._loop.time()
            if t >= self._eject_horizon:
                self._eject_horizon = 0.0
            else:
                now = t
        if tried is None:
            tier = self._first
            n = len(tier)
            if n == 1:
                if tier[0].ejected_until <= now:
                    return tier[0]
            elif n:
                up = self._balance(tier, None, now)
                if up is not None:
                    return up
            tried_: list[_Upstream] = []
        else:
            tried_ = tried
        for tier in self._tiers:
            up = self._balance(tier, tried_, now)
            if up is not None:
                return up
        for tier in self._tiers:  # panic mode: everything left is ejected; try it anyway
            for up in tier:
                if up not in tried_:
                    return up
        return None

    def _balance(
        self, tier: tuple[_Upstream, ...], tried: list[_Upstream] | None, now: float
    ) -> _Upstream | None:
        n = len(tier)
        start = self._rr
        self._rr = start + 1
        if not self._least:
            for k in range(n):
                up = tier[(start + k) % n]
                if up.ejected_until <= now and (not tried or up not in tried):
                    return up
            return None
        best: _Upstream | None = None
        for k in range(n):
            up = tier[(start + k) % n]
            if (
                up.ejected_until <= now
                and (not tried or up not in tried)
                and (best is None or up.active < best.active)
            ):
                best = up
        return best

    def _connect_failed(self, up: _Upstream, exc: BaseException) -> None:
        up.failures += 1
        eject = self.settings.ejection_time
        if eject <= 0:
            return
        now = self._loop.time()
        if up.ejected_until <= now:
            log.warning(
                "proxy %s: upstream %s ejected for %gs: %s",
                self.settings.listen, up, eject, _describe(exc),
            )
        up.ejected_until = now + eject
        self._eject_horizon = max(self._eject_horizon, up.ejected_until)

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

    # -- idle ------------------------------------------------------------------------------

    def _sweep_interval(self) -> float:
        return min(max(self.settings.idle_timeout / 10, 0.01), 5.0)

    def _sweep(self) -> None:
        now = self._loop.time()
        limit = self.settings.idle_timeout
        for conn in list(self._conns):
            us = conn._us
            seen = conn._n + (us._n if us is not None else 0)
            if seen != conn._seen:
                conn._seen = seen
                conn._quiet = now
            elif now - conn._quiet >= limit and not conn._done:
                self._closed_idle += 1
                conn._close()
        self._sweeper = self._loop.call_later(self._sweep_interval(), self._sweep)

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> ProxyStats:
        now = self._loop.time() if self._loop is not None else math.inf
        ups = {
            f"{up.region}/{up.address}": UpstreamStats(
                region=up.region,
                address=up.address,
                connections=up.connections,
                connect_failures=up.failures,
                retries=up.retries,
                active=up.active,
                ejected=up.ejected_until > now,
            )
            for up in self._upstreams.values()
        }
        return ProxyStats(
            connections_active=self._active,
            connections_total=self._total,
            rejected_max_connections=self._rejected_max,
            rejected_no_upstream=self._rejected_no_upstream,
            closed_idle=self._closed_idle,
            closed_drained=self._closed_drained,
            bytes_from_clients=self._bytes_in + sum(c._n for c in self._conns),
            bytes_to_clients=self._bytes_out + sum(c._us._n for c in self._conns if c._us is not None),
            route_changes=self._route_changes,
            upstreams=ups,
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.CancelledError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
