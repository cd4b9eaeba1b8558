"""The plain-HTTP probe against real servers on loopback, on uvloop (the daemon's loop) and asyncio:
status, body (Content-Length, chunked, until close, in pieces), timeouts, refusals, resets,
garbage and odd answers, one new connection per probe, and a caller's cancel passed on."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from failover.localgw import LocalGateway, ThreadedGateways
from failover.policy import HttpCheck
from failover.probes import build_probe
from failover.probes.base import Target
from failover.probes.http1 import BODY_LIMIT, PlainHttpProbe
from tests.support.bind import free_port

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ADDRESS = "127.0.0.51"


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    def runner(coro: Coroutine[Any, Any, T]) -> T:
        if request.param == "uvloop":
            return uvloop.run(asyncio.wait_for(coro, 60))
        return asyncio.run(asyncio.wait_for(coro, 60))

    return runner


def probe(port: int, domain: str = "api.example.com", **check: Any) -> PlainHttpProbe:
    fields: dict[str, Any] = {"kind": "http", "port": port, "path": "/ready", "interval": "1s", "timeout": "1s"}
    made = build_probe(Target(domain, "east", "gw", ADDRESS), HttpCheck(**(fields | check)))
    assert isinstance(made, PlainHttpProbe)  # plain http takes the lean path
    return made


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    port = free_port()
    return await asyncio.start_server(handler, ADDRESS, port), port


def answer(*parts: bytes, pause: float = 0.0, close: bool = True) -> Handler:
    """A server writing ``parts`` (``pause`` seconds apart) after reading the request head."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for part in parts:
                writer.write(part)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            if not close:
                await asyncio.sleep(3600)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


def test_status_timeout_refused_and_garbage_from_a_local_gateway(run: Runner[None]) -> None:
    async def main() -> None:
        port = free_port()
        gw = LocalGateway("gw", ADDRESS, port, delay=0.1)
        await gw.start()
        check = probe(port, timeout="300ms")
        try:
            ok = await check.run()
            assert ok.ok and ok.reason.startswith("http:") and "200 in" in ok.reason and ok.latency > 0
            gw.mode = "slow"  # answers after 0.1 s: inside the timeout
            slow = await check.run()
            assert slow.ok and slow.latency >= 0.1
            gw.mode = "error"
            bad = await check.run()
            assert not bad.ok and bad.reason == f"http:{port}/ready: 503 in {bad.latency * 1000:.0f}ms"
            gw.mode = "garbage"
            garbage = await check.run()
            assert not garbage.ok and "RemoteProtocolError (not an HTTP/1 status line" in garbage.reason
            gw.mode, gw.delay = "slow", 2.0  # answers after the timeout
            late = await check.run()
            assert not late.ok and late.reason == f"http:{port}/ready: no answer in 0.3s"
            # uvloop keeps its timers in whole milliseconds: the deadline may fire up to 1 ms early
            assert 0.3 - 0.002 <= late.latency < 1.5
            gw.mode = "hang"
            hung = await check.run()
            assert not hung.ok and "no answer in 0.3s" in hung.reason
            await gw.stop()
            refused = await check.run()
            assert not refused.ok and refused.reason == f"http:{port}/ready: connection refused"
            assert "\n" not in refused.reason + garbage.reason + hung.reason
        finally:
            await gw.stop()

    run(main())


def test_host_header_path_and_one_new_connection_per_probe(run: Runner[None]) -> None:
    async def main() -> None:
        heads: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        server, port = await serve(handle)
        try:
            check = probe(port, domain="shop.example.org", path="/health check?full=1")
            results = [await check.run() for _ in range(3)]
            other = await probe(port, domain="shop.example.org", host="internal.example.net").run()
        finally:
            server.close()
        assert all(r.ok for r in results) and other.ok
        assert len(heads) == 4  # one accepted connection each
        first = heads[0].decode().lower()
        assert first.startswith("get /health%20check?full=1 http/1.1\r\n")
        assert "\r\nhost: shop.example.org\r\n" in first and "\r\nconnection: close\r\n" in first
        assert b"host: internal.example.net" in heads[3].lower()

    run(main())


