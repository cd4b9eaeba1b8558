"""A worker process of a multi-process proxy (``proxy.workers > 1``); started by ``WorkerPool``.

``python -m failover.proxy._worker SETTINGS_JSON``. The parent talks to it over pipes, one
JSON object a line:

* stdin, parent -> worker: ``{"route": [[region, [address, ...]], ...]}`` (the first line, read
  before listening, and every change), ``{"stop": timeout}``.
  End of file (the parent exited or died) stops the worker too: workers never outlive it.
* stdout, worker -> parent: ``{"ready": port}`` once listening (or ``{"error": message}``),
  then ``{"stats": {...}}`` every second and once more when stopped.

SIGINT is ignored (a Ctrl-C reaches the parent, which stops the workers); SIGTERM stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
from typing import Any

from failover.proxy._local import LocalProxy
from failover.proxy._route import Route
from failover.proxy._settings import Settings

STATS_INTERVAL = 1.0
_MAX_OUT_BUFFER = 1 << 20  # stop sending stats if the parent stops reading


class _Out:
    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport

    def send(self, message: dict[str, Any]) -> None:
        if self._transport.is_closing() or self._transport.get_write_buffer_size() > _MAX_OUT_BUFFER:
            return
        self._transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


async def _serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    out_transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    out = _Out(out_transport)
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    proxy = LocalProxy(settings)
    first = json.loads(await reader.readline() or b"{}")  # the route, before any connection comes
    proxy.set_route(Route.from_json(first.get("route", [])))
    try:
        await proxy.start()
    except OSError as exc:
        out.send({"error": f"cannot listen on {settings.listen}: {exc.strerror or exc}"})
        await asyncio.sleep(0)
        return 1
    out.send({"ready": proxy.address[1]})
    gc.freeze()  # what start-up made lives as long as the process: keep it out of GC passes
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def tick() -> None:
        out.send({"stats": proxy.stats().to_json()})
        ticker[0] = loop.call_later(STATS_INTERVAL, tick)

    ticker = [loop.call_later(STATS_INTERVAL, tick)]
    timeout = 5.0
    stopping = asyncio.ensure_future(stop.wait())
    while True:
        reading = asyncio.ensure_future(reader.readline())
        done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping in done:
            reading.cancel()
            break
        line = reading.result()
        if not line:
            break  # the parent is gone
        message = json.loads(line)
        if "route" in message:
            proxy.set_route(Route.from_json(message["route"]))
        if "stop" in message:
            timeout = float(message["stop"])
            break
    stopping.cancel()
    ticker[0].cancel()
    await proxy.stop(timeout)
    out.send({"stats": proxy.stats().to_json()})
    out.send({"stopped": True})
    out_transport.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_drained(out_transport), 2.0)
    return 0


async def _drained(transport: asyncio.WriteTransport) -> None:
    for _ in range(200):  # bounded: at most ~2 s
        if transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(0.01)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent logs route changes once; workers only say what goes wrong (ejections, errors).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s proxy worker %(process)d: %(message)s")
    settings = Settings.from_json(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(_serve(settings)))
    sys.exit(uvloop.run(_serve(settings)))


if __name__ == "__main__":
    main()
