"""Traffic adapter blocks: where each domain's records live and how to reach them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from failover.policy._types import EnvName, Name, PositiveDuration, Strict, host_port, ip_port


class Tsig(Strict):
    name: str
    algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"] = (
        "hmac-sha256"
    )
    secret_env: EnvName


class Rfc2136Traffic(Strict):
    kind: Literal["rfc2136"]
    server: str = Field(description="host:port of the primary authoritative server")
    zone: str
    ttl: int = Field(default=30, ge=0, le=86400)
    tsig: Tsig | None = None
    timeout: PositiveDuration = 3.0

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        ip_port(v, 53)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.server, 53)


class ZonefileTraffic(Strict):
    kind: Literal["zonefile"]
    path: str = Field(description="zone file rewritten atomically; relative to the policy file")
    zone: str
    ttl: int = Field(default=30, ge=0, le=86400)
    reload_command: list[str] = Field(
        default_factory=list, description="run after each rewrite, e.g. ['rndc', 'reload', 'z.']"
    )


_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?$")
AWS_REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"


def _hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError(f"'{value}' is not a host name")
    return value.rstrip(".").lower()


Hostname = Annotated[str, BeforeValidator(lambda v: _hostname(str(v)))]


class _AwsCall(Strict):
    """How the boto3 adapters talk to AWS: botocore's own retry modes, no hand-written loop."""

    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard", description="botocore retry mode; 'adaptive' also rate-limits on throttling"
    )
    max_attempts: int = Field(default=5, ge=1, le=20, description="botocore attempts per call, retries included")
    timeout: PositiveDuration = Field(default=10.0, description="connect and read timeout of each call")


class AliasTarget(Strict):
    dns_name: Hostname = Field(description="e.g. my-alb-123.us-east-1.elb.amazonaws.com")
    hosted_zone_id: str = Field(
        pattern=r"^[A-Z0-9]{1,32}$",
        description="the load balancer's canonical hosted zone id, e.g. Z35SXDOTRQ7X7K",
    )
    evaluate_target_health: bool = False
    dualstack: bool = Field(default=False, description="publish an AAAA alias beside the A alias")


class Route53Traffic(_AwsCall):
    """The domain's A/AAAA RRset (or a per-region alias or CNAME) in a Route 53 hosted zone."""

    kind: Literal["route53"]
    hosted_zone_id: str = Field(pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$")
    ttl: int = Field(default=30, ge=0, le=86400)
    alias: dict[Name, AliasTarget] = Field(
        default_factory=dict,
        description="region -> alias target (ALB/NLB/CloudFront) published instead of addresses",
    )
    cname: dict[Name, Hostname] = Field(
        default_factory=dict, description="region -> host name published as a CNAME instead of addresses"
    )
    wait: PositiveDuration = Field(default=120.0, description="deadline for the change to be INSYNC")

    @model_validator(mode="after")
    def _one_target_kind(self) -> Route53Traffic:
        if self.alias and self.cname:
            raise ValueError("use either alias or cname, not both: a name holds one kind of record")
        return self

    @property
    def zone_id(self) -> str:
        return self.hosted_zone_id.removeprefix("/hostedzone/")


class CloudDnsTraffic(Strict):
    """The domain's A/AAAA RRset (or a per-region CNAME) in a Google Cloud DNS managed zone."""

    kind: Literal["clouddns"]
    project: str = Field(pattern=r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="project id")
    managed_zone: str = Field(
        pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", description="the zone's name, not its DNS name"
    )
    ttl: int = Field(default=30, ge=0, le=86400)
    cname: dict[Name, Hostname] = Field(
        default_factory=dict, description="region -> host name published as a CNAME instead of addresses"
    )
    endpoint: str | None = Field(
        default=None,
        description="API base URL of a local stand-in (e.g. http://127.0.0.1:8053); anonymous credentials. "
        "Default: https://dns.googleapis.com with Application Default Credentials",
    )
    timeout: PositiveDuration = Field(default=10.0, description="per call, retries of transient errors included")
    wait: PositiveDuration = Field(default=120.0, description="deadline for the change to be done")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError(f"'{v}' is not an http(s) base URL such as http://127.0.0.1:8053")
        return v.rstrip("/") if v else v


class EipTraffic(_AwsCall):
    """An Elastic IP kept on a healthy gateway replica of ONE region (EIPs are regional)."""

    kind: Literal["eip"]
    allocation_id: str = Field(pattern=r"^eipalloc-[0-9a-f]{8,17}$")
    gateways: dict[Name, Annotated[str, Field(pattern=r"^(i|eni)-[0-9a-f]{8,17}$")]] = Field(
        min_length=1, description="gateway name -> instance id (i-...) or network interface id (eni-...)"
    )
    aws_region: str | None = Field(
        default=None,
        pattern=AWS_REGION_PATTERN,
        description="where the address lives; default: the name of the policy region its gateways belong to",
    )
    wait: PositiveDuration = Field(default=30.0, description="deadline for DescribeAddresses to show the move")


Traffic = Annotated[
    Rfc2136Traffic | ZonefileTraffic | Route53Traffic | CloudDnsTraffic | EipTraffic,
    Field(discriminator="kind"),
]
