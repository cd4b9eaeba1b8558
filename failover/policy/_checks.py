"""Health checks a domain runs against every gateway."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from failover.policy._types import Port, PositiveDuration, Strict, ip_port


class _Check(Strict):
    interval: PositiveDuration = 2.0
    timeout: PositiveDuration = 1.0


class HttpCheck(_Check):
    kind: Literal["http"]
    port: Port = 80
    path: str = "/"
    scheme: Literal["http", "https"] = "http"
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default=[200], min_length=1)
    body_contains: str | None = None
    host: str | None = Field(default=None, description="Host header and SNI; default: the domain")
    verify_tls: bool = False


class TcpCheck(_Check):
    kind: Literal["tcp"]
    port: Port


class TlsCheck(_Check):
    kind: Literal["tls"]
    port: Port = 443
    warn_before: PositiveDuration = 14 * 86400.0
    interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 2.0


class DnsCheck(_Check):
    kind: Literal["dns"]
    port: Port = 53
    server: str | None = Field(default=None, description="host:port; default: the gateway")
    qname: str | None = Field(default=None, description="default: the domain")
    rdtype: Literal["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA"] = "A"
    expect: list[str] = Field(default_factory=list, description="values the answer must hold")

    @field_validator("server")
    @classmethod
    def _server(cls, v: str | None) -> str | None:
        if v is not None:
            ip_port(v, 53)
        return v


Check = Annotated[HttpCheck | TcpCheck | TlsCheck | DnsCheck, Field(discriminator="kind")]
