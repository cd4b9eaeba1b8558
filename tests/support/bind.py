"""A real BIND 9 (`named -g`) on 127.0.0.1 and a free port, with a TSIG key and a dynamic zone.

Each instance gets a fresh directory with a copied zone file (named writes a journal beside
it). In CI a missing ``named`` fails the test run; elsewhere the tests skip and say what to
install.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import AuthoritativeServer


def named_binary() -> str | None:
    return shutil.which("named") or next(
        (p for p in ("/usr/sbin/named", "/usr/local/sbin/named") if os.access(p, os.X_OK)), None
    )


def require_named() -> str:
    binary = named_binary()
    if binary is None:
        message = "BIND 9 is not installed: apt-get install -y bind9 bind9-dnsutils"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return binary


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


ZONE_TEMPLATE = """$TTL 60
@   IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 30
@   IN NS  ns.{zone}
ns  IN A   127.0.0.1
{extra}
"""


@dataclass
class Bind(AuthoritativeServer):
    """A named of our own on a free loopback port, with a TSIG key allowed to update its zone."""

    def log(self) -> str:
        path = self.workdir / "named.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def start_bind(workdir: Path, zone: str = "example.com.", extra_records: str = "", deadline: float = 20.0) -> Bind:
    binary = require_named()
    workdir.mkdir(parents=True, exist_ok=True)
    zone = zone if zone.endswith(".") else zone + "."
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    bind = Bind(zone, free_port(), "failover-test.", secret, "hmac-sha256", workdir)
    zone_file = workdir / "zone.db"
    zone_file.write_text(ZONE_TEMPLATE.format(zone=zone, extra=extra_records))
    conf = workdir / "named.conf"
    conf.write_text(f"""
options {{
    directory "{workdir}";
    pid-file "{workdir}/named.pid";
    listen-on port {bind.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
}};
controls {{ }};
key "{bind.key_name}" {{ algorithm {bind.algorithm}; secret "{secret}"; }};
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    allow-update {{ key "{bind.key_name}"; }};
}};
""")
    log = (workdir / "named.log").open("wb")
    bind.process = subprocess.Popen(
        [binary, "-g", "-n", "1", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
    )
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if bind.process.poll() is not None:
            raise RuntimeError(f"named exited with {bind.process.returncode}:\n{bind.log()}")
        if bind.soa_ok():
            return bind
        time.sleep(0.05)
    bind.stop()
    raise RuntimeError(f"named did not answer within {deadline}s:\n{bind.log()}")
