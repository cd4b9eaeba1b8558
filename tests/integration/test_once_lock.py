"""Two ``failover once`` runs against one sqlite store: the second refuses at once (exit 1) and
names the first, instead of probing, deciding and applying alongside it. Real processes, a real
BIND, real loopback gateways (one made to hang so the first run lasts)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.conftest import failover_cmd, policy_dict, wait_for


def test_a_second_once_on_the_same_store_refuses_and_names_the_first(
    bind, gateways, write_policy, cli_env, tmp_path: Path
) -> None:
    pool, port = gateways
    policy = write_policy(
        policy_dict(
            bind,
            port,
            health={"rise": 1, "fall": 1},
            domains=[
                {
                    **policy_dict(bind, port)["domains"][0],
                    "checks": [{"kind": "http", "port": port, "path": "/ready", "interval": "10s", "timeout": "6s"}],
                }
            ],
        )
    )
    lock = tmp_path / "state.db.lock"
    lock.write_text("pid=999999 host=gone since=2026-01-01T00:00:00Z\n")  # left by a run long dead: no lock held
    command = [*failover_cmd(), "once", "--policy", str(policy)]
    warm = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=60)
    assert warm.returncode == 0, warm.stderr

    pool.set_mode("west-a", "hang")  # the next run waits out the 6s probe timeout
    first = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: f"pid={first.pid} " in lock.read_text(), 20, "the first run holds the lock")
        began = time.monotonic()
        second = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - began
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
        assert second.returncode == 1, second.stdout + second.stderr
        assert re.search(rf"another failover once \(pid {first.pid} on \S+ since \S+Z\) is running", second.stderr)
        assert str(tmp_path / "state.db") in second.stderr
        assert second.stdout == ""  # it did not probe, decide or print outcomes
        assert took < 5, f"the refusal took {took:.1f}s: it waited instead of refusing"

        first.kill()  # killed mid-run: the kernel drops its lock, nothing to clean up
        first.wait(timeout=10)
        pool.set_mode("west-a", "ok")
        third = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=60)
        assert third.returncode == 0, third.stderr
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
