"""One relayed connection: two raw non-blocking sockets and the bytes between them.

Why not asyncio transports: new connections are where the proxy's CPU goes, and transports
spent most of it (uvloop's ask the kernel for both addresses of every socket and check
``SO_ERROR`` after each connect, run ``create_connection`` as a coroutine, register each
socket with the loop and take it out again; plain asyncio does more in Python). Here a
``Connection: close`` request costs about 16 syscalls (HAProxy makes 18), three events
and this one object; the hot path is written for the interpreter (few calls, locals).

* Both sockets are registered once with the proxy's own epoll (``_reactor.py``: the same on
  uvloop and plain asyncio), edge-triggered and for reading only, so the kernel's wake-ups
  for a completed connect or an ACKed FIN never reach Python. Writability is watched only
  once a send had to wait; meanwhile the other side is not read (backpressure).
* ``recv_into`` one shared 256 KiB buffer and ``send`` from it; only what the kernel did
  not take is copied. The client socket stays in blocking mode (no ``ioctl``; every call
  passes ``MSG_DONTWAIT``) and inherits ``TCP_NODELAY`` from the listener.
* The connect is optimistic: the client's first bytes are sent as they arrive, and the send
  going through proves the connect; if it must wait, the ``EPOLLOUT`` edge says connected,
  ``EPOLLERR`` failed (then the next gateway is tried before the client sees anything).
  At the shared sweep's deadline, a connect on which neither side has said anything is
  asked whether it completed (``getpeername``).
* A FIN is passed on with ``shutdown(SHUT_WR)`` only while the other side may still send;
  once both sides have sent theirs (and all is flushed) both sockets are closed. A reset is
  passed on as a reset (``SO_LINGER`` 0).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import select
import socket
import struct
from typing import TYPE_CHECKING

from failover.proxy import _proxyproto

if TYPE_CHECKING:
    from failover.proxy._reactor import Reactor
    from failover.proxy._upstreams import Upstream

BUFFER = 256 * 1024  # bytes read at a time (what uvloop reads too)
_PENDING_LIMIT = 256 * 1024  # client bytes held while the upstream connect is in progress
_DONTWAIT = socket.MSG_DONTWAIT
_OUT, _ERR = select.EPOLLOUT, select.EPOLLERR
_END = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR  # the peer sent FIN, or the socket failed
_READABLE = select.EPOLLIN | _END
WATCH = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET  # how sockets are registered
_WATCH_OUT = WATCH | _OUT  # once a send had to wait
_C, _U = 1, 2  # bits of Relay._outs: the client / upstream socket is watched for EPOLLOUT
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_GONE = (errno.EPIPE, errno.ECONNRESET)  # a send error after the connect completed, not instead of it


class Relay:
    """The client socket, the upstream socket (one per connect attempt) and their state.

    ``_c_read``/``_u_read``: 0 when the side has nothing to read, 1 when an edge said data
    (read until a short read), 2 when the peer also sent FIN or failed (read until EOF).
    ``_to_c``/``_to_u``: bytes the kernel did not take yet (the other side is not read).
    """

    __slots__ = ("_c_eof", "_c_read", "_cfd", "_closing", "_connected", "_cs", "_done", "_held", "_held_size", "_m",
                 "_n", "_outs", "_p", "_quiet", "_seen", "_to_c", "_to_u", "_tried", "_u_eof", "_u_read", "_ufd",
                 "_up", "_us")

    def __init__(self, proxy: Reactor, cs: _socket.socket, cfd: int, peer: object) -> None:
        self._p = proxy
        self._cs = cs
        self._cfd = cfd
        self._us: _socket.socket | None = None
        self._ufd = -1
        self._up: Upstream | None = None
        self._connected = self._closing = self._done = self._c_eof = self._u_eof = False
        self._c_read = self._u_read = self._outs = self._n = self._m = self._held_size = 0  # _n, _m: bytes relayed
        self._to_c: memoryview | None = None
        self._to_u: memoryview | None = None
        self._held: list[bytes] = []  # until the connect completes: a PROXY header, the client's bytes
        if proxy.proxy_protocol is not None:
            self._held.append(_proxyproto.header(proxy.proxy_protocol, peer, cs.getsockname()))
        self._tried: list[Upstream] = []  # gateways whose connect failed
        self._seen = -1  # for the idle sweep
        self._quiet = 0.0

    # -- client -> upstream ------------------------------------------------------------------

    def on_client(self, events: int) -> None:
        """An edge on the client socket; ``events`` 0: go on reading after a pause."""
        if events & _OUT and self._to_c is not None:
            self._flush_to_client()
        if events & _READABLE:
            self._c_read = 2 if events & _END else 1
        view = self._p.view
        cs = self._cs
        while self._c_read and self._to_u is None and not self._c_eof and not self._closing:
            if not self._connected and self._held_size > _PENDING_LIMIT:
                return  # resumed once connected
            try:
                n = cs.recv_into(view, 0, _DONTWAIT)
            except BlockingIOError:
                self._c_read = 0
                return
            except OSError:
                self.close(abort=True)  # the client reset: pass it on
                return
            if n == 0:
                self._c_eof = True
                if not self._connected:
                    self._want_out(_U)  # to pass the EOF on once connected
                elif self._to_u is None:
                    self._eof_to_upstream()
                return
            self._n += n
            if n < BUFFER and self._c_read == 1:
                self._c_read = 0  # edge-triggered: a short read means the socket is drained
            if not self._connected:
                self._held.append(bytes(view[:n]))
                self._held_size += n
                self._try_held()
                if self._done:
                    return
                continue
            us = self._us
            assert us is not None
            try:
                sent = us.send(view[:n], _DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close(abort=True)  # the gateway reset: pass it on
                return
            if sent < n:
                self._to_u = memoryview(bytes(view[sent:n]))
                self._want_out(_U)
                return

    def _flush_to_upstream(self) -> None:
        data = self._to_u
        us = self._us
        assert data is not None and us is not None
        try:
            sent = us.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close(abort=True)
            return
        if sent < len(data):
            self._to_u = data[sent:]
            self._want_out(_U)
            return
        self._to_u = None
        if self._closing:
            self._close_if_flushed()
        elif self._c_eof:
            self._eof_to_upstream()
        else:
            self.on_client(0)  # reading the client was paused on this

    def _eof_to_upstream(self) -> None:
        """The client sent FIN and everything before it reached the gateway."""
        if self._u_eof and self._to_c is None:
            self._close_both()  # both ways done: close, no second shutdown
            return
        us = self._us
        assert us is not None
        try:
            us.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(abort=True)

    # -- upstream -> client ------------------------------------------------------------------

    def on_upstream(self, events: int) -> None:
        """An edge on the upstream socket; ``events`` 0: go on reading after a pause."""
        if not self._connected:
            if events & _ERR:
                us = self._us
                assert us is not None
                err = us.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err and err not in _GONE:
                    self._connect_failed(OSError(err, os.strerror(err)))
                    return
            self._connect_done()  # writable, or the gateway spoke first
            if self._done:
                return
        if events & _OUT and self._to_u is not None:
            self._flush_to_upstream()
        if events & _READABLE:
            self._u_read = 2 if events & _END else 1
        view = self._p.view
        us = self._us
        cs = self._cs
        if us is None:
            return
        while self._u_read and self._to_c is None and not self._u_eof and not self._closing:
            try:
                n = us.recv_into(view, 0, _DONTWAIT)
            except BlockingIOError:
                self._u_read = 0
                return
            except OSError:
                self.close(abort=True)  # the gateway reset: pass it on
                return
            if n == 0:
                self._u_eof = True
                if self._to_c is None:
                    self._eof_to_client()
                return
            self._m += n
            if n < BUFFER and self._u_read == 1:
                self._u_read = 0
            try:
                sent = cs.send(view[:n], _DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close(abort=True)  # the client reset: pass it on
                return
            if sent < n:
                self._to_c = memoryview(bytes(view[sent:n]))
                self._want_out(_C)
                return

    def _flush_to_client(self) -> None:
        data = self._to_c
        assert data is not None
        try:
            sent = self._cs.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close(abort=True)
            return
        if sent < len(data):
            self._to_c = data[sent:]
            self._want_out(_C)
            return
        self._to_c = None
        if self._closing:
            self._close_if_flushed()
        elif self._u_eof:
            self._eof_to_client()
        else:
            self.on_upstream(0)  # reading the gateway was paused on this

    def _eof_to_client(self) -> None:
        if self._c_eof and self._to_u is None:
            self._close_both()
            return
        try:
            self._cs.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(abort=True)

    def _want_out(self, side: int) -> None:  # have the epoll report writability from now on
        if not self._outs & side:
            self._outs |= side
            epoll = self._p.epoll
            assert epoll is not None
            epoll.modify(self._cfd if side == _C else self._ufd, _WATCH_OUT)

    # -- the upstream connect ----------------------------------------------------------------

    def connect(self, up: Upstream) -> None:
        p = self._p
        self._up = up
        up.active += 1
        try:
            us = _socket.socket(socket.AF_INET6 if ":" in up.host else socket.AF_INET,
                                socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError as exc:  # e.g. out of descriptors: handled as a failed connect
            self._connect_failed(exc)
            return
        us.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = us.connect_ex((up.host, up.port))
        if err and err != errno.EINPROGRESS:
            us.close()
            self._connect_failed(OSError(err, os.strerror(err)))
            return
        self._us = us
        self._ufd = ufd = us.fileno()
        self._outs &= ~_U
        p.handlers[ufd] = self.on_upstream
        p.epoll.register(ufd, WATCH)  # type: ignore[union-attr]
        p.connecting[self] = p.loop.time() + p.connect_timeout
        if p.connect_sweeper is None:
            p.start_connect_sweep()
        if self._held:  # a PROXY header, or bytes held during an earlier attempt
            self._try_held()
        elif self._c_eof:
            self._want_out(_U)  # to pass the EOF on once connected

    def _try_held(self) -> None:
        """Send the held bytes now: if the kernel takes them, the connect has completed."""
        us = self._us
        assert us is not None
        held = self._held
        data = held[0] if len(held) == 1 else b"".join(held)
        try:
            sent = us.send(data, _DONTWAIT)
        except BlockingIOError:
            self._want_out(_U)  # still connecting: the EPOLLOUT edge will say when
            return
        except OSError as exc:
            if exc.errno not in _GONE:
                self._connect_failed(exc)
                return
            sent = 0  # it connected and went away: the upstream side sees the reset
        held.clear()
        if sent < len(data):
            self._to_u = memoryview(data)[sent:]
            self._want_out(_U)
        self._connect_done()

    def _connect_done(self) -> None:
        """The upstream connect completed (a send went through, or an edge on the socket)."""
        self._connected = True
        p = self._p
        p.connecting.pop(self, None)
        up = self._up
        assert up is not None
        up.connections += 1
        paused = self._held_size > _PENDING_LIMIT
        self._held_size = 0
        held = self._held
        if held:  # an edge said connected while bytes were held
            self._to_u = memoryview(held[0] if len(held) == 1 else b"".join(held))
            held.clear()
            self._flush_to_upstream()
        elif self._to_u is None:
            if self._c_eof:
                self._eof_to_upstream()
            elif paused:
                self.on_client(0)  # reading the client was paused while connecting

    def connect_timed_out(self) -> None:
        us = self._us
        assert us is not None
        err = us.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err and _handshake_done(us):
            self._connect_done()  # connected; neither side has said anything yet
            return
        self._connect_failed(OSError(err, os.strerror(err)) if err else TimeoutError("connect timed out"))

    def _connect_failed(self, exc: BaseException) -> None:
        p = self._p
        p.connecting.pop(self, None)
        if self._us is not None:
            p.drop(self._ufd, self._us)
            self._us, self._ufd = None, -1
        up = self._up
        assert up is not None
        up.active -= 1
        self._up = None
        nxt = p.balancer.next_after_failure(up, exc, self._tried)
        if nxt is None:
            p.rejected_no_upstream += 1
            self.close()
        else:
            self.connect(nxt)

    # -- end ---------------------------------------------------------------------------------

    def close(self, abort: bool = False) -> None:
        """Close both sides: gracefully (buffered bytes are flushed first), or at once with RST."""
        if self._done:
            return
        self._closing = True
        if abort:
            for sock in (self._cs, self._us):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            self._close_both()
        else:
            self._close_if_flushed()  # or once the EPOLLOUT edges have let the rest out

    def _close_if_flushed(self) -> None:
        if self._to_c is None and self._to_u is None:
            self._close_both()

    def _close_both(self) -> None:
        self._done = self._closing = True
        self._to_c = self._to_u = None
        self._p.finished(self)


def _handshake_done(sock: _socket.socket) -> bool:
    try:
        sock.getpeername()  # ENOTCONN while the handshake is still going on
    except OSError:
        return False
    return True
