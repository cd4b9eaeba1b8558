"""A real PowerDNS Authoritative Server (`pdns_server`) on 127.0.0.1 and a free port, with the
gsqlite3 backend, RFC 2136 updates enabled and a TSIG key allowed to update the zone.

Each instance gets a fresh directory holding its own ``pdns.conf`` (``--config-dir``, so
Debian's /etc/powerdns is never read), the sqlite database, and the control socket
(``socket-dir``). Debian's package may start its own pdns service on port 53; ours listens on
a free port, so the two never meet. The zone is created with ``pdnsutil``; the key and its
right to update the zone (TSIG-ALLOW-DNSUPDATE) are two SQL rows, as docs/dns-servers.md shows.

The packet and query caches keep their defaults (20 s; 60 s for negative answers), as in
production: PowerDNS purges them for the names an UPDATE changes, so what failover writes is
served at once; an edit behind its back (``pdnsutil``, SQL) is served only when the cache
expires. The contract suite shows the first, a PowerDNS-only test the second (and that the
fence still holds). See docs/dns-servers.md.

In CI a missing ``pdns_server`` fails the test run; elsewhere the tests skip and say what to
install.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bind import free_port
from tests.support.servers import AuthoritativeServer

INSTALL = "apt-get install -y pdns-server pdns-backend-sqlite3"
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)),
        None,
    )


def require_pdns() -> tuple[str, str, str]:
    """(pdns_server, pdnsutil, pdns_control), or a skip (a failure in CI) naming the packages."""
    server, util, control = _which("pdns_server"), _which("pdnsutil"), _which("pdns_control")
    if server is None or util is None or control is None or not SCHEMA.exists():
        message = f"PowerDNS with the sqlite3 backend is not installed: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)
    return server, util, control


@dataclass
class Pdns(AuthoritativeServer):
    """Same face as tests.support.bind.Bind: zone, host/port, and the TSIG key."""

    pdnsutil: str
    pdns_control: str

    def util(self, *args: str) -> str:
        """Run pdnsutil against this instance's configuration (and so its database)."""
        done = subprocess.run(
            [self.pdnsutil, f"--config-dir={self.workdir}", *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pdnsutil {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def stored(self, name: str, rdtype: str) -> list[str]:
        """What the database holds, past PowerDNS's caches (TXT as stored: quoted), sorted."""
        with contextlib.closing(sqlite3.connect(self.workdir / "pdns.sqlite3")) as db:
            rows = db.execute(
                "SELECT content FROM records WHERE name = ? AND type = ?", (name.rstrip(".").lower(), rdtype)
            ).fetchall()
        return sorted(str(row[0]) for row in rows)

    def control(self, *args: str) -> str:
        """Talk to the running server over its control socket (pdns_control)."""
        done = subprocess.run(
            [self.pdns_control, f"--config-dir={self.workdir}", *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pdns_control {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def log(self) -> str:
        path = self.workdir / "pdns.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _config(pdns: Pdns, database: Path) -> str:
    return f"""
launch=gsqlite3
gsqlite3-database={database}
local-address=127.0.0.1
local-port={pdns.port}
socket-dir={pdns.workdir}
daemon=no
guardian=no
write-pid=no
disable-syslog=yes
loglevel=4
log-timestamp=no
security-poll-suffix=
webserver=no
api=no
primary=no
secondary=no
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
default-soa-content=ns.@ hostmaster.@ 1 3600 600 86400 30
"""


def start_pdns(
    workdir: Path,
    zone: str = "example.com.",
    extra_config: str = "",
    key_name: str = "failover-test.",
    deadline: float = 20.0,
) -> Pdns:
    server_binary, util_binary, control_binary = require_pdns()
    workdir.mkdir(parents=True, exist_ok=True)
    zone = zone if zone.endswith(".") else zone + "."
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    pdns = Pdns(zone, free_port(), key_name, secret, "hmac-sha256", workdir, util_binary, control_binary)
    database = workdir / "pdns.sqlite3"
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.executescript(SCHEMA.read_text())
    (workdir / "pdns.conf").write_text(_config(pdns, database) + extra_config)

    apex = zone.rstrip(".")
    pdns.util("create-zone", apex, f"ns.{apex}")
    # The key and its right to update the zone, as SQL (what `pdnsutil import-tsig-key` and
    # `pdnsutil set-meta ZONE TSIG-ALLOW-DNSUPDATE KEY` write, each pdnsutil run costing ~0.2 s).
    # `activate-tsig-key` would only grant AXFR.
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "INSERT INTO tsigkeys (name, algorithm, secret) VALUES (?, ?, ?)",
            (pdns.key_name.rstrip("."), pdns.algorithm, secret),
        )
        db.execute(
            "INSERT INTO domainmetadata (domain_id, kind, content)"
            " SELECT id, 'TSIG-ALLOW-DNSUPDATE', ? FROM domains WHERE name = ?",
            (pdns.key_name.rstrip("."), apex),
        )

    log = (workdir / "pdns.log").open("wb")
    pdns.process = subprocess.Popen(
        [server_binary, f"--config-dir={workdir}"], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
    )
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if pdns.process.poll() is not None:
            raise RuntimeError(f"pdns_server exited with {pdns.process.returncode}:\n{pdns.log()}")
        if pdns.soa_ok():
            return pdns
        time.sleep(0.05)
    pdns.stop()
    raise RuntimeError(f"pdns_server did not answer within {deadline}s:\n{pdns.log()}")
