#!/usr/bin/env python3
"""Benchmark the embedded proxy against HAProxy (mode tcp) and direct access; prints JSON.

    python bench/proxy.py [--rounds 3] [--duration 5] [--workers 2] [--quick]

Needs ``nginx`` (nginx-light), ``haproxy`` and ``wrk`` on PATH (Debian: ``apt-get install
haproxy wrk nginx-light``). Everything runs on 127.0.0.1 from a temporary directory and
every process started here is stopped at the end (by pid).

Part 1, throughput and latency (wrk), interleaved over ``--rounds`` rounds, the order of
the targets rotating each round: ``direct`` (nginx), ``haproxy`` (2.6, ``mode tcp``, its
default threads: one per CPU), ``haproxy_1thread`` (the same with ``nbthread 1``) and
``ours`` (``python -m failover.proxy`` with ``--workers``, default 2; ``ours_1worker`` is
the same in one process, as the daemon embeds it by default), for three loads: small
responses with keep-alive (``small_keepalive``), small responses with ``Connection:
close`` (``small_close``), and 64 KiB responses with keep-alive (``large_64k``). Reported:
requests/s, p50/p99 latency, and the CPU time the server's process tree spent per request
(from /proc; less sensitive to other load on the machine than requests/s), per round and
as medians, and the medians of the per-round ratios: ``ours_vs_haproxy`` (N workers
against HAProxy's default threads), ``ours_1worker_vs_haproxy_1thread`` (one process
against one thread: the issue's new-connection target) and ``ours_1worker_vs_haproxy``.
The ratios are also printed as a table on stderr.

Part 2, failover under new-connection-per-request load: a small load client (this file,
bounded in time) opens a new connection for every request; after a warm-up the primary
backend (an nginx process started here) is killed with SIGKILL. The kill is a window, from
the signal to the process being reaped. Reported per target: the longest stretch without a
successful response that begins within a second of the kill (``longest_outage_ms``; the
longest stretch before the kill shows the machine's noise), failed requests, requests in
flight during the kill window, and failed requests started after it. HAProxy has the
primary and a ``backup`` server with ``check inter 1s fall 2`` (and, for reference, the
same with ``option redispatch`` + ``retries 1``, which does not help: a backup server
only takes traffic once the checks have marked the primary down); ours has the route
``[[primary], [backup]]`` and no probes (it retries a refused connect on the next tier).

The machine is shared and has few cores: read ratios from the same run, not absolute
figures, and prefer medians over several rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADS = {
    "small_keepalive": ("/small", []),
    "small_close": ("/small", ["-H", "Connection: close"]),
    "large_64k": ("/64k", []),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} at start")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


@dataclass
class Procs:
    """Every process this benchmark started, stopped by pid at the end."""

    items: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        self.items.append((name, proc))
        return proc  # type: ignore[no-any-return]

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for _, proc in reversed(self.items):
            self.stop(proc)


def nginx_conf(tmp: Path, name: str, port: int) -> Path:
    d = tmp / name
    d.mkdir(mode=0o755)
    (d / "64k").write_bytes(os.urandom(32768).hex().encode())  # 65536 bytes
    conf = d / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {d};
    location = /small {{ return 200 "hello from {name}\\n"; }}
    location = /64k {{ default_type application/octet-stream; }}
  }}
}}
""")
    return conf


def haproxy_conf(tmp: Path, name: str, port: int, primary: int, backup: int | None,
                 redispatch: bool = False, threads: int | None = None) -> Path:
    servers = f"    server primary 127.0.0.1:{primary}"
    if backup is not None:
        servers += " check inter 1s fall 2\n"
        servers += f"    server backup 127.0.0.1:{backup} check inter 1s fall 2 backup"
    extra = "    option redispatch\n    retries 1\n" if redispatch else ""
    conf = tmp / f"{name}.cfg"
    conf.write_text(f"""
global
    maxconn 8000
{f"    nbthread {threads}" if threads else ""}
    log stderr format raw local0 emerg
defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
{extra}frontend front
    bind 127.0.0.1:{port}
    default_backend back
backend back
{servers}
""")
    return conf


