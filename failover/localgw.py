"""Small real HTTP gateways on loopback, for the demo, the tests and the benchmarks.

Each answers ``GET <any path>`` with ``200 ok <name>``; it can be stopped (connection
refused), made slow, made to hang (accept and never answer) or to answer garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["ok", "error", "hang", "garbage", "slow"]


@dataclass
class LocalGateway:
    name: str
    host: str
    port: int
    mode: Mode = "ok"
    delay: float = 0.5  # for "slow"
    requests: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _clients: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)

    async def stop(self, timeout: float = 2.0) -> None:
        """Refuse new connections, drop the open ones (keep-alive peers too, as a dead gateway
        would) and end their handlers, "hang" ones included; never waits past ``timeout``."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._clients):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
            for handler in list(self._handlers):
                handler.cancel()
            # From Python 3.12 on this waits for every connection to end; never past the deadline.
            closed = asyncio.ensure_future(server.wait_closed())
            if not (await asyncio.wait({closed}, timeout=timeout))[0]:
                closed.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self._clients.add(writer)
        try:
            while self._server is not None:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                if self.mode == "hang":
                    await asyncio.sleep(3600)
                if self.mode == "garbage":
                    writer.write(b"\x16\x03garbage that is not HTTP\r\n\r\n")
                    await writer.drain()
                    break
                if self.mode == "slow":
                    await asyncio.sleep(self.delay)
                status = b"503 Service Unavailable" if self.mode == "error" else b"200 OK"
                body = f"ok {self.name}\n".encode()
                close = b"connection: close" in head.lower()
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                    + str(len(body)).encode()
                    + (b"\r\nConnection: close" if close else b"")
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(writer)
            if handler is not None:
                self._handlers.discard(handler)
            writer.close()


class ThreadedGateways:
    """Gateways served by an event loop in a background thread, for synchronous tests."""

    def __init__(self, gateways: list[LocalGateway]) -> None:
        self.gateways = {g.name: g for g in gateways}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="gateways")
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self, *names: str) -> None:
        for name in names or tuple(self.gateways):
            self._call(self.gateways[name].start())

    def stop(self, *names: str) -> None:
        for name in names or tuple(self.gateways):
            self._call(self.gateways[name].stop())

    def set_mode(self, name: str, mode: Mode) -> None:
        self.gateways[name].mode = mode

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # a loop still running cannot be closed: leave it to the daemon thread
            self.loop.close()
