"""The README's first command: `failover demo`, unattended, exits 0 with a summary; and it never
hangs: a wait that cannot end, a blocked event loop or a stuck shutdown step all end the
process well inside the suite's 120 s, saying what it was waiting for."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
import time

from failover.demo._view import Client
from failover.localgw import LocalGateway
from tests.conftest import failover_cmd
from tests.support.bind import free_port


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
    assert "shutdown:" not in done.stderr, done.stderr  # every shutdown step finished in time


async def test_the_client_stops_on_stop_alone_not_only_on_a_cancel():
    # The hang seen in a full-suite run: on Python 3.11 ``asyncio.wait_for`` loses a cancel that
    # lands as its inner await finishes, and the client then ran its whole two-minute loop while
    # the demo's shutdown waited for it. Now ``stop()`` ends it without any cancel.
    gateway = LocalGateway("east-a", "127.0.0.1", free_port())
    await gateway.start()
    try:
        client = Client(gateway.port)
        running = asyncio.create_task(client.run(60))
        end = time.monotonic() + 5
        while client.ok.get("east", 0) < 3 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert client.ok.get("east", 0) >= 3, client.summary()
        client.stop()
        done, _ = await asyncio.wait({running}, timeout=2)
        assert done, "the client kept sending after stop()"
        assert client.failed == 0
    finally:
        await gateway.stop()


def _demo_with(patch: str, budget: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the demo in a fresh interpreter after ``patch`` (Python source) broke something.
    Returns the finished process and the seconds from ``run_demo``'s call to the process's end
    (the budget's span: the interpreter's start-up is not in it)."""
    script = textwrap.dedent(patch) + textwrap.dedent(
        f"""
        import sys, time
        from failover.demo import run_demo
        print(f"run_demo called at {{time.time()}}", file=sys.stderr, flush=True)
        sys.exit(run_demo(speed=0.2, budget={budget}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(os.environ, CI="true"),
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )
    ended = time.time()
    called = re.search(r"run_demo called at ([\d.]+)", done.stderr)
    assert called is not None, done.stdout + done.stderr
    return done, ended - float(called.group(1))


def test_a_wait_that_cannot_end_exits_1_naming_it_within_the_budget():
    # East's gateways survive the kill, so "east down" never comes. With a 20 s budget the
    # waits end 13 s in, keeping a third for the shutdown.
    done, took = _demo_with(
        """
        from failover.localgw import LocalGateway

        real_stop = LocalGateway.stop

        async def survive_the_kill(self, timeout=2.0):
            if not self.name.startswith("east"):
                await real_stop(self, timeout)

        LocalGateway.stop = survive_the_kill
        """,
        budget=20,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    named = r"east fails: waiting for detection of east down: east-a up, east-b up after [\d.]+s"
    assert re.search(named, output), output
    assert "summary" not in done.stdout
    assert "budget ran out" not in output, output  # the wait's own deadline fired, not the watchdog
    assert took < 20, output


def test_a_blocked_event_loop_is_ended_by_the_watchdog_naming_the_phase():
    # The loop thread sleeps inside a callback: no asyncio deadline can fire any more.
    done, took = _demo_with(
        """
        import time
        from failover.demo._view import View

        real_say = View.say

        def say_then_block(self, text):
            real_say(self, text)
            if text.startswith("killing east"):
                time.sleep(600)

        View.say = say_then_block
        """,
        budget=12,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'still in phase "east fails" when the whole demo\'s 12s budget ran out' in done.stderr, done.stderr
    assert "say_then_block" in done.stderr  # the stack dump shows where the loop is stuck
    assert took < 12 + 1, done.stderr


def test_a_stuck_shutdown_step_is_named_and_skipped_and_the_process_exits():
    # The daemon's stop ignores its cancel and leaves a worker thread that never returns:
    # the demo still reports, names the step, abandons the task and the thread, and exits.
    done, took = _demo_with(
        """
        import asyncio, threading
        from failover.daemon import Daemon

        async def stop_forever(self):
            while True:
                try:
                    await asyncio.to_thread(threading.Event().wait)
                except asyncio.CancelledError:
                    pass

        Daemon.stop = stop_forever
        """,
        budget=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary" in done.stdout
    err = done.stderr
    assert "shutdown: stopping the daemon: still running after 5s; skipped" in err, err
    assert "left the probes and the store open: the daemon did not stop" in err, err
    assert "ignored its cancel" in err and "still running after 2s; exiting without them" in err, err
    assert took < 60, err
