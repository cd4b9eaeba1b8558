"""A throwaway single-member etcd for ``failover demo --cluster``: free loopback ports, a data
directory in the demo's temporary folder, short Raft timings, its log beside it.

Only the process started here is signalled, by its pid. When coreutils' ``timeout`` is there,
etcd runs under it with the demo's remaining budget: should the demo die without its shutdown
(the watchdog's exit, a SIGKILL), etcd still ends on its own instead of lingering.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

INSTALL = "apt-get install etcd-server"
HOST = "127.0.0.1"


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next(
        (p for p in ("/usr/bin/etcd", "/usr/local/bin/etcd") if os.access(p, os.X_OK)), None
    )


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on loopback (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind((HOST, 0))
            sockets.append(probe)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for probe in sockets:
            probe.close()


class LocalEtcd:
    def __init__(self, binary: str, folder: Path, lifetime: float) -> None:
        self.binary = binary
        self.folder = folder
        self.lifetime = lifetime  # seconds after which etcd ends itself (with `timeout`)
        self.client_port, self.peer_port = _free_ports(2)
        self.log_path = folder / "etcd.log"
        self.data_dir = folder / "etcd.data"  # 60+ MB of preallocated WAL: removed once etcd has stopped
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        client, peer = f"http://{self.endpoint}", f"http://{HOST}:{self.peer_port}"
        args = [
            self.binary, "--name", "demo", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"demo={peer}", "--initial-cluster-state", "new",
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--logger", "zap", "--log-outputs", "stderr",
        ]  # fmt: skip
        limiter = shutil.which("timeout")
        if limiter is not None:  # TERM at the end of its lifetime, KILL 5 s later
            args = [limiter, "-k", "5", f"{max(self.lifetime, 1.0):.0f}", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}  # no stray ETCD_* settings
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def log_tail(self, limit: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    async def healthy(self) -> bool:
        """etcd's ``GET /health``: it has a leader and serves reads. False if it exited."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=0.5) as http:
                answer = await http.get(f"http://{self.endpoint}/health")
            return answer.status_code == 200 and answer.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def exited(self) -> str | None:
        """Why etcd is not running, with its log's tail, or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"etcd exited with code {self.process.returncode}; its log ends:\n{self.log_tail()}"

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to our pid (``timeout`` passes it on to etcd), then SIGKILL; never waits past
        twice ``timeout``. The data directory goes once etcd has exited; its log stays."""
        process = self.process
        if process is None:
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.kill(process.pid, signum)
            end = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.05)
        if process.poll() is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
