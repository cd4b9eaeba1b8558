"""Standalone proxy, for benchmarks and trials: no policy file, a fixed route.

    python -m failover.proxy --listen 127.0.0.1:8443 --upstream 127.0.0.1:9001,127.0.0.1:9002 \\
        [--upstream 127.0.0.1:9003] [--workers 2] [--proxy-protocol v2] [--metrics 127.0.0.1:9100] \\
        [--loop asyncio]

Each ``--upstream`` is one tier (a comma-separated list of ``IP:port``); the first is
preferred, the next ones are used when every address of the ones before fails to connect.
Prints ``listening HOST:PORT`` on stdout when ready; SIGINT or SIGTERM stop it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from failover.policy import parse_duration
from failover.proxy._proxy import Proxy
from failover.proxy._route import Route
from failover.proxy._settings import Settings


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m failover.proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: any free port)")
    p.add_argument("--upstream", action="append", required=True, metavar="IP:PORT[,IP:PORT...]",
                   help="one tier of upstreams; repeat for fallback tiers")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--balance", choices=["round_robin", "least_connections"], default="round_robin")
    p.add_argument("--proxy-protocol", choices=["v1", "v2"], default=None)
    p.add_argument("--connect-timeout", type=_duration, default=1.0)
    p.add_argument("--drain-time", type=_duration, default=30.0)
    p.add_argument("--idle-timeout", type=_duration, default=3600.0)
    p.add_argument("--ejection-time", type=_duration, default=10.0)
    p.add_argument("--max-connections", type=int, default=10000)
    p.add_argument("--backlog", type=int, default=1024)
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics here")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default=None,
                   help="event loop of this process (default: uvloop where installed); workers use uvloop if they can")
    return p


async def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_listen(
        args.listen,
        upstream_port=443,
        workers=args.workers,
        balance=args.balance,
        proxy_protocol=args.proxy_protocol,
        connect_timeout=args.connect_timeout,
        drain_time=args.drain_time,
        idle_timeout=args.idle_timeout,
        ejection_time=args.ejection_time,
        max_connections=args.max_connections,
        backlog=args.backlog,
    )
    route = Route(tuple((f"tier{i + 1}", tuple(a for a in tier.split(",") if a))
                        for i, tier in enumerate(args.upstream)))
    proxy = Proxy(settings)
    proxy.set_route(route)
    await proxy.start()
    if args.metrics:
        from prometheus_client import start_http_server

        from failover.proxy._route import split_address

        host, port = split_address(args.metrics, 9100)
        start_http_server(port, addr=host)
    host, port = proxy.address
    print(f"listening {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        Route(tuple(("x", tuple(a for a in tier.split(",") if a)) for tier in args.upstream))
    except ValueError as exc:
        print(f"error: --upstream: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                raise
        else:
            sys.exit(uvloop.run(_run(args)))
    sys.exit(asyncio.run(_run(args)))


if __name__ == "__main__":
    main()
