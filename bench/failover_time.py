"""Detection-to-flip time: real BIND, real loopback gateways, `failover run` at interval 1s, fall 3.

Each trial starts the daemon on a fresh store and an empty record, waits for east to be
published, waits a random fraction of a probe interval (so the kill lands at any phase of
the probe schedule), kills east's gateways, and polls the authoritative server every 10 ms
until the answer is west's. Prints JSON with every trial and p50/p95/max.

With ``--passive`` the daemon also runs its embedded proxy and a client sends a request
through it every 40 ms (25/s, a new connection each, as clients with the old DNS answer
would): the proxy's failed connects start confirmation probes at once (failover/passive.py).
Each trial then also reports when the failover was *decided* (the store records west).

    python bench/failover_time.py --trials 10
    python bench/failover_time.py --trials 10 --passive
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import DOMAIN, EAST, WEST, percentile, two_regions, wait  # noqa: E402

from failover.adapters.rfc2136 import Rfc2136Adapter  # noqa: E402
from failover.localgw import LocalGateway, ThreadedGateways  # noqa: E402
from tests.support.bind import free_port, start_bind  # noqa: E402


def client(port: int, stop: threading.Event, every: float = 0.04) -> None:
    """A request through the proxy every ``every`` seconds, a new connection each."""
    request = b"GET /ready HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
    while not stop.wait(every):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
                conn.sendall(request)
                conn.recv(4096)
        except OSError:
            pass  # in flight at the kill: the proxy retried elsewhere or the answer was lost


def decided_primary(db: Path) -> str | None:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            row = conn.execute("SELECT data FROM state WHERE domain = ?", (DOMAIN,)).fetchone()
    except sqlite3.Error:
        return None
    return json.loads(row[0]).get("primary") if row else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--fall", type=int, default=3)
    parser.add_argument("--passive", action="store_true", help="clients through the embedded proxy (data path)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    bind = start_bind(work / "bind")
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**EAST, **WEST}.items()])
    pool.start()
    adapter = Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    )
    env = dict(os.environ, FAILOVER_TSIG_SECRET=bind.key_secret)
    east, west = sorted(EAST.values()), sorted(WEST.values())
    trials: list[dict[str, float]] = []
    rng = random.Random(7)
    try:
        for trial in range(args.trials):
            adapter.raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))
            policy = {
                "service": "bench",
                "observer": "east",
                "regions": two_regions(),
                "domains": [
                    {
                        "name": DOMAIN,
                        "checks": [
                            {
                                "kind": "http",
                                "port": port,
                                "path": "/ready",
                                "interval": args.interval,
                                "timeout": "500ms",
                            }
                        ],
                        "traffic": [
                            {
                                "kind": "rfc2136",
                                "server": bind.server,
                                "zone": bind.zone,
                                "ttl": 30,
                                "tsig": {"name": bind.key_name, "secret_env": "FAILOVER_TSIG_SECRET"},
                            }
                        ],
                    }
                ],
                "health": {"rise": 2, "fall": args.fall},
                "election": {"hold_down": "0s"},
                "state": {"url": f"sqlite:///state-{trial}.db"},
            }
            proxy_port = free_port()
            if args.passive:
                policy["proxy"] = {"listen": f"127.0.0.1:{proxy_port}", "upstream_port": port}
            policy_file = work / f"policy-{trial}.yaml"
            policy_file.write_text(yaml.safe_dump(policy))
            log = (work / f"daemon-{trial}.log").open("w")
            daemon = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "--policy", str(policy_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stop = threading.Event()
            sender = threading.Thread(target=client, args=(proxy_port, stop), daemon=True)
            db = work / f"state-{trial}.db"
            try:
                wait(lambda: bind.query(DOMAIN) == east, 30, "first publish")
                if args.passive:
                    sender.start()
                time.sleep(rng.uniform(0.5, 1.5))  # random phase against the probe schedule
                killed = time.monotonic()
                pool.stop(*EAST)
                decided = wait(lambda db=db: decided_primary(db) == "west", 30, "west decided", step=0.005)
                flipped = wait(lambda: bind.query(DOMAIN) == west, 30, "flip to west")
                result = {"trial": trial, "decided_s": round(decided - killed, 3), "flip_s": round(flipped - killed, 3)}
                trials.append(result)
                took = f"decided {decided - killed:.3f}s, flipped {flipped - killed:.3f}s"
                print(f"trial {trial}: {took}", file=sys.stderr)
            finally:
                stop.set()
                if sender.is_alive():
                    sender.join(timeout=5)
                daemon.terminate()
                daemon.wait(timeout=20)
                log.close()
                pool.start(*EAST)
    finally:
        pool.close()
        bind.stop()
    flips = [t["flip_s"] for t in trials]
    decisions = [t["decided_s"] for t in trials]
    print(
        json.dumps(
            {
                "benchmark": "failover_time",
                "setup": {
                    "interval": args.interval,
                    "fall": args.fall,
                    "rise": 2,
                    "dns": "BIND 9 (rfc2136, TSIG)",
                    "gateways": "2 per region, loopback HTTP",
                    "passive": "25 req/s through the embedded proxy" if args.passive else False,
                },
                "trials": len(flips),
                "p50_s": round(statistics.median(flips), 3),
                "p95_s": round(percentile(flips, 0.95), 3),
                "max_s": round(max(flips), 3),
                "min_s": round(min(flips), 3),
                "all_s": flips,
                "decided_p50_s": round(statistics.median(decisions), 3),
                "decided_p95_s": round(percentile(decisions, 0.95), 3),
                "decided_all_s": decisions,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
