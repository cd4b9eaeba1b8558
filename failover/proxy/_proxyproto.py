"""PROXY protocol headers (v1 text, v2 binary) sent to the gateway before the client's bytes.

See https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt. The gateway learns the
client's address and the address the client connected to. Only the ``PROXY`` command over
TCP is produced; when an address is not IPv4/IPv6 (or unknown) the header says so (v1
``UNKNOWN``, v2 ``LOCAL``) and the gateway uses the connection's own addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, Literal

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"
_V1_UNKNOWN = b"PROXY UNKNOWN\r\n"

Version = Literal["v1", "v2"]


def _ip(addr: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(addr, tuple) or len(addr) < 2:
        return None
    try:
        ip = ipaddress.ip_address(addr[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d
    return ip


def header(version: Version, source: Any, destination: Any) -> bytes:
    """The header for a client at ``source`` that connected to ``destination``.

    Both are socket addresses as asyncio gives them (``(host, port)`` or
    ``(host, port, flowinfo, scope)``), or ``None`` when unknown.
    """
    src, dst = _ip(source), _ip(destination)
    if src is None or dst is None or src.version != dst.version:
        return _V1_UNKNOWN if version == "v1" else _V2_LOCAL
    sport, dport = int(source[1]), int(destination[1])
    if version == "v1":
        family = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode("ascii")
    if src.version == 4:
        body = src.packed + dst.packed + struct.pack("!HH", sport, dport)
        return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + b"\x21\x21" + struct.pack("!H", len(body)) + body


def parse_v2(data: bytes) -> tuple[tuple[str, int] | None, tuple[str, int] | None, int]:
    """Parse a v2 header at the start of ``data``: ``(source, destination, header length)``.

    For tests and tools (a gateway would do this). Addresses are ``None`` for ``LOCAL``.
    Raises ``ValueError`` when ``data`` does not start with a complete v2 header.
    """
    if len(data) < 16 or not data.startswith(V2_SIGNATURE):
        raise ValueError("no PROXY v2 signature")
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ValueError(f"PROXY version {ver_cmd >> 4}, expected 2")
    if len(data) < 16 + length:
        raise ValueError("PROXY v2 header is truncated")
    body = data[16 : 16 + length]
    if ver_cmd & 0x0F == 0:  # LOCAL
        return None, None, 16 + length
    if fam == 0x11 and length >= 12:
        src4 = str(ipaddress.IPv4Address(body[0:4]))
        dst4 = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack("!HH", body[8:12])
        return (src4, sport), (dst4, dport), 16 + length
    if fam == 0x21 and length >= 36:
        src6 = str(ipaddress.IPv6Address(body[0:16]))
        dst6 = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
        return (src6, sport), (dst6, dport), 16 + length
    raise ValueError(f"unsupported PROXY v2 family 0x{fam:02x}")
