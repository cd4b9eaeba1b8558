"""A real HAProxy (Debian's `haproxy`, 2.6) in the foreground on loopback, for tests and benchmarks.

It listens on a free 127.0.0.1 port (``mode tcp``) and relays to one backend whose servers
are named after the test policy's gateways; its Runtime API is a ``stats socket`` with
``level admin`` on a unix socket in the instance's directory. Servers start ``ready`` (as an
operator's HAProxy would, before the coordinator takes over). In CI a missing ``haproxy`` fails
the test run; elsewhere the tests skip and say what to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import stop_process


def require_haproxy() -> str:
    binary = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        message = "HAProxy is not installed: apt-get install -y haproxy"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return binary


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """global
    stats socket {socket} mode 600 level admin
    stats timeout 2m
defaults
    mode tcp
    timeout connect 500ms
    timeout client 30s
    timeout server 30s
    # a refused connect is retried on another server of the backend at once
    retries 2
    option redispatch 1
frontend front
    bind 127.0.0.1:{port}
    default_backend {backend}
backend {backend}
    balance roundrobin
{servers}
"""


@dataclass
class Haproxy:
    directory: Path
    port: int
    backend: str
    process: subprocess.Popen[bytes]
    log: Path
    socket_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.socket_path = self.directory / "admin.sock"

    @property
    def runtime_api(self) -> str:
        return f"unix:{self.socket_path}"

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One Runtime API command, answered in full (HAProxy closes the connection after it)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show servers state`` of the backend: server name -> column -> value."""
        lines = self.command(f"show servers state {self.backend}").splitlines()
        header = lines[1].lstrip("# ").split()
        return {row[3]: dict(zip(header, row, strict=False)) for row in (x.split() for x in lines[2:] if x)}

    def admin_state(self, server: str) -> str:
        """``ready``, ``drain`` or ``maint`` from the admin-state bits (HAProxy's server-t.h; 0x04 only
        remembers that the configuration said ``disabled``)."""
        bits = int(self.servers()[server]["srv_admin_state"])
        if bits & 0x63:  # forced, inherited, failed resolution, failed hostname
            return "maint"
        return "drain" if bits & 0x18 else "ready"

    def stop(self) -> None:
        stop_process(self.process)


def start_haproxy(
    directory: Path,
    servers: dict[str, str],
    server_port: int,
    backend: str = "gateways",
    extra_servers: str = "",
) -> Haproxy:
    """``servers``: name -> IP, all relayed to ``server_port``; ``extra_servers`` are config lines
    added to the backend as they are (e.g. a ``server-template`` of spare slots)."""
    binary = require_haproxy()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    lines = [f"    server {name} {address}:{server_port}" for name, address in servers.items()]
    if extra_servers:
        lines.append(extra_servers)
    config = directory / "haproxy.cfg"
    config.write_text(
        CONFIG.format(socket=directory / "admin.sock", port=port, backend=backend, servers="\n".join(lines))
    )
    check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
    log = directory / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
    proxy = Haproxy(directory, port, backend, process, log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}:\n{log.read_text()}")
        try:
            if proxy.servers():
                return proxy
        except (OSError, IndexError):
            pass
        time.sleep(0.02)
    proxy.stop()
    raise RuntimeError(f"haproxy did not answer on its Runtime API within 10s:\n{log.read_text()}")
