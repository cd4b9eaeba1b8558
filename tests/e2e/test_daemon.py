"""`failover run` as a real subprocess against BIND: failover within seconds, drift repair,
clean shutdown on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

import dns.update

from failover.adapters.rfc2136 import Rfc2136Adapter
from tests.conftest import EAST, WEST, failover_cmd, policy_dict, wait_for

DOMAIN = "api.example.com"


def test_daemon_fails_over_repairs_drift_and_stops_cleanly(bind, gateways, write_policy, cli_env, tmp_path):
    pool, port = gateways
    adapter = Rfc2136Adapter(
        DOMAIN, bind.host, bind.port, bind.zone, 30, (bind.key_name, bind.algorithm, bind.key_secret)
    )
    adapter.raw_update(lambda u: (u.delete(DOMAIN + ".", "A"), u.delete("_failover." + DOMAIN + ".", "TXT")))
    policy = write_policy(policy_dict(bind, port))
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*failover_cmd(), "-v", "run", "--policy", str(policy)], env=cli_env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: bind.query(DOMAIN) == sorted(EAST.values()), 20, "first publish of east")

        killed = time.monotonic()
        pool.stop("east-a", "east-b")
        wait_for(lambda: bind.query(DOMAIN) == sorted(WEST.values()), 15, "DNS flip to west")
        flip = time.monotonic() - killed
        assert flip < 10, f"flip took {flip:.1f}s"  # interval 1s, fall 3: about 3s; generous for CI

        # someone edits the record by hand: the reconcile job puts it back
        def vandalise(update: dns.update.UpdateMessage) -> None:
            update.replace(DOMAIN + ".", 30, "A", "127.0.0.99")

        adapter.raw_update(vandalise)
        assert bind.query(DOMAIN) == ["127.0.0.99"]
        wait_for(lambda: bind.query(DOMAIN) == sorted(WEST.values()), 15, "drift repaired")

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "east down" in text and "west elected" in text  # the one-sentence decision log
    assert "daemon stopped" in text