# -- part 1: wrk -----------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (our proxy's workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, load: str, duration: float, threads: int, conns: int,
            server_pid: int | None = None) -> dict[str, float]:
    """One wrk run; with ``server_pid``, also the CPU that process tree spent per request."""
    path, extra = LOADS[load]
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--latency", *extra,
            f"http://127.0.0.1:{port}{path}"]
    pids = _tree(server_pid) if server_pid else []
    cpu0 = cpu_seconds(pids)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    cpu = cpu_seconds(pids) - cpu0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    result = {"rps": round(rps, 1), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "errors": errors}
    if pids and requests:
        result["cpu_us_per_req"] = round(cpu * 1e6 / requests, 1)
    return result


def rotate(items: list[str], n: int) -> list[str]:
    n %= len(items)
    return items[n:] + items[:n]


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def part1(tmp: Path, procs: Procs, args: argparse.Namespace) -> dict[str, object]:
    nginx_port, hap_port, ours_port = free_port(), free_port(), free_port()
    ng = procs.start("nginx", ["nginx", "-c", str(nginx_conf(tmp, "perf", nginx_port)), "-p", str(tmp)])
    wait_port(nginx_port, ng, "nginx")
    hap = procs.start("haproxy", ["haproxy", "-db", "-f", str(haproxy_conf(tmp, "perf", hap_port, nginx_port, None))])
    wait_port(hap_port, hap, "haproxy")
    targets = {"direct": nginx_port, "haproxy": hap_port, "ours": ours_port}
    pids = {"direct": ng.pid, "haproxy": hap.pid}
    if not args.no_single_worker:
        # one thread: what one worker of ours is compared with
        targets["haproxy_1thread"] = hap1_port = free_port()
        hap1 = procs.start("haproxy", ["haproxy", "-db", "-f",
                                       str(haproxy_conf(tmp, "perf1", hap1_port, nginx_port, None, threads=1))])
        wait_port(hap1_port, hap1, "haproxy (1 thread)")
        pids["haproxy_1thread"] = hap1.pid
    ours = [procs.start("ours", [sys.executable, "-m", "failover.proxy", "--listen", f"127.0.0.1:{ours_port}",
                                 "--upstream", f"127.0.0.1:{nginx_port}", "--workers", str(args.workers)],
                        stdout=subprocess.DEVNULL, cwd=ROOT)]
    wait_port(ours_port, ours[0], "our proxy")
    if args.workers != 1 and not args.no_single_worker:
        # the same in one process, as the daemon embeds it by default (workers: 1)
        targets["ours_1worker"] = single_port = free_port()
        ours.append(procs.start("ours", [sys.executable, "-m", "failover.proxy", "--listen",
                                         f"127.0.0.1:{single_port}", "--upstream", f"127.0.0.1:{nginx_port}"],
                                stdout=subprocess.DEVNULL, cwd=ROOT))
        wait_port(single_port, ours[1], "our proxy (1 worker)")
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        load: {t: [] for t in targets} for load in args.loads
    }
    pids["ours"] = ours[0].pid
    if len(ours) > 1:
        pids["ours_1worker"] = ours[1].pid
    started = [proc for _, proc in procs.items if proc.pid in pids.values()]
    for load in args.loads:  # warm-up, not recorded
        for port in targets.values():
            run_wrk(port, load, 1, args.threads, args.connections)
    for rnd in range(args.rounds):
        for load in args.loads:
            for t in rotate(list(targets), rnd):
                r = run_wrk(targets[t], load, args.duration, args.threads, args.connections, pids[t])
                results[load][t].append(r)
                log(f"round {rnd + 1} {load:16s} {t:12s} {r['rps']:>10.0f} req/s  "
                    f"p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
                    f"cpu {r.get('cpu_us_per_req', 0):.1f} us/req  errors {r['errors']}")
    summary: dict[str, object] = {}
    for load, by_target in results.items():
        entry: dict[str, object] = {}
        for t, runs in by_target.items():
            entry[t] = {
                "rps_median": _median([r["rps"] for r in runs]),
                "p50_ms_median": _median([r["p50_ms"] for r in runs]),
                "p99_ms_median": _median([r["p99_ms"] for r in runs]),
                "cpu_us_per_req_median": _median([r["cpu_us_per_req"] for r in runs if "cpu_us_per_req" in r]),
                "errors": sum(int(r["errors"]) for r in runs),
                "rounds": runs,
            }
        comparisons = [(name, "haproxy") for name in by_target if name.startswith("ours")]
        if "ours_1worker" in by_target and "haproxy_1thread" in by_target:
            comparisons.append(("ours_1worker", "haproxy_1thread"))
        for name, ref in comparisons:
            pairs = list(zip(by_target[name], by_target[ref], strict=True))
            entry[f"{name}_vs_{ref}"] = {
                "rps_ratio_median": _median([o["rps"] / h["rps"] for o, h in pairs]),
                "p50_ratio_median": _median([o["p50_ms"] / h["p50_ms"] for o, h in pairs]),
                "p99_ratio_median": _median([o["p99_ms"] / h["p99_ms"] for o, h in pairs]),
                "cpu_per_req_ratio_median": _median(
                    [o["cpu_us_per_req"] / h["cpu_us_per_req"] for o, h in pairs
                     if o.get("cpu_us_per_req") and h.get("cpu_us_per_req")]
                ),
            }
        summary[load] = entry
    for proc in reversed(started):
        procs.stop(proc)
    return summary


