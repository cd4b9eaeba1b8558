"""Probes against real loopback servers: healthy, refused, hanging, garbage, TLS expiry, DNS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from failover.localgw import LocalGateway
from failover.policy import DnsCheck, HttpCheck, TcpCheck, TlsCheck
from failover.probes import build_probe
from failover.probes.base import Target
from failover.probes.http import HttpProbe
from tests.support.bind import free_port


def target(address: str = "127.0.0.31", domain: str = "api.example.com") -> Target:
    return Target(domain, "east", "gw", address)


async def test_http_probe_up_error_refused_hang_garbage():
    port = free_port()
    gw = LocalGateway("gw", "127.0.0.31", port)
    await gw.start()
    probe = build_probe(target(), HttpCheck(kind="http", port=port, path="/ready", timeout="300ms", interval="1s"))
    try:
        ok = await probe.run()
        assert ok.ok and "200" in ok.reason and ok.latency > 0
        gw.mode = "error"
        bad = await probe.run()
        assert not bad.ok and "503" in bad.reason
        gw.mode = "garbage"
        garbage = await probe.run()
        assert not garbage.ok and "RemoteProtocolError" in garbage.reason
        gw.mode = "hang"
        hung = await probe.run()
        assert not hung.ok and "no answer in 0.3s" in hung.reason and hung.latency < 1.5
        await gw.stop()
        refused = await probe.run()
        assert not refused.ok and "refused" in refused.reason
    finally:
        await probe.aclose()
        await gw.stop()


async def test_http_probe_sends_the_domain_as_host_and_checks_body():
    port = free_port()
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.32", port)
    check = HttpCheck(kind="http", port=port, path="/ready", body_contains="sick", interval="1s", timeout="1s")
    probe = build_probe(target("127.0.0.32", "shop.example.org"), check)
    try:
        result = await probe.run()
        assert not result.ok and "body lacks 'sick'" in result.reason
        assert b"host: shop.example.org" in seen[0].lower()
    finally:
        await probe.aclose()
        server.close()
        await server.wait_closed()


async def test_tcp_probe():
    port = free_port()
    gw = LocalGateway("gw", "127.0.0.33", port)
    await gw.start()
    probe = build_probe(target("127.0.0.33"), TcpCheck(kind="tcp", port=port, interval="1s", timeout="500ms"))
    assert (await probe.run()).ok
    await gw.stop()
    assert not (await probe.run()).ok


def _cert(tmp_path: Path, days_left: float) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.mark.parametrize(("days_left", "ok", "warns"), [(90, True, False), (3, True, True), (-1, False, False)])
async def test_tls_probe_reads_expiry(tmp_path, days_left, ok, warns):
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.34", port, ssl=_cert(tmp_path, days_left))
    check = TlsCheck(kind="tls", port=port, warn_before="14d", interval="60s", timeout="2s")
    try:
        result = await build_probe(target("127.0.0.34"), check).run()
    finally:
        server.close()
        await server.wait_closed()
    assert result.ok is ok, result.reason
    assert (result.warning is not None) is warns
    if warns:
        assert "expires in" in (result.warning or "")
    if not ok:
        assert "expired" in result.reason


async def test_https_probe_sends_host_and_sni_per_domain_and_verifies_when_asked(tmp_path):
    port = free_port()
    context = _cert(tmp_path, 90)  # self-signed for api.example.com
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,misc]
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthy")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.35", port, ssl=context)
    fields = {"kind": "http", "scheme": "https", "port": port, "body_contains": "healthy", "interval": "1s"}
    lenient = build_probe(target("127.0.0.35"), HttpCheck(**fields, timeout="2s"))
    strict = build_probe(target("127.0.0.35"), HttpCheck(**fields, timeout="2s", verify_tls=True))
    try:
        ok = await lenient.run()
        refused = await strict.run()
    finally:
        await lenient.aclose()
        await strict.aclose()
        server.close()
    assert isinstance(lenient, HttpProbe)  # https stays with httpx
    assert ok.ok, ok.reason
    assert names[0] == "api.example.com" and b"host: api.example.com" in heads[0].lower()
    assert not refused.ok and "certificate verify failed" in refused.reason and "\n" not in refused.reason


async def test_dns_probe_against_bind(bind):
    check = DnsCheck(
        kind="dns", server=bind.server, qname="ns.example.com", expect=["127.0.0.1"], interval="1s", timeout="1s"
    )
    assert (await build_probe(target(), check).run()).ok
    wrong = DnsCheck(
        kind="dns", server=bind.server, qname="ns.example.com", expect=["127.0.0.9"], interval="1s", timeout="1s"
    )
    result = await build_probe(target(), wrong).run()
    assert not result.ok and "lacks 127.0.0.9" in result.reason
