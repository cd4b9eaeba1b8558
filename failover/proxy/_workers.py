"""Several relay processes on one port (``SO_REUSEPORT``), all following the parent's route.

The parent reserves the port (a bound, non-listening ``SO_REUSEPORT`` socket, so port 0
works and a taken port fails before any worker starts), starts ``workers`` processes of
``failover.proxy._worker`` that each listen on it, and pushes every route to them over
their stdin. The kernel spreads new connections over the listeners. Workers send their
counters every second; ``stats()`` sums them. A worker that dies is started again (after a
second); a worker whose parent dies sees end-of-file on stdin and stops.

Each worker applies passive ejection on its own: a gateway that refused one worker's
connect is still tried once by each of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

from failover.errors import ProxyError
from failover.proxy._route import Route
from failover.proxy._settings import Settings
from failover.proxy._stats import ProxyStats

log = logging.getLogger("failover.proxy")

START_TIMEOUT = 15.0
RESTART_DELAY = 1.0


class _Worker:
    """One worker process slot: the process, its pipes and its last counters."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.stats = ProxyStats()
        self.retired = ProxyStats()  # counters of earlier processes in this slot
        self.reader: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing() or proc.returncode is not None:
            return
        proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


class WorkerPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._workers = [_Worker(i) for i in range(settings.workers)]
        self._route = Route()
        self._child: Settings | None = None
        self._stopping = False
        self._address: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the proxy is not started")
        return self._address

    @property
    def route(self) -> Route:
        return self._route

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None and w.proc.returncode is None]

    async def start(self) -> None:
        s = self.settings
        family = socket.AF_INET6 if ":" in s.host else socket.AF_INET
        reserve = socket.socket(family, socket.SOCK_STREAM)
        try:
            reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            reserve.bind((s.host, s.port))
            port = int(reserve.getsockname()[1])
            self._child = s.replace(
                port=port,
                reuse_port=True,
                workers=1,
                max_connections=max(1, math.ceil(s.max_connections / s.workers)),
            )
            results = await asyncio.gather(*(self._spawn(w) for w in self._workers), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                await self._terminate_all(timeout=1.0)
                raise errors[0]
        finally:
            reserve.close()
        self._address = (s.host, port)
        for w in self._workers:
            w.reader = asyncio.ensure_future(self._supervise(w))
        log.info("proxy %s: %d workers (pids %s)", s.listen, len(self._workers),
                 ", ".join(map(str, self.pids)))

    async def _spawn(self, w: _Worker) -> None:
        assert self._child is not None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # so a source checkout works too
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failover.proxy._worker", self._child.to_json(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        w.proc = proc
        w.stats = ProxyStats()
        w.send({"route": self._route.to_json()})  # read before it listens: no connection sees no route
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            message = json.loads(line) if line.strip() else {"error": "exited at start (see its stderr)"}
            if "ready" not in message:
                raise ProxyError(f"proxy worker: {message.get('error', message)}")
        except BaseException as exc:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.wait_for(proc.wait(), 5.0)
            if isinstance(exc, TimeoutError):
                raise ProxyError(f"proxy worker {proc.pid} did not start in {START_TIMEOUT:g}s") from None
            raise

    async def _supervise(self, w: _Worker) -> None:
        """Read the worker's reports; start it again if it dies while we are running."""
        while True:
            proc = w.proc
            assert proc is not None and proc.stdout is not None
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if "stats" in message:
                        w.stats = ProxyStats.from_json(message["stats"])
            await proc.wait()
            w.retired.add(w.stats)
            w.retired.connections_active = 0
            for up in w.retired.upstreams.values():
                up.active, up.ejected = 0, False
            w.stats = ProxyStats()
            if self._stopping:
                return
            log.error("proxy worker %d (pid %d) exited with %s; starting it again in %gs",
                      w.index, proc.pid, proc.returncode, RESTART_DELAY)
            if not await self._spawn_until_running(w):
                return

    async def _spawn_until_running(self, w: _Worker) -> bool:
        for _ in range(3600):  # bounded: an hour of attempts a second apart, then the slot stays empty
            await asyncio.sleep(RESTART_DELAY)
            if self._stopping:
                return False
            try:
                await self._spawn(w)
                return True
            except (OSError, ProxyError, ValueError) as exc:
                log.error("proxy worker %d: %s", w.index, exc)
        log.error("proxy worker %d: giving up after an hour of failed starts", w.index)
        w.proc = None
        return False

    def set_route(self, route: Route) -> None:
        if route == self._route:
            return
        self._route = route
        log.info("proxy %s: route %s", self.settings.listen, route)
        for w in self._workers:
            w.send({"route": route.to_json()})

    def stats(self) -> ProxyStats:
        total = ProxyStats(workers=len(self._workers))
        for w in self._workers:
            total.add(w.retired)
            total.add(w.stats)
        return total

    async def stop(self, timeout: float = 5.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        await self._terminate_all(timeout)
        readers = [w.reader for w in self._workers if w.reader is not None]
        if readers:
            await asyncio.wait(readers, timeout=2.0)
        for task in readers:
            task.cancel()

    async def _terminate_all(self, timeout: float) -> None:
        procs = [w.proc for w in self._workers if w.proc is not None and w.proc.returncode is None]
        for w in self._workers:
            w.send({"stop": timeout})
            if w.proc is not None and w.proc.stdin is not None:
                w.proc.stdin.close()
        if not procs:
            return
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        _, pending = await asyncio.wait(waits, timeout=timeout + 2.0)
        if pending:
            for proc in procs:
                if proc.returncode is None:
                    log.warning("proxy worker %d did not stop; killing it", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.wait(pending, timeout=2.0)
