"""A small asyncio client for HAProxy's Runtime API (the ``stats socket``), and what it reads back.

Only the few commands the follower needs: ``show servers state <backend>``, ``set server
<backend>/<server> state ready|drain|maint``, ``... weight <w>`` and ``... addr <ip> port <p>``.
Each command gets its own connection, in HAProxy's non-interactive mode: HAProxy answers and
closes, so the answer is everything up to EOF, an error can be told from success by its text,
and a reloaded or restarted HAProxy needs no reconnect logic. Over a unix socket a command
takes well under a millisecond; commands for different servers run concurrently.

Why not a client library: ``haproxyadmin`` (PyPI, last release 0.2.4 in 2021) is blocking
socket I/O, which would stall the daemon's event loop (or need a thread per call) on the very
path that must move traffic at once, and it hides the error texts we want to show verbatim;
``haproxy-cli`` is a command-line tool. The protocol is one line out, text back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from failover.errors import ProxyError
from failover.policy._blocks import runtime_api_target

AdminState = Literal["ready", "drain", "maint"]

# srv_admin_state bits (HAProxy's include/haproxy/server-t.h)
_MAINT = 0x01 | 0x02 | 0x20 | 0x40  # forced, inherited, failed resolution, failed hostname
_DRAIN = 0x08 | 0x10  # forced, inherited


class RuntimeApiError(ProxyError):
    """HAProxy refused a command, or its Runtime API could not be reached or read."""


@dataclass(frozen=True, slots=True)
class ServerState:
    """One line of ``show servers state``."""

    name: str
    address: str
    port: int
    admin_bits: int
    operational: int  # 0 stopped (down), 1 starting, 2 running, 3 stopping
    weight: int  # srv_uweight: the current one
    initial_weight: int  # srv_iweight: from the configuration

    @property
    def admin(self) -> AdminState:
        if self.admin_bits & _MAINT:
            return "maint"
        return "drain" if self.admin_bits & _DRAIN else "ready"


def parse_servers_state(backend: str, text: str) -> dict[str, ServerState]:
    """``show servers state <backend>`` (format 1) -> server name -> state, in configuration order."""
    lines = text.splitlines()
    if len(lines) < 2 or lines[0].strip() != "1" or not lines[1].startswith("#"):
        answer = text.strip() or "nothing"
        if "find backend" in answer:
            raise RuntimeApiError(f"HAProxy has no backend '{backend}' (proxy.backend): it said: {answer}")
        raise RuntimeApiError(f"'show servers state {backend}': unexpected answer: {answer[:200]}")
    columns = lines[1].lstrip("# ").split()
    servers: dict[str, ServerState] = {}
    for line in lines[2:]:
        if not line.strip():
            continue
        row = dict(zip(columns, line.split(), strict=False))
        try:
            server = ServerState(
                name=row["srv_name"],
                address=row["srv_addr"],
                port=int(row.get("srv_port", "0")),
                admin_bits=int(row["srv_admin_state"]),
                operational=int(row["srv_op_state"]),
                weight=int(row["srv_uweight"]),
                initial_weight=int(row["srv_iweight"]),
            )
        except (KeyError, ValueError):
            raise RuntimeApiError(f"'show servers state {backend}': cannot read the line '{line}'") from None
        servers[server.name] = server
    return servers


@dataclass(frozen=True, slots=True)
class ServerStats:
    """The columns of ``show stat`` the data-path watch reads."""

    connect_errors: int  # econ: failed connects (every attempt, retries included)
    status: str  # UP, DOWN, MAINT, DRAIN, "no check", ...


def parse_stat(text: str) -> dict[str, ServerStats]:
    """``show stat <backend> 4 -1`` (CSV, servers only) -> server name -> stats."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RuntimeApiError(f"'show stat': unexpected answer: {text.strip()[:200] or 'nothing'}")
    columns = lines[0][2:].split(",")
    stats: dict[str, ServerStats] = {}
    for line in lines[1:]:
        row = dict(zip(columns, line.split(","), strict=False))
        if line and row.get("svname") not in (None, "BACKEND", "FRONTEND"):
            stats[row["svname"]] = ServerStats(int(row.get("econ") or 0), row.get("status", ""))
    return stats


class RuntimeApi:
    """``target``: ``unix:/path`` or ``tcp:host:port`` (a ``stats socket ... level admin``)."""

    def __init__(self, target: str, timeout: float = 2.0) -> None:
        self.target = target
        self.timeout = timeout
        _, where = runtime_api_target(target)
        self._path = where if isinstance(where, str) else None
        self._tcp = where if isinstance(where, tuple) else None

    async def command(self, line: str) -> str:
        """Send one command, return HAProxy's whole answer."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._tcp is None:
                    reader, writer = await asyncio.open_unix_connection(self._path)
                else:
                    reader, writer = await asyncio.open_connection(*self._tcp)
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    answer = await reader.read()  # to EOF: HAProxy closes after its answer
                finally:
                    writer.close()
        except TimeoutError:
            raise RuntimeApiError(
                f"HAProxy Runtime API {self.target}: no answer to '{line}' within {self.timeout}s"
            ) from None
        except OSError as exc:
            raise RuntimeApiError(
                f"HAProxy Runtime API {self.target}: cannot reach it: {exc.strerror or exc}"
            ) from None
        return answer.decode(errors="replace")

    async def servers(self, backend: str) -> dict[str, ServerState]:
        return parse_servers_state(backend, await self.command(f"show servers state {backend}"))

    async def server_stats(self, backend: str) -> dict[str, ServerStats]:
        return parse_stat(await self.command(f"show stat {backend} 4 -1"))

    async def set_state(self, backend: str, server: str, state: AdminState) -> None:
        await self._set(backend, server, f"state {state}")

    async def set_weight(self, backend: str, server: str, weight: str) -> None:
        """``weight``: a number, or a percentage of the configured weight (``100%``)."""
        await self._set(backend, server, f"weight {weight}")

    async def set_address(self, backend: str, server: str, address: str, port: int) -> None:
        answer = await self.command(f"set server {backend}/{server} addr {address} port {port}")
        if "changed" not in answer and "no need to change" not in answer:
            raise _refused(backend, server, f"addr {address} port {port}", answer)

    async def _set(self, backend: str, server: str, what: str) -> None:
        answer = await self.command(f"set server {backend}/{server} {what}")
        if answer.strip():  # success is an empty answer
            raise _refused(backend, server, what, answer)


def _refused(backend: str, server: str, what: str, answer: str) -> RuntimeApiError:
    text = answer.strip()
    if text.startswith("No such server"):
        return RuntimeApiError(f"HAProxy backend '{backend}' has no server '{server}'")
    if text.startswith("No such backend"):
        return RuntimeApiError(f"HAProxy has no backend '{backend}' (proxy.backend)")
    return RuntimeApiError(f"HAProxy refused 'set server {backend}/{server} {what}': {text[:200]}")