@pytest.mark.parametrize(
    ("parts", "ok"),
    [
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n", b"status: ", b"healthy"), True),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"8\r\nstatus: \r\n", b"3\r\nhea\r\n",
          b"4;x=1\r\nlthy\r\n0\r\n\r\n"), True),
        ((b"HTTP/1.0 200 OK\r\n\r\nstatus: ", b"healthy"), True),  # the body ends with the connection
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", b"status: sick"), False),
        ((b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy"), True),
    ],
    ids=["content-length-in-pieces", "chunked-across-chunks", "until-close", "lacks", "after-100-continue"],
)  # fmt: skip
def test_body_check_reads_every_framing(run: Runner[None], parts: tuple[bytes, ...], ok: bool) -> None:
    async def main() -> None:
        server, port = await serve(answer(*parts, pause=0.02))
        try:
            result = await probe(port, body_contains="healthy").run()
        finally:
            server.close()
        assert result.ok is ok, result.reason
        if not ok:
            assert result.reason == f"http:{port}/ready: body lacks 'healthy'"

    run(main())


@pytest.mark.parametrize(
    ("parts", "close", "reason"),
    [
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",), True, "closed the connection inside the answer"),
        ((b"",), True, "server closed the connection before an answer"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",), True, "bad Content-Length"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), True, "bad chunk size"),
        ((b"HTTP/1.1 2000 OK\r\n\r\n",), True, "not an HTTP/1 status line"),
        ((b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 20000,), False, "answer head over 16 KiB"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",), False, "no answer in 0.3s"),
    ],
    ids=["short-body", "closed-at-once", "bad-length", "bad-chunk", "bad-status", "huge-head", "body-stalls"],
)
def test_odd_answers_fail_with_a_one_line_reason(
    run: Runner[None], parts: tuple[bytes, ...], close: bool, reason: str
) -> None:
    async def main() -> None:
        server, port = await serve(answer(*parts, close=close))
        try:
            result = await probe(port, body_contains="x", timeout="300ms").run()
        finally:
            server.close()
        assert not result.ok and reason in result.reason and "\n" not in result.reason

    run(main())


def test_statuses_without_a_body_and_a_large_body(run: Runner[None]) -> None:
    async def main() -> None:
        server, port = await serve(answer(b"HTTP/1.1 204 No Content\r\n\r\n", close=False))
        big_body = b"x" * (BODY_LIMIT + 4096) + b"healthy"
        big, big_port = await serve(
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(big_body)).encode() + b"\r\n\r\n", big_body)
        )
        try:
            no_content = await probe(port, expect_status=[204], timeout="2s").run()
            large = await probe(big_port, timeout="5s").run()  # no body check: the status is enough
            beyond = await probe(big_port, body_contains="healthy", timeout="5s").run()
        finally:
            server.close()
            big.close()
        assert no_content.ok, no_content.reason  # 204 has no body: not waited for until the timeout
        assert large.ok, large.reason
        assert not beyond.ok and "body lacks 'healthy'" in beyond.reason  # past the limit: not read

    run(main())


def test_a_reset_connection_is_a_failure(run: Runner[None]) -> None:
    async def main() -> None:
        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()

        server, port = await serve(reset)
        try:
            result = await probe(port).run()
        finally:
            server.close()
        assert not result.ok and "reset" in result.reason, result.reason

    run(main())


def test_a_callers_cancel_is_passed_on_not_taken_for_a_timeout(run: Runner[None]) -> None:
    async def main() -> None:
        server, port = await serve(answer(close=False))  # accepts, never answers
        try:
            task = asyncio.ensure_future(probe(port, timeout="5s").run())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # and a timeout does not leave the caller's task marked as cancelled
            result = await probe(port, timeout="200ms").run()
            current = asyncio.current_task()
            assert not result.ok and current is not None and current.cancelling() == 0
        finally:
            server.close()

    run(main())


def test_an_answer_that_came_while_the_loop_was_busy_is_read_not_taken_for_a_timeout(run: Runner[None]) -> None:
    port = free_port()
    gateways = ThreadedGateways([LocalGateway("gw", ADDRESS, port, mode="slow", delay=0.05)])  # its own thread
    gateways.start()

    async def main() -> None:
        check = probe(port, timeout="200ms")
        task = asyncio.ensure_future(check.run())
        await asyncio.sleep(0.02)  # connected, request sent; the answer comes at about 50 ms
        time.sleep(0.4)  # the prober's loop is busy past the deadline; the answer waits in the socket
        result = await task
        assert result.ok, result.reason
        # a gateway that really does not answer in time still fails
        gateways.set_mode("gw", "hang")
        assert (await check.run()).reason.endswith("no answer in 0.2s")

    try:
        run(main())
    finally:
        gateways.close()
