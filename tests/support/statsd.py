"""A real StatsD server: Etsy's reference daemon (npm ``statsd`` 0.9, run by node) on 127.0.0.1,
a free UDP port for metrics and a free TCP port for its admin interface.

StatsD 0.9 parses DogStatsD tags (``name:1|c|#domain:api.example.com,env:prod``) into Graphite
tags, so one receiver serves both protocols: the key it keeps is ``name;domain=api.example.com;
env=prod`` (``:`` becomes ``=``, and it drops characters outside ``[A-Za-z0-9_.;=-]``, turning
``/`` into ``-``). Its flush interval is an hour, so nothing is reset during a test: the admin
interface's ``counters``, ``gauges`` and ``timers`` show everything received since the start.
Its ``stats`` command counts the lines it could not parse (``messages.bad_lines_seen``).

In CI a missing statsd fails the test run; elsewhere the tests skip and say what to install.
Only the process started here is signalled, by its pid, and it is waited for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.bind import free_port
from tests.support.servers import stop_process

HOST = "127.0.0.1"
INSTALL = "apt-get install -y nodejs npm && npm install --global --omit=optional statsd@0.9.0"
_KEY_VALUE = re.compile(r"(?:'([^']*)'|([\w.;=-]+)):\s*(\[[^\]]*\]|[^,\n}]+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_MORE_ITEMS = re.compile(r"\.\.\. (\d+) more items?")


def statsd_script() -> str | None:
    """stats.js of an installed statsd: $FAILOVER_STATSD_JS, else the global npm modules."""
    candidates = [os.environ.get("FAILOVER_STATSD_JS", "")]
    candidates += [f"{root}/statsd/stats.js" for root in ("/usr/local/lib/node_modules", "/usr/lib/node_modules")]
    npm = shutil.which("npm")
    if npm is not None and not any(c and os.path.isfile(c) for c in candidates):
        root = subprocess.run([npm, "root", "--global"], capture_output=True, text=True, timeout=30).stdout.strip()
        candidates.append(f"{root}/statsd/stats.js")
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def require_statsd() -> tuple[str, str]:
    node = shutil.which("node") or shutil.which("nodejs")
    script = statsd_script()
    if node is None or script is None:
        message = f"the StatsD daemon is not installed: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return node, script


def _parse(text: str) -> dict[str, str]:
    """Node's ``util.inspect`` of a flat object -> {key: value text}."""
    body = text.split("END")[0]
    return {quoted or bare: value.strip() for quoted, bare, value in _KEY_VALUE.findall(body)}


@dataclass
class StatsdReceiver:
    node: str
    script: str
    directory: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, deadline: float = 20.0) -> StatsdReceiver:
        config = {
            "address": HOST,
            "port": self.port,
            "mgmt_address": HOST,
            "mgmt_port": self.admin_port,
            "flushInterval": 3_600_000,  # nothing is flushed (and reset) while a test reads
            "backends": [],
            "automaticConfigReload": False,
        }
        (self.directory / "config.js").write_text(json.dumps(config))
        with (self.directory / "statsd.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.node, self.script, str(self.directory / "config.js")], stdout=log, stderr=subprocess.STDOUT
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"statsd exited with {self.process.returncode}:\n{self.log()}")
            try:
                if "health: up" in self.command("health"):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"statsd did not answer on its admin port within {deadline}s:\n{self.log()}")

    def command(self, name: str, timeout: float = 5.0) -> str:
        """One admin command; the answer up to its END (``health`` has none: its one line)."""
        with socket.create_connection((HOST, self.admin_port), timeout=timeout) as conn:
            conn.sendall(name.encode() + b"\n")
            data = b""
            while not data.endswith(b"END\n\n") and not (name == "health" and data.endswith(b"\n")):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    @staticmethod
    def key(name: str, **tags: str) -> str:
        """The key StatsD keeps for a DogStatsD line with these tags, in the order sent."""
        key = name + "".join(f";{k}={v}" for k, v in tags.items())
        return re.sub(r"[^A-Za-z0-9_.;=-]", "", key.replace("/", "-"))

    def counters(self) -> dict[str, float]:
        return {k: float(v) for k, v in _parse(self.command("counters")).items()}

    def gauges(self) -> dict[str, float]:
        return {k: float(v) for k, v in _parse(self.command("gauges")).items()}

    def timers(self) -> dict[str, list[float]]:
        """Each timer's samples (node shows 100 at most: the rest count as NaN entries)."""
        out: dict[str, list[float]] = {}
        for key, value in _parse(self.command("timers")).items():
            more = _MORE_ITEMS.search(value)
            samples = [float(x) for x in _NUMBER.findall(_MORE_ITEMS.sub("", value))]
            out[key] = samples + [float("nan")] * (int(more.group(1)) if more else 0)
        return out

    def bad_lines(self) -> int:
        match = re.search(r"messages\.bad_lines_seen: (\d+)", self.command("stats"))
        assert match is not None, "statsd's stats have no bad_lines_seen"
        return int(match.group(1))

    def log(self) -> str:
        path = self.directory / "statsd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@pytest.fixture
def statsd_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatsdReceiver]:
    """A fresh StatsD server per test (nothing left over from another test's metrics)."""
    node, script = require_statsd()
    receiver = StatsdReceiver(node, script, tmp_path_factory.mktemp("statsd")).start()
    try:
        yield receiver
    finally:
        receiver.stop()
