"""The README's first command: `failover demo`, unattended, exits 0 with a summary."""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import failover_cmd


def test_demo_runs_unattended_and_reports_figures():
    env = dict(os.environ, CI="true")
    done = subprocess.run(
        [*failover_cmd(), "demo", "--speed", "0.2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "summary" in out
    shift = float(re.search(r"DNS shift to west\s+([\d.]+)s", out).group(1))
    failback = float(re.search(r"failback to east\s+([\d.]+)s", out).group(1))
    assert 0 < shift < 10 and 0 < failback < 20
    assert "failover: east down" in out and "west elected" in out
    proxied = re.search(r"through the proxy\s+(\d+) requests ok, (\d+) failed", out)
    assert proxied is not None, out
    # clients holding the old DNS answer kept being served: at most the requests in flight at the kill failed
    assert int(proxied.group(1)) > 50 and int(proxied.group(2)) <= 2
