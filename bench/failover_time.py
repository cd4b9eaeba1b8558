"""Detection-to-flip time: real BIND, real loopback gateways, `failover run` at interval 1s, fall 3.

Each trial starts the daemon on a fresh store and an empty record, waits for east to be
published, waits a random fraction of a probe interval (so the kill lands at any phase of
the probe schedule), kills east's gateways, and polls the authoritative server every 10 ms
until the answer is west's. Prints JSON with every trial and p50/p95/max.

    python bench/failover_time.py --trials 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from failover.adapters.rfc2136 import Rfc2136Adapter  # noqa: E402
from failover.localgw import LocalGateway, ThreadedGateways  # noqa: E402
from tests.support.bind import free_port, start_bind  # noqa: E402

DOMAIN = "api.example.com"
EAST = {"east-a": "127.0.0.11", "east-b": "127.0.0.12"}
WEST = {"west-a": "127.0.0.21", "west-b": "127.0.0.22"}


def wait(condition, deadline: float, what: str, step: float = 0.01) -> float:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise TimeoutError(f"{what} not within {deadline}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--fall", type=int, default=3)
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
                "regions": [
                    {"name": "east", "priority": 10, "gateways": [{"name": n, "address": a} for n, a in EAST.items()]},
                    {"name": "west", "priority": 20, "gateways": [{"name": n, "address": a} for n, a in WEST.items()]},
                ],
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
            policy_file = work / f"policy-{trial}.yaml"
            policy_file.write_text(yaml.safe_dump(policy))
            log = (work / f"daemon-{trial}.log").open("w")
            daemon = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "--policy", str(policy_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait(lambda: bind.query(DOMAIN) == east, 30, "first publish")
                time.sleep(rng.uniform(0.5, 1.5))  # random phase against the probe schedule
                killed = time.monotonic()
                pool.stop(*EAST)
                flipped = wait(lambda: bind.query(DOMAIN) == west, 30, "flip to west")
                trials.append({"trial": trial, "flip_s": round(flipped - killed, 3)})
                print(f"trial {trial}: {flipped - killed:.3f}s", file=sys.stderr)
            finally:
                daemon.terminate()
                daemon.wait(timeout=20)
                log.close()
                pool.start(*EAST)
    finally:
        pool.close()
        bind.stop()
    flips = [t["flip_s"] for t in trials]
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
                },
                "trials": len(flips),
                "p50_s": round(statistics.median(flips), 3),
                "p95_s": round(percentile(flips, 0.95), 3),
                "max_s": round(max(flips), 3),
                "min_s": round(min(flips), 3),
                "all_s": flips,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