def table(throughput: dict[str, dict[str, dict[str, float]]]) -> str:
    """The ratios to HAProxy as a text table (medians of the per-round ratios)."""
    rows = [("ours (N workers) / HAProxy (default threads)", "ours_vs_haproxy"),
            ("ours (1 worker) / HAProxy (1 thread)", "ours_1worker_vs_haproxy_1thread"),
            ("ours (1 worker) / HAProxy (default threads)", "ours_1worker_vs_haproxy")]
    lines = [f"{'comparison':46s} {'load':16s} {'req/s':>7s} {'p99':>7s} {'CPU/req':>8s}"]
    for label, key in rows:
        for load, entry in throughput.items():
            ratio = entry.get(key)
            if ratio:
                lines.append(f"{label:46s} {load:16s} {ratio['rps_ratio_median']:>6.2f}x "
                             f"{ratio['p99_ratio_median']:>6.2f}x {ratio['cpu_per_req_ratio_median']:>7.2f}x")
    return "\n".join(lines)


# -- part 2: failover ------------------------------------------------------------------------

REQUEST = b"GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


async def _one(port: int, timeout: float) -> bool:
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(REQUEST)
        data = await asyncio.wait_for(reader.read(), timeout)
        return data.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()


async def _load(port: int, seconds: float, concurrency: int, kill_at: float,
                victim: subprocess.Popen[bytes], timeout: float = 2.0) -> dict[str, object]:
    """New connection per request from ``concurrency`` tasks for ``seconds``; SIGKILL the victim.

    The kill is a window: from sending SIGKILL to the moment the process is reaped (its
    sockets are gone by then). Requests that overlap that window were in flight at the kill.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    records: list[tuple[float, float, bool]] = []  # (start, end, ok)
    window: list[float] = []

    async def client() -> None:
        while loop.time() - t0 < seconds:
            start = loop.time()
            ok = await _one(port, timeout)
            records.append((start, loop.time(), ok))
            if not ok:
                await asyncio.sleep(0.001)  # do not spin on a dead port

    async def killer() -> None:
        await asyncio.sleep(kill_at)
        window.append(loop.time())
        victim.send_signal(signal.SIGKILL)
        await loop.run_in_executor(None, victim.wait)
        window.append(loop.time())

    await asyncio.gather(killer(), *(client() for _ in range(concurrency)))
    k0, k1 = window
    ok_ends = sorted(end for _, end, ok in records if ok)
    # Stretches without a successful response. The outage is the longest one that begins
    # between 1 s before the kill and 1 s after it (a failover's outage starts at the kill);
    # the longest stretch before the kill shows the noise of this shared machine.
    points = [t0 + 0.5] + [e for e in ok_ends if e >= t0 + 0.5] + [t0 + seconds]
    gaps = list(itertools.pairwise(points))
    outage = max((b - a for a, b in gaps if k0 - 1.0 <= a <= k1 + 1.0 or a <= k0 <= b), default=0.0)
    before = max((b - a for a, b in gaps if b <= k0), default=0.0)
    after = max((b - a for a, b in gaps if b >= k0), default=0.0)
    failed = [(s, e) for s, e, ok in records if not ok]
    return {
        "requests": len(records),
        "ok": len(ok_ends),
        "failed": len(failed),
        "kill_to_reaped_ms": round((k1 - k0) * 1000, 1),
        "in_flight_at_kill": sum(1 for s, e, _ in records if s <= k1 and e >= k0),
        "failed_in_flight_at_kill": sum(1 for s, e in failed if s <= k1 and e >= k0),
        "failed_started_after_kill": sum(1 for s, _ in failed if s > k1),
        "longest_outage_ms": round(outage * 1000, 1),
        "longest_gap_before_kill_ms": round(before * 1000, 1),
        "longest_gap_after_kill_ms": round(after * 1000, 1),
        "rps": round(len(records) / seconds),
    }


def part2(tmp: Path, procs: Procs, args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, list[dict[str, object]]] = {"ours": [], "haproxy": [], "haproxy_redispatch": []}
    for rnd in range(args.failover_rounds):
        for target in rotate(list(out), rnd):
            p1, p2, front = free_port(), free_port(), free_port()
            tag = f"fo{rnd}{target}"
            primary = procs.start("nginx", ["nginx", "-c", str(nginx_conf(tmp, f"{tag}p", p1)), "-p", str(tmp)])
            backup = procs.start("nginx", ["nginx", "-c", str(nginx_conf(tmp, f"{tag}b", p2)), "-p", str(tmp)])
            wait_port(p1, primary, "nginx primary")
            wait_port(p2, backup, "nginx backup")
            if target == "ours":
                fp = procs.start("ours", [sys.executable, "-m", "failover.proxy", "--listen", f"127.0.0.1:{front}",
                                          "--upstream", f"127.0.0.1:{p1}", "--upstream", f"127.0.0.1:{p2}",
                                          "--workers", str(args.workers)],
                                 stdout=subprocess.DEVNULL, cwd=ROOT)
            else:
                conf = haproxy_conf(tmp, tag, front, p1, p2, redispatch=target == "haproxy_redispatch")
                fp = procs.start("haproxy", ["haproxy", "-db", "-f", str(conf)])
            wait_port(front, fp, target)
            time.sleep(1.5 if target != "ours" else 0.2)  # let HAProxy's first checks pass
            r = asyncio.run(_load(front, args.failover_seconds, args.failover_concurrency,
                                  args.failover_kill_at, primary))
            out[target].append(r)
            log(f"failover round {rnd + 1} {target:18s} longest outage {r['longest_outage_ms']} ms "
                f"(longest gap before the kill {r['longest_gap_before_kill_ms']} ms), "
                f"failed {r['failed']} (in flight at kill {r['in_flight_at_kill']}, "
                f"started after kill {r['failed_started_after_kill']}), {r['rps']} req/s")
            for proc in (fp, primary, backup):
                procs.stop(proc)
    summary: dict[str, object] = {}
    for target, runs in out.items():
        summary[target] = {
            "longest_outage_ms_median": _median([float(r["longest_outage_ms"]) for r in runs]),  # type: ignore[arg-type]
            "longest_outage_ms_max": max(float(r["longest_outage_ms"]) for r in runs),  # type: ignore[arg-type]
            "failed_total": sum(int(r["failed"]) for r in runs),  # type: ignore[call-overload]
            "failed_started_after_kill_total": sum(int(r["failed_started_after_kill"]) for r in runs),  # type: ignore[call-overload]
            "rounds": runs,
        }
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=50, help="wrk connections")
    p.add_argument("--workers", type=int, default=2, help="our proxy's worker processes")
    p.add_argument("--no-single-worker", action="store_true",
                   help="do not also measure our proxy with one worker")
    p.add_argument("--loads", nargs="+", choices=list(LOADS), default=list(LOADS))
    p.add_argument("--failover-rounds", type=int, default=2)
    p.add_argument("--failover-seconds", type=float, default=6.0)
    p.add_argument("--failover-kill-at", type=float, default=2.0)
    p.add_argument("--failover-concurrency", type=int, default=8)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-failover", action="store_true")
    p.add_argument("--quick", action="store_true", help="1 round of 2 s, 1 failover round")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration, args.failover_rounds = 1, 2.0, 1
    missing = [tool for tool in ("nginx", "haproxy", "wrk") if shutil.which(tool) is None
               and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (Debian: apt-get install haproxy wrk nginx-light)")
    os.environ["PATH"] += os.pathsep + "/usr/sbin"
    result: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0]},
        "settings": {k: v for k, v in vars(args).items() if k != "quick"},
        "versions": {
            "haproxy": subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "python": sys.version.split()[0],
        },
    }
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    tmp.chmod(0o755)
    started = time.monotonic()
    try:
        if not args.skip_throughput:
            result["throughput"] = part1(tmp, procs, args)
            log("ratios to HAProxy, medians over the rounds:\n" + table(result["throughput"]))  # type: ignore[arg-type]
        if not args.skip_failover:
            result["failover"] = part2(tmp, procs, args)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()[0]  # type: ignore[index]
    result["seconds"] = round(time.monotonic() - started, 1)
    result["targets"] = _targets(result)
    print(json.dumps(result, indent=2))


def _targets(result: dict[str, object]) -> dict[str, object]:
    """The issue's targets, checked against this run's figures."""
    checks: dict[str, object] = {}
    tp = result.get("throughput")
    if isinstance(tp, dict):
        for load, need in (("small_keepalive", 0.9), ("large_64k", 0.9), ("small_close", 0.75)):
            if load in tp:
                ratio = tp[load]["ours_vs_haproxy"]
                checks[f"{load}_rps_ratio>={need}"] = {"value": ratio["rps_ratio_median"],
                                                      "ok": ratio["rps_ratio_median"] >= need}
                checks[f"{load}_p99_ratio<=1.5"] = {"value": ratio["p99_ratio_median"],
                                                   "ok": ratio["p99_ratio_median"] <= 1.5}
        one = tp.get("small_close", {}).get("ours_1worker_vs_haproxy_1thread")
        if one:  # issue 10: one worker (the daemon's default) against HAProxy on one thread
            checks["small_close_1worker_vs_1thread_rps_ratio>=0.75"] = {
                "value": one["rps_ratio_median"], "ok": one["rps_ratio_median"] >= 0.75}
    fo = result.get("failover")
    if isinstance(fo, dict):
        ours = fo["ours"]
        checks["failover_longest_outage_ms<=100"] = {"value": ours["longest_outage_ms_max"],
                                                     "ok": ours["longest_outage_ms_max"] <= 100}
        checks["failover_failed_after_kill==0"] = {"value": ours["failed_started_after_kill_total"],
                                                   "ok": ours["failed_started_after_kill_total"] == 0}
        checks["failover_failed<=in_flight"] = {
            "value": [[r["failed"], r["in_flight_at_kill"]] for r in ours["rounds"]],
            "ok": all(r["failed"] <= r["in_flight_at_kill"] for r in ours["rounds"]),
        }
    return checks


if __name__ == "__main__":
    main()
