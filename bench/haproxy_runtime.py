#!/usr/bin/env python3
"""Outage through a region failover: `failover run` driving a real HAProxy (`proxy: {kind: haproxy}`)
against the same daemon running its embedded proxy; prints JSON.

    python bench/haproxy_runtime.py [--rounds 2] [--seconds 8] [--kill-at 2] [--concurrency 8]
    python bench/haproxy_runtime.py --haproxy-runtime      # the HAProxy target alone

Needs ``haproxy`` (Debian: ``apt-get install haproxy``). Everything runs on 127.0.0.x from a
temporary directory; every process started here is stopped at the end (by pid).

Each round, per target (interleaved, the order rotating): two regions of gateways
(``failover/localgw.py``), each region in a process of its own (east: 127.0.0.11 and .12,
west: 127.0.0.21 and .22); the daemon (probes every 1 s, timeout 500 ms, fall 3, rise 2, no
DNS adapter: the proxy is what is measured) elects east; then, under new-connection-per-request
load through the proxy (the load client of ``bench/proxy.py``: ``--concurrency`` tasks), east's
process is killed with SIGKILL: the whole primary region dies. Reported per round, as in
``bench/proxy.py``: the longest stretch without a successful response around the kill
(``longest_outage_ms``), failed requests, and those started after the kill.

* ``embedded``: the daemon's own proxy (``proxy: {listen: ...}``): a refused connect is retried
  on the next tier (west) at once, before any probe.
* ``haproxy_runtime``: HAProxy 2.6 (``mode tcp``, ``retries 2``, ``option redispatch 1``; servers
  without ``check``) programmed through its Runtime API: west's servers are ``drain`` until the
  follower makes them ``ready``. It reads HAProxy's per-server connect errors every 0.1 s: when
  every ready server fails, west's servers take connections too at once (spill-over), and the
  confirmation probes start at once, as for the embedded proxy's failed connects.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import EAST, WEST, two_regions, wait  # noqa: E402

from tests.support.haproxy import Haproxy, free_tcp_port, start_haproxy  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_proxy", ROOT / "bench" / "proxy.py")
assert _spec is not None and _spec.loader is not None
bench_proxy = importlib.util.module_from_spec(_spec)
sys.modules["bench_proxy"] = bench_proxy  # its dataclasses look their module up
_spec.loader.exec_module(bench_proxy)

GATEWAYS = """
import asyncio, sys
from failover.localgw import LocalGateway
async def main():
    port = int(sys.argv[1])
    gws = [LocalGateway(n, a, port) for n, a in (x.split("=") for x in sys.argv[2:])]
    for g in gws:
        await g.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_region(gateways: dict[str, str], port: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", GATEWAYS, str(port), *(f"{n}={a}" for n, a in gateways.items())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"gateways {list(gateways)} did not start")
    return proc


def policy(tmp: Path, port: int, proxy: dict[str, Any]) -> Path:
    data = {
        "service": "bench",
        "observer": "east",
        "regions": two_regions(),
        "domains": [
            {
                "name": "api.example.com",
                "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "1s", "timeout": "500ms"}],
            }
        ],
        "health": {"rise": 2, "fall": 3},
        "election": {"failback": "manual", "hold_down": "0s", "max_failovers_per_hour": 100},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "proxy": proxy,
    }
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def get(port: int) -> str:
    with __import__("socket").create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode(errors="replace").rsplit("\r\n\r\n", 1)[-1].strip()


def one_round(target: str, args: argparse.Namespace, rnd: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"failover-bench-haproxy-{rnd}-{target}-"))
    port = free_tcp_port()
    east = start_region(EAST, port)
    west = start_region(WEST, port)
    haproxy: Haproxy | None = None
    daemon: subprocess.Popen[bytes] | None = None
    try:
        if target == "haproxy_runtime":
            haproxy = start_haproxy(tmp / "haproxy", {**EAST, **WEST}, port)
            front = haproxy.port
            block: dict[str, Any] = {"kind": "haproxy", "runtime_api": haproxy.runtime_api, "backend": "gateways"}
        else:
            front = free_tcp_port()
            block = {"listen": f"127.0.0.1:{front}", "upstream_port": port, "connect_timeout": "500ms"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
        with (tmp / "daemon.log").open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "--policy", str(policy(tmp, port, block))],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip

        def east_first() -> bool:
            try:
                return {get(front) for _ in range(4)} <= {"ok east-a", "ok east-b"}
            except OSError:
                return False

        wait(east_first, 30, f"{target}: traffic to east")
        time.sleep(1.0)  # a bench, not a test: let every gateway get its first verdicts
        load = bench_proxy._load(front, args.seconds, args.concurrency, args.kill_at, east)
        result: dict[str, Any] = asyncio.run(load)
        result["west_after"] = get(front).startswith("ok west")
        log(
            f"round {rnd + 1} {target:16s} longest outage {result['longest_outage_ms']} ms "
            f"(longest gap before the kill {result['longest_gap_before_kill_ms']} ms), failed {result['failed']} "
            f"(started after the kill {result['failed_started_after_kill']}), {result['rps']} req/s"
        )
        return result
    finally:
        for proc in (daemon, east, west):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if haproxy is not None:
            haproxy.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0, help="load per round")
    p.add_argument("--kill-at", type=float, default=2.0, help="seconds into the load")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--haproxy-runtime", action="store_true", help="only the HAProxy Runtime API target")
    args = p.parse_args()
    targets = ["haproxy_runtime"] if args.haproxy_runtime else ["embedded", "haproxy_runtime"]
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    for rnd in range(args.rounds):
        for target in targets[rnd % len(targets) :] + targets[: rnd % len(targets)]:
            runs[target].append(one_round(target, args, rnd))
    summary = {
        target: {
            "longest_outage_ms_median": statistics.median(float(r["longest_outage_ms"]) for r in rounds),
            "longest_outage_ms_max": max(float(r["longest_outage_ms"]) for r in rounds),
            "failed_total": sum(int(r["failed"]) for r in rounds),
            "failed_started_after_kill_total": sum(int(r["failed_started_after_kill"]) for r in rounds),
            "rounds": rounds,
        }
        for target, rounds in runs.items()
    }
    print(json.dumps({"args": vars(args), "targets": summary}, indent=2))


if __name__ == "__main__":
    main()
