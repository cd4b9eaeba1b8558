"""The embedded proxy against real loopback servers: relay, half-close, retry, ejection, drain,
limits, PROXY headers, workers.

Each test runs on uvloop (what the daemon uses) and on the default asyncio loop. Waits are on
conditions with deadlines; nothing here asserts on speed (bench/proxy.py measures that).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from prometheus_client import CollectorRegistry, generate_latest

from failover.proxy import Proxy, Route, Settings
from failover.proxy._proxyproto import parse_v2

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]
LINGER_0 = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
DEADLINE = 10.0  # generous: the machine is shared; no test waits this long when all is well


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    def runner(coro: Coroutine[Any, Any, T]) -> T:
        if request.param == "uvloop":
            return uvloop.run(asyncio.wait_for(coro, 60))
        return asyncio.run(asyncio.wait_for(coro, 60))

    return runner


async def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Server:
    """A loopback TCP server the proxy relays to. ``mode`` picks its behaviour:

    echo      echo everything; at EOF, half-close back
    name      say its name on a line, then echo
    digest    read to EOF, then answer "<length> <sha256>"
    greet     send "hello" and half-close, then read to EOF and keep what came (``late``)
    reset     read 4 bytes, then reset the connection (SO_LINGER 0)
    record    read to EOF and keep how the connection ended (``late``: b"eof" or b"reset")
    proxy_v1 / proxy_v2   parse the PROXY header, answer "src dst" on a line, then echo
    """

    def __init__(self, name: str, mode: str = "echo", host: str = "127.0.0.1", port: int = 0) -> None:
        self.name, self.mode, self.host = name, mode, host
        self.port = port
        self.accepted = 0
        self.late: list[bytes] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> Server:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            if self.mode == "digest":
                data = await reader.read()
                writer.write(f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode())
                await writer.drain()
                return
            if self.mode == "reset":
                await reader.readexactly(4)
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                writer.transport.abort()
                return
            if self.mode == "record":
                try:
                    await reader.read()
                    self.late.append(b"eof")
                except ConnectionResetError:
                    self.late.append(b"reset")
                return
            if self.mode == "greet":
                writer.write(b"hello")
                await writer.drain()
                writer.write_eof()
                self.late.append(await reader.read())
                return
            if self.mode == "proxy_v2":
                head = await reader.readexactly(16)
                head += await reader.readexactly(int.from_bytes(head[14:16], "big"))
                src, dst, _ = parse_v2(head)
                assert src is not None and dst is not None
                writer.write(f"{src[0]}:{src[1]} {dst[0]}:{dst[1]}\n".encode())
            if self.mode == "proxy_v1":
                parts = (await reader.readuntil(b"\r\n")).decode().split()
                writer.write(f"{parts[2]}:{parts[4]} {parts[3]}:{parts[5]}\n".encode())
            if self.mode == "name":
                writer.write(self.name.encode() + b"\n")
            while chunk := await reader.read(1 << 16):
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def roundtrip(address: tuple[str, int], payload: bytes = b"ping", greeting: bool = False) -> bytes:
    """Connect, (read a greeting line,) send ``payload``, read it back; return the greeting."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        line = await asyncio.wait_for(reader.readline(), DEADLINE) if greeting else b""
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), DEADLINE) == payload
        return line.strip()
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True when the peer closed (EOF or reset) before DEADLINE."""
    try:
        return await asyncio.wait_for(reader.read(1), DEADLINE) == b""
    except ConnectionError:
        return True


def settings(**kw: Any) -> Settings:
    return Settings.from_listen("127.0.0.1:0", upstream_port=kw.pop("upstream_port", 1), **kw)


async def started(route: Route | None = None, **kw: Any) -> Proxy:
    registry = kw.pop("registry", None)
    proxy = Proxy(settings(**kw), registry=registry)
    if route is not None:
        proxy.set_route(route)
    await proxy.start()
    return proxy


# -- relay -----------------------------------------------------------------------------------


def test_large_stream_comes_back_intact(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a").start()
        proxy = await started(Route.single("r1", up.address))
        payload = os.urandom(8 * 1024 * 1024)
        reader, writer = await asyncio.open_connection(*proxy.address)

        async def send() -> None:
            for i in range(0, len(payload), 1 << 20):
                writer.write(payload[i : i + (1 << 20)])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.ensure_future(send())
        received = await asyncio.wait_for(reader.read(), DEADLINE)  # to EOF: the echo half-closes
        await sender
        writer.close()
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        await wait_until(lambda: proxy.stats().connections_active == 0, "the connection to end")
        stats = proxy.stats()
        assert stats.bytes_from_clients == stats.bytes_to_clients == len(payload)
        assert stats.upstreams[f"r1/{up.address}"].connections == 1
        await proxy.stop()
        await up.stop()

    run(main())


def test_half_close_from_the_client(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", mode="digest").start()
        proxy = await started(Route.single("r1", up.address))
        payload = os.urandom(3 * 1024 * 1024 + 7)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(payload)
        writer.write_eof()  # the gateway answers only after it sees our EOF
        answer = await asyncio.wait_for(reader.read(), DEADLINE)
        assert answer.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
        writer.close()
        await proxy.stop()
        await up.stop()

    run(main())


def test_half_close_from_the_gateway(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", mode="greet").start()
        proxy = await started(Route.single("r1", up.address))
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b"hello"  # then EOF
        writer.write(b"after your EOF")  # our direction is still open
        writer.write_eof()
        await wait_until(lambda: up.late == [b"after your EOF"], "the gateway to get the late bytes")
        assert await closed_by_peer(reader)
        writer.close()
        await proxy.stop()
        await up.stop()

    run(main())


def test_a_reset_from_the_gateway_reaches_the_client_as_a_reset(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", mode="reset").start()
        proxy = await started(Route.single("r1", up.address))
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), DEADLINE)
        writer.close()
        await wait_until(lambda: proxy.stats().connections_active == 0, "the connection to end")
        await proxy.stop()
        await up.stop()

    run(main())


def test_a_reset_from_the_client_reaches_the_gateway_as_a_reset(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", mode="record").start()
        proxy = await started(Route.single("r1", up.address))
        client = socket.create_connection(proxy.address, timeout=DEADLINE)
        client.sendall(b"x")
        await wait_until(lambda: proxy.stats().bytes_from_clients == 1 and up.accepted == 1, "the relay")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        client.close()
        await wait_until(lambda: up.late == [b"reset"], "the gateway to see a reset")
        await proxy.stop()
        await up.stop()

    run(main())


def test_bytes_and_eof_sent_during_a_slow_connect_are_delivered_once_it_completes(run: Runner[None]) -> None:
    async def main() -> None:
        # A gateway whose accept queue is full drops the proxy's SYN; once the queue has room the
        # SYN is sent again (about a second later) and the connect completes: the EPOLLOUT path.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        filler = socket.create_connection(hole.getsockname(), timeout=DEADLINE)  # fills the queue
        address = f"127.0.0.1:{hole.getsockname()[1]}"
        proxy = await started(Route.single("r1", address), connect_timeout=8.0)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"hello")
        writer.write_eof()
        await wait_until(lambda: proxy.stats().bytes_from_clients == 5, "the proxy to hold the bytes")
        assert proxy.stats().upstreams[f"r1/{address}"].connections == 0  # still connecting
        hole.accept()[0].close()  # the filler: now there is room
        hole.settimeout(DEADLINE)
        gateway, _ = await asyncio.to_thread(hole.accept)
        gateway.settimeout(DEADLINE)
        received = b""
        while chunk := await asyncio.to_thread(gateway.recv, 100):
            received += chunk
        assert received == b"hello"  # then EOF: the client's FIN came after the connect
        gateway.sendall(b"world")
        gateway.close()
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b"world"
        stats = proxy.stats().upstreams[f"r1/{address}"]
        assert (stats.connections, stats.connect_failures) == (1, 0)
        writer.close()
        await proxy.stop()
        for s in (filler, hole):
            s.close()

    run(main())


def test_upstream_port_applies_to_bare_addresses(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", host="127.0.0.2").start()
        proxy = await started(Route.single("r1", "127.0.0.2"), upstream_port=up.port)
        await roundtrip(proxy.address, b"x" * 100)
        assert proxy.stats().upstreams["r1/127.0.0.2"].connections == 1
        await proxy.stop()
        await up.stop()

    run(main())


# -- upstream choice, retries, ejection -------------------------------------------------------


def test_refused_connect_retries_the_next_address_and_ejects(run: Runner[None]) -> None:
    async def main() -> None:
        live = await Server("live").start()
        dead = f"127.0.0.1:{free_port()}"
        proxy = await started(Route.single("r1", dead, live.address), ejection_time=30.0)
        for _ in range(6):
            await roundtrip(proxy.address)
        stats = proxy.stats().upstreams
        assert stats[f"r1/{dead}"].connect_failures == 1  # then ejected: never tried again
        assert stats[f"r1/{dead}"].ejected
        assert stats[f"r1/{live.address}"].connections == 6
        assert stats[f"r1/{live.address}"].retries == 1
        await proxy.stop()
        await live.stop()

    run(main())


def test_next_tier_when_the_whole_first_tier_fails(run: Runner[None]) -> None:
    async def main() -> None:
        backup = await Server("backup", mode="name").start()
        dead1, dead2 = f"127.0.0.1:{free_port()}", f"127.0.0.3:{free_port('127.0.0.3')}"
        proxy = await started(Route((("primary", (dead1, dead2)), ("secondary", (backup.address,)))))
        assert await roundtrip(proxy.address, greeting=True) == b"backup"
        stats = proxy.stats()
        assert stats.upstreams[f"primary/{dead1}"].connect_failures == 1
        assert stats.upstreams[f"primary/{dead2}"].connect_failures == 1
        assert stats.upstreams[f"secondary/{backup.address}"].retries == 1
        assert stats.rejected_no_upstream == 0
        await proxy.stop()
        await backup.stop()

    run(main())


def test_ejection_ends_after_ejection_time(run: Runner[None]) -> None:
    async def main() -> None:
        live = await Server("live").start()
        dead = f"127.0.0.1:{free_port()}"
        proxy = await started(Route.single("r1", dead, live.address), ejection_time=0.2)
        await roundtrip(proxy.address)
        key = f"r1/{dead}"
        assert proxy.stats().upstreams[key].ejected
        await wait_until(lambda: not proxy.stats().upstreams[key].ejected, "the ejection to end")
        for _ in range(4):  # round-robin comes back to the dead address within two connections
            await roundtrip(proxy.address)
            if proxy.stats().upstreams[key].connect_failures == 2:
                break
        assert proxy.stats().upstreams[key].connect_failures == 2
        await proxy.stop()
        await live.stop()

    run(main())


def test_a_tier_promoted_by_the_coordinator_is_no_longer_ejected(run: Runner[None]) -> None:
    async def main() -> None:
        backup = await Server("backup", mode="name").start()
        port = free_port("127.0.0.4")
        dead = f"127.0.0.4:{port}"
        proxy = await started(Route((("east", (dead,)), ("west", (backup.address,)))), ejection_time=60.0)
        assert await roundtrip(proxy.address, greeting=True) == b"backup"
        assert proxy.stats().upstreams[f"east/{dead}"].ejected
        proxy.set_route(Route((("west", (backup.address,)), ("east", (dead,)))))  # failover
        assert proxy.stats().upstreams[f"east/{dead}"].ejected  # still ejected while not first
        revived = await Server("revived", mode="name", host="127.0.0.4", port=port).start()
        proxy.set_route(Route((("east", (dead,)), ("west", (backup.address,)))))  # failback on the probes' word
        assert not proxy.stats().upstreams[f"east/{dead}"].ejected
        assert await roundtrip(proxy.address, greeting=True) == b"revived"
        await proxy.stop()
        await backup.stop()
        await revived.stop()

    run(main())


def test_connect_timeout_moves_on(run: Runner[None]) -> None:
    async def main() -> None:
        live = await Server("live", mode="name").start()
        # A listener whose accept queue is full drops SYNs: connects to it hang.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        held = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(hole.getsockname())
            held.append(s)
        blackhole = f"127.0.0.1:{hole.getsockname()[1]}"
        proxy = await started(Route((("a", (blackhole,)), ("b", (live.address,)))), connect_timeout=0.2)
        assert await roundtrip(proxy.address, greeting=True) == b"live"
        assert proxy.stats().upstreams[f"a/{blackhole}"].connect_failures == 1
        await proxy.stop()
        await live.stop()
        for s in [*held, hole]:
            s.close()

    run(main())


def test_a_connect_on_which_nobody_speaks_is_not_timed_out(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a").start()  # echo: speaks only when spoken to
        proxy = await started(Route.single("r1", up.address), connect_timeout=0.1)
        reader, writer = await asyncio.open_connection(*proxy.address)
        key = f"r1/{up.address}"
        # At the deadline the proxy finds the connect completed (nothing told it before).
        await wait_until(lambda: proxy.stats().upstreams[key].connections == 1, "the connect to be counted")
        assert proxy.stats().upstreams[key].connect_failures == 0
        writer.write(b"late")
        assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"late"
        assert up.accepted == 1
        writer.close()
        await proxy.stop()
        await up.stop()

    run(main())


def test_client_is_closed_when_no_upstream_answers(run: Runner[None]) -> None:
    async def main() -> None:
        proxy = await started(Route.single("r1", f"127.0.0.1:{free_port()}"))
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await closed_by_peer(reader)
        writer.close()
        assert proxy.stats().rejected_no_upstream == 1
        await proxy.stop()

    run(main())


def test_without_a_route_connections_are_closed(run: Runner[None]) -> None:
    async def main() -> None:
        proxy = await started()
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert await closed_by_peer(reader)
        writer.close()
        assert proxy.stats().rejected_no_upstream == 1
        await proxy.stop()

    run(main())


def test_round_robin_spreads_connections(run: Runner[None]) -> None:
    async def main() -> None:
        a, b = await Server("a").start(), await Server("b").start()
        proxy = await started(Route.single("r1", a.address, b.address))
        for _ in range(6):
            await roundtrip(proxy.address)
        assert (a.accepted, b.accepted) == (3, 3)
        await proxy.stop()
        await a.stop()
        await b.stop()

    run(main())


def test_least_connections_prefers_the_idle_gateway(run: Runner[None]) -> None:
    async def main() -> None:
        a, b = await Server("a", mode="name").start(), await Server("b", mode="name").start()
        proxy = await started(Route.single("r1", a.address, b.address), balance="least_connections")
        held: dict[bytes, asyncio.StreamWriter] = {}
        for _ in range(2):
            reader, writer = await asyncio.open_connection(*proxy.address)
            held[(await asyncio.wait_for(reader.readline(), DEADLINE)).strip()] = writer
        assert set(held) == {b"a", b"b"}  # the second went to the one without a connection
        held.pop(b"a").close()
        await wait_until(lambda: proxy.stats().upstreams[f"r1/{a.address}"].active == 0, "a to be idle")
        for _ in range(3):  # each time: a has 0 or 1, b has 1 -> a (ties go round-robin)
            reader, writer = await asyncio.open_connection(*proxy.address)
            assert (await asyncio.wait_for(reader.readline(), DEADLINE)).strip() == b"a"
            writer.close()
            await wait_until(lambda: proxy.stats().upstreams[f"r1/{a.address}"].active == 0, "a to be idle")
        held[b"b"].close()
        await proxy.stop()
        await a.stop()
        await b.stop()

    run(main())


# -- route changes --------------------------------------------------------------------------


def test_route_change_new_connections_move_at_once_old_ones_drain(run: Runner[None]) -> None:
    async def main() -> None:
        a, b = await Server("a", mode="name").start(), await Server("b", mode="name").start()
        proxy = await started(Route.single("east", a.address), drain_time=0.3)
        old_reader, old_writer = await asyncio.open_connection(*proxy.address)
        assert await asyncio.wait_for(old_reader.readline(), DEADLINE) == b"a\n"

        proxy.set_route(Route.single("west", b.address))
        assert await roundtrip(proxy.address, greeting=True) == b"b"  # new: straight to b
        old_writer.write(b"still here")  # old: keeps working during the drain
        assert await asyncio.wait_for(old_reader.readexactly(10), DEADLINE) == b"still here"
        changes = proxy.stats().route_changes
        proxy.set_route(Route.single("west", b.address))  # the same route again: nothing happens
        assert proxy.stats().route_changes == changes

        assert await closed_by_peer(old_reader)  # then closed after drain_time
        assert proxy.stats().closed_drained == 1
        old_writer.close()
        assert await roundtrip(proxy.address, greeting=True) == b"b"
        await proxy.stop()
        await a.stop()
        await b.stop()

    run(main())


def test_connections_to_gateways_still_first_are_not_drained(run: Runner[None]) -> None:
    async def main() -> None:
        a, b = await Server("a", mode="name").start(), await Server("b", mode="name").start()
        proxy = await started(Route.single("east", a.address), drain_time=0.0)
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert await asyncio.wait_for(reader.readline(), DEADLINE) == b"a\n"
        proxy.set_route(Route((("east", (a.address, b.address)),)))  # a gateway added: a stays first
        proxy.set_route(Route((("east", (b.address,)), ("west", (a.address,)))))  # a demoted: drained
        assert await closed_by_peer(reader)
        writer.close()
        assert proxy.stats().closed_drained == 1
        await proxy.stop()
        await a.stop()
        await b.stop()

    run(main())


# -- limits ---------------------------------------------------------------------------------


def test_max_connections_closes_the_excess_at_once(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a", mode="name").start()
        proxy = await started(Route.single("r1", up.address), max_connections=2)
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection(*proxy.address)
            assert await asyncio.wait_for(reader.readline(), DEADLINE) == b"a\n"
            held.append((reader, writer))
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert await closed_by_peer(reader)
        writer.close()
        assert proxy.stats().rejected_max_connections == 1
        assert up.accepted == 2  # the gateway never saw the third
        held.pop()[1].close()
        await wait_until(lambda: proxy.stats().connections_active == 1, "a slot to free up")
        assert await roundtrip(proxy.address, greeting=True) == b"a"
        held[0][1].close()
        await proxy.stop()
        await up.stop()

    run(main())


def test_idle_connections_are_closed(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a").start()
        proxy = await started(Route.single("r1", up.address), idle_timeout=0.3)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), DEADLINE) == b"hi"
        assert await closed_by_peer(reader)
        writer.close()
        assert proxy.stats().closed_idle == 1
        await proxy.stop()
        await up.stop()

    run(main())


# -- PROXY protocol -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_header_names_the_client(run: Runner[None], version: str) -> None:
    async def main() -> None:
        up = await Server("a", mode=f"proxy_{version}").start()
        proxy = await started(Route.single("r1", up.address), proxy_protocol=version)
        reader, writer = await asyncio.open_connection(*proxy.address)
        client = writer.get_extra_info("sockname")
        line = await asyncio.wait_for(reader.readline(), DEADLINE)
        assert line.decode().split() == [f"{client[0]}:{client[1]}", f"{proxy.address[0]}:{proxy.address[1]}"]
        writer.write(b"payload after the header")
        assert await asyncio.wait_for(reader.readexactly(24), DEADLINE) == b"payload after the header"
        writer.close()
        await proxy.stop()
        await up.stop()

    run(main())


# -- lifecycle and metrics ------------------------------------------------------------------


def test_stop_closes_connections_gracefully_and_unregisters_metrics(run: Runner[None]) -> None:
    async def main() -> None:
        up = await Server("a").start()
        registry = CollectorRegistry()
        proxy = await started(Route.single("r1", up.address), registry=registry)
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), DEADLINE) == b"hi"
        text = generate_latest(registry).decode()
        assert "failover_proxy_connections_active" in text and "} 1.0" in text
        await proxy.stop()
        assert await closed_by_peer(reader)
        writer.close()
        assert "failover_proxy" not in generate_latest(registry).decode()
        with pytest.raises(OSError):
            await asyncio.open_connection(*proxy.address)
        await up.stop()

    run(main())


# -- worker processes -----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return True


def test_workers_share_the_port_and_follow_the_route() -> None:
    async def main() -> None:
        a, b = await Server("a", mode="name").start(), await Server("b", mode="name").start()
        proxy = Proxy(settings(workers=2), registry=None)
        proxy.set_route(Route.single("east", a.address))
        await proxy.start()
        pids = proxy.worker_pids
        assert len(pids) == 2 and os.getpid() not in pids
        for _ in range(10):
            assert await roundtrip(proxy.address, greeting=True) == b"a"
        await wait_until(lambda: proxy.stats().connections_total == 10, "the workers to report")
        proxy.set_route(Route.single("west", b.address))
        # Each worker gets the route over its pipe: soon every new connection lands on b.
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            greetings = [await roundtrip(proxy.address, greeting=True) for _ in range(10)]
            if greetings == [b"b"] * 10:
                break
            await asyncio.sleep(0.05)
        assert greetings == [b"b"] * 10
        await proxy.stop()
        await wait_until(lambda: not any(_alive(p) for p in pids), "the workers to exit")
        await a.stop()
        await b.stop()

    uvloop.run(main())


def test_a_crashed_worker_is_started_again() -> None:
    async def main() -> None:
        a = await Server("a", mode="name").start()
        proxy = Proxy(settings(workers=2), registry=None)
        proxy.set_route(Route.single("east", a.address))
        await proxy.start()
        victim, survivor = proxy.worker_pids
        os.kill(victim, signal.SIGKILL)
        await wait_until(lambda: len(proxy.worker_pids) == 2 and victim not in proxy.worker_pids,
                         "the worker to be replaced")
        assert survivor in proxy.worker_pids
        for _ in range(10):  # the new worker got the route before it listened
            assert await roundtrip(proxy.address, greeting=True) == b"a"
        pids = proxy.worker_pids
        await proxy.stop()
        await wait_until(lambda: not any(_alive(p) for p in pids), "the workers to exit")
        await a.stop()

    uvloop.run(main())


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def test_standalone_entry_workers_die_with_the_parent(tmp_path: Path) -> None:
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(8)
    up.settimeout(DEADLINE)
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "failover.proxy", "--listen", f"127.0.0.1:{port}",
         "--upstream", f"127.0.0.1:{up.getsockname()[1]}", "--workers", "2"],
        stdout=subprocess.PIPE, cwd=root,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().decode().strip() == f"listening 127.0.0.1:{port}"
        workers = _children(proc.pid)
        assert len(workers) == 2
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as c:
            c.sendall(b"through a worker")
            conn, _ = up.accept()
            conn.settimeout(DEADLINE)
            assert conn.recv(100) == b"through a worker"
            conn.close()
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the workers must notice alone
        proc.wait(DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(_alive(p) for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
        up.close()


def test_set_route_from_another_thread(run: Runner[None]) -> None:
    async def main() -> None:
        a = await Server("a", mode="name").start()
        proxy = await started()
        await asyncio.to_thread(proxy.set_route, Route.single("r1", a.address))
        await wait_until(lambda: proxy.route == Route.single("r1", a.address), "the route to arrive")
        assert await roundtrip(proxy.address, greeting=True) == b"a"
        await proxy.stop()
        await a.stop()

    run(main())
