"""The policy file: its model (pydantic v2), loading with operator-friendly errors, and schema.

One service per file. Durations are strings (``500ms``, ``2s``, ``5m``, ``1h``, ``14d``) and
are held as float seconds. Secrets are never in the file: blocks name environment variables
(``secret_env``, ``token_env``, ``webhook_env``), resolved only when used.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from failover.errors import PolicyError, UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h|d)$"


def parse_duration(value: object) -> float:
    """``"2s"`` -> 2.0. Bare numbers are refused: a unit makes the file readable."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is a string such as '500ms', '2s', '5m', '1h', '14d'; got {value!r}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"'{value}' is not a duration: use e.g. '500ms', '2s', '5m', '1h', '14d'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
PositiveDuration = Annotated[
    float,
    BeforeValidator(lambda v: _positive(parse_duration(v))),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "description": "> 0"}),
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Port = Annotated[int, Field(ge=1, le=65535)]


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 or IPv6 address") from None


IPAddress = Annotated[str, BeforeValidator(lambda v: _check_ip(str(v)))]


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:5353"``, ``"[::1]:53"`` or ``"ns1"`` -> (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or str(default_port)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{value}' is not host:port")
    return host, int(port)


class Strict(BaseModel):
    """Rejects unknown keys, naming the closest valid key."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {
                f.alias for f in cls.model_fields.values() if f.alias
            }
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    valid = ", ".join(sorted(known))
                    raise ValueError(f"unknown key '{key}'{hint}; valid keys: {valid}")
        return data


class Gateway(Strict):
    name: Name
    address: IPAddress


class Region(Strict):
    name: Name
    priority: int = Field(default=100, description="lower wins")
    gateways: list[Gateway] = Field(min_length=1)


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


Check = Annotated[HttpCheck | TcpCheck | TlsCheck | DnsCheck, Field(discriminator="kind")]


class Tsig(Strict):
    name: str
    algorithm: Literal[
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
    ] = "hmac-sha256"
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
        _host_port(v, 53)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return _host_port(self.server, 53)


class ZonefileTraffic(Strict):
    kind: Literal["zonefile"]
    path: str = Field(description="zone file rewritten atomically; relative to the policy file")
    zone: str
    ttl: int = Field(default=30, ge=0, le=86400)
    reload_command: list[str] = Field(
        default_factory=list, description="run after each rewrite, e.g. ['rndc', 'reload', 'z.']"
    )


_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?$"
)
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
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="botocore attempts per call, retries included"
    )
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
    timeout: PositiveDuration = Field(
        default=10.0, description="per call, retries of transient errors included"
    )
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
        default=None, pattern=AWS_REGION_PATTERN,
        description="where the address lives; default: the name of the policy region its gateways belong to",
    )
    wait: PositiveDuration = Field(
        default=30.0, description="deadline for DescribeAddresses to show the move"
    )


Traffic = Annotated[
    Rfc2136Traffic | ZonefileTraffic | Route53Traffic | CloudDnsTraffic | EipTraffic,
    Field(discriminator="kind"),
]


def _traffic_problems(policy: Policy) -> list[tuple[str, str]]:
    """Cross-field checks of the cloud traffic blocks (route53, clouddns, eip)."""
    problems: list[tuple[str, str]] = []
    regions = [r.name for r in policy.regions]
    region_of = {gw.name: r.name for r in policy.regions for gw in r.gateways}

    def unknown(name: str, known: list[str], what: str) -> str:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {what} '{name}'{hint}; {what}s: {', '.join(known)}"

    for di, domain in enumerate(policy.domains):
        for ti, block in enumerate(domain.traffic):
            at = f"domains[{di}].traffic[{ti}]"
            if isinstance(block, Route53Traffic | CloudDnsTraffic):
                targets: dict[str, object] = dict(block.cname)
                field_name = "cname"
                if isinstance(block, Route53Traffic) and block.alias:
                    targets, field_name = dict(block.alias), "alias"
                if targets:
                    for name in targets:
                        if name not in regions:
                            problems.append((f"{at}.{field_name}.{name}", unknown(name, regions, "region")))
                    missing = [r for r in regions if r not in targets]
                    if missing:
                        problems.append((
                            f"{at}.{field_name}",
                            f"no target for region(s) {', '.join(missing)}: "
                            "every region can be elected primary",
                        ))
            if isinstance(block, EipTraffic):
                homes: dict[str, list[str]] = {}
                for gw in block.gateways:
                    if gw not in region_of:
                        problems.append((f"{at}.gateways.{gw}", unknown(gw, sorted(region_of), "gateway")))
                    else:
                        homes.setdefault(region_of[gw], []).append(gw)
                if len(homes) > 1:
                    spread = "; ".join(f"{r}: {', '.join(gws)}" for r, gws in homes.items())
                    problems.append((
                        f"{at}.gateways",
                        f"maps gateways of more than one region ({spread}). An Elastic IP is regional and "
                        "cannot move between regions: use one eip block per region and let a DNS adapter "
                        "(route53, clouddns, rfc2136) move traffic across regions",
                    ))
                elif len(homes) == 1 and block.aws_region is None:
                    home = next(iter(homes))
                    if not re.match(AWS_REGION_PATTERN, home):
                        problems.append((
                            f"{at}.aws_region",
                            f"required: region '{home}' is not an AWS region name, so set the AWS region "
                            "where the Elastic IP lives (e.g. us-east-1)",
                        ))
            ids = list(block.gateways.values()) if isinstance(block, EipTraffic) else []
            for dup in sorted({i for i in ids if ids.count(i) > 1}):
                problems.append((f"{at}.gateways", f"'{dup}' is mapped to more than one gateway"))
    return problems


class Domain(Strict):
    name: str
    checks: list[Check] = Field(min_length=1)
    traffic: list[Traffic] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        labels = v.rstrip(".").split(".")
        if len(labels) < 2 or not all(re.fullmatch(r"[A-Za-z0-9_*]([A-Za-z0-9-]*[A-Za-z0-9])?", x) for x in labels):
            raise ValueError(f"'{v}' is not a domain name")
        return v.rstrip(".").lower()


class Health(Strict):
    rise: int = Field(default=2, ge=1, le=100)
    fall: int = Field(default=3, ge=1, le=100)
    min_healthy_gateways: int = Field(default=1, ge=1)


class Election(Strict):
    failback: Literal["manual", "auto"] = "manual"
    failback_after: Duration = 600.0
    hold_down: Duration = 300.0
    max_failovers_per_hour: int = Field(default=4, ge=1)


class State(Strict):
    url: str = "sqlite:///failover-state.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith("etcd://")):
            raise ValueError("use sqlite:////abs/path.db, sqlite:///relative.db or etcd://host:2379/prefix")
        return v


AlertEvent = Literal[
    "failover", "failback", "elected", "region_down", "region_up", "override_set", "override_released",
    "override_expired", "drain", "undrain", "adapter_error", "lost_race", "certificate_expiring",
]


def _http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://\S+$", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


class SlackAlert(Strict):
    """A Slack incoming webhook (Block Kit message). Delivery is queued, retried, de-duplicated."""

    kind: Literal["slack"]
    webhook_env: EnvName = Field(description="environment variable holding the incoming-webhook URL (a secret)")
    link: str | None = Field(
        default=None, description="URL shown on every message (a dashboard, the runbook); '{domain}' is filled in"
    )
    name: Name | None = Field(default=None, description="label in metrics and logs; default: slack, slack-2, ...")
    events: list[AlertEvent] | None = Field(default=None, description="only these events; default: all")
    dedupe_window: Duration = Field(
        default=600.0, description="the same event again within this window is sent once; 0s: send every repeat"
    )
    timeout: PositiveDuration = Field(default=5.0, description="per delivery attempt")
    retries: int = Field(default=5, ge=0, le=20, description="attempts after the first, with exponential backoff")
    queue_size: int = Field(default=100, ge=1, le=100000, description="when full, the oldest waiting alert is dropped")

    @field_validator("link")
    @classmethod
    def _link(cls, v: str | None) -> str | None:
        return _http_url(v)


class WebhookAlert(Strict):
    """A generic JSON webhook, signed ``X-Failover-Signature: sha256=<hex HMAC of the body>``."""

    kind: Literal["webhook"]
    url_env: EnvName = Field(description="environment variable holding the URL")
    secret_env: EnvName | None = Field(
        default=None, description="environment variable holding the HMAC-SHA256 signing key; unsigned without it"
    )
    link: str | None = Field(default=None, description="URL put in every payload; '{domain}' is filled in")
    name: Name | None = Field(default=None, description="label in metrics and logs; default: webhook, webhook-2, ...")
    events: list[AlertEvent] | None = Field(default=None, description="only these events; default: all")
    dedupe_window: Duration = Field(
        default=600.0, description="the same event again within this window is sent once; 0s: send every repeat"
    )
    timeout: PositiveDuration = Field(default=5.0, description="per delivery attempt")
    retries: int = Field(default=5, ge=0, le=20, description="attempts after the first, with exponential backoff")
    queue_size: int = Field(default=100, ge=1, le=100000, description="when full, the oldest waiting alert is dropped")

    @field_validator("link")
    @classmethod
    def _link(cls, v: str | None) -> str | None:
        return _http_url(v)


Alert = Annotated[SlackAlert | WebhookAlert, Field(discriminator="kind")]


class Proxy(Strict):
    listen: str = "0.0.0.0:8443"
    upstream_port: Port = 443
    mode: Literal["tcp"] = "tcp"
    connect_timeout: PositiveDuration = 1.0
    drain_time: Duration = Field(
        default=30.0,
        description="after a route change, connections to a gateway no longer first in line are closed after this",
    )
    domain: str | None = Field(default=None, description="whose decision it follows; default: the first")
    workers: int = Field(default=1, ge=1, le=64, description="processes sharing the port with SO_REUSEPORT")
    max_connections: int = Field(
        default=10000, ge=1, description="client connections, over all workers; beyond it new ones are closed at once"
    )
    idle_timeout: Duration = Field(
        default=3600.0, description="close a connection after this long without a byte either way; 0s: never"
    )
    proxy_protocol: Annotated[
        Literal["v1", "v2"] | None,
        WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["v1", "v2"]}, {"type": "null"}]}),
    ] = Field(default=None, description="send a PROXY protocol header to the gateways: v1, v2 (true), or off")
    balance: Literal["round_robin", "least_connections"] = "round_robin"
    ejection_time: Duration = Field(
        default=10.0, description="skip a gateway that failed a connect for this long (passive ejection); 0s: never"
    )
    backlog: int = Field(default=1024, ge=1, le=65535, description="listen queue length")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host_port(v, 8443)
        return v

    @field_validator("proxy_protocol", mode="before")
    @classmethod
    def _proxy_protocol(cls, v: object) -> object:
        if v is True:
            return "v2"
        if v is False:
            return None
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return _host_port(self.listen, 8443)


class Api(Strict):
    """The admin API of ``failover run``. A non-loopback ``listen`` needs the token to be set."""

    listen: str = "127.0.0.1:8877"
    token_env: EnvName = Field(
        default="FAILOVER_API_TOKEN", description="environment variable holding the bearer token for POST calls"
    )
    token_name: Name = Field(default="api", description="who the token stands for, in the audit log and alerts")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host_port(v, 8877)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return _host_port(self.listen, 8877)


class Policy(Strict):
    service: Name
    observer: str
    regions: list[Region] = Field(min_length=1)
    domains: list[Domain] = Field(min_length=1)
    health: Health = Health()
    election: Election = Election()
    state: State = State()
    alerts: list[Alert] = Field(default_factory=list)
    proxy: Proxy | None = None
    api: Api | None = None
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The file this policy was loaded from (relative paths in it are relative to it)."""
        return self._source

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise UsageError(f"unknown region '{name}' (regions in this policy: {known})")

    def domain(self, name: str) -> Domain:
        for domain in self.domains:
            if domain.name == name.rstrip(".").lower():
                return domain
        known = ", ".join(d.name for d in self.domains)
        raise UsageError(f"unknown domain '{name}' (domains in this policy: {known})")

    def gateway_region(self) -> dict[str, Region]:
        return {gw.name: region for region in self.regions for gw in region.gateways}


# -- loading ---------------------------------------------------------------------------------

_TAGS = {"http", "tcp", "tls", "dns", "rfc2136", "zonefile", "route53", "clouddns", "eip", "slack", "webhook"}


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    items = list(loc)
    for i, part in enumerate(items):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS and i > 0 and isinstance(items[i - 1], int):
            continue  # pydantic puts the union's tag in the path; the operator never wrote it
        else:
            out += f".{part}" if out else str(part)
    return out


def _reference_problems(policy: Policy) -> list[tuple[str, str]]:
    """Checks that span fields: uniqueness and references."""
    problems: list[tuple[str, str]] = []

    def dupes(names: list[str], path: str, what: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                problems.append((path.format(i=i), f"duplicate {what} '{name}'"))
            seen.add(name)

    dupes([r.name for r in policy.regions], "regions[{i}].name", "region name")
    dupes([d.name for d in policy.domains], "domains[{i}].name", "domain name")
    seen_gw: set[str] = set()
    seen_addr: set[str] = set()
    for ri, region in enumerate(policy.regions):
        for gi, gw in enumerate(region.gateways):
            if gw.name in seen_gw:
                problems.append((f"regions[{ri}].gateways[{gi}].name", f"duplicate gateway name '{gw.name}'"))
            if gw.address in seen_addr:
                problems.append((f"regions[{ri}].gateways[{gi}].address", f"duplicate gateway address '{gw.address}'"))
            seen_gw.add(gw.name)
            seen_addr.add(gw.address)
        if policy.health.min_healthy_gateways > len(region.gateways):
            problems.append((
                "health.min_healthy_gateways",
                f"{policy.health.min_healthy_gateways} is more than region '{region.name}' has "
                f"({len(region.gateways)}): it could never be healthy",
            ))
    names = [r.name for r in policy.regions]
    if policy.observer not in names:
        close = difflib.get_close_matches(policy.observer, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(("observer", f"unknown region '{policy.observer}'{hint}; regions: {', '.join(names)}"))
    if policy.proxy and policy.proxy.domain and policy.proxy.domain not in [d.name for d in policy.domains]:
        problems.append(("proxy.domain", f"unknown domain '{policy.proxy.domain}'"))
    for di, domain in enumerate(policy.domains):
        for ci, check in enumerate(domain.checks):
            if check.timeout > check.interval:
                problems.append((
                    f"domains[{di}].checks[{ci}].timeout",
                    "is longer than the interval: probes of one target would pile up",
                ))
    problems.extend(_traffic_problems(policy))
    return problems


def parse_policy(data: Any, source: str = "<policy>", observer: str | None = None) -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(source, [("", "the file must hold a mapping (service:, regions:, domains: ...)")])
    if observer:
        data = {**data, "observer": observer}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            path = _path(err["loc"])
            unknown = re.match(r"unknown key '([^']+)'", msg)
            if unknown:  # point at the key itself: regions[0].prioirty
                path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            problems.append((path, msg))
        raise PolicyError(source, problems) from None
    problems = _reference_problems(policy)
    if problems:
        raise PolicyError(source, problems)
    return policy


def load_policy(path: str | os.PathLike[str] | None) -> Policy:
    """Read, parse and validate a policy file. ``$FAILOVER_OBSERVER`` overrides ``observer``."""
    if path is None:
        path = os.environ.get("FAILOVER_POLICY")
        if not path:
            raise UsageError("no policy file: pass --policy PATH or set FAILOVER_POLICY")
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read policy {file}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(str(file), [("", f"malformed YAML{where}: {problem}")]) from None
    policy = parse_policy(data, str(file), os.environ.get("FAILOVER_OBSERVER"))
    policy = policy.model_copy(update={"state": _resolve_state(policy.state, file)})
    policy._source = str(file.resolve())
    return policy


def _resolve_state(state: State, policy_file: Path) -> State:
    """``sqlite:///rel.db`` is relative to the policy file, as DESIGN.md says."""
    url = state.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        url = "sqlite:///" + str((policy_file.parent / rel).resolve())
    return State(url=url)


def resolve_relative(policy_file: str | None, path: str) -> str:
    if os.path.isabs(path) or not policy_file:
        return path
    return str((Path(policy_file).parent / path).resolve())


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _duration_defaults(node: Any) -> None:
    """Show duration defaults as the strings a file must hold (``"2s"``), not as seconds."""
    if isinstance(node, dict):
        if node.get("pattern") == DURATION_PATTERN and isinstance(node.get("default"), int | float):
            node["default"] = format_duration(float(node["default"]))
        for value in node.values():
            _duration_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _duration_defaults(value)


def json_schema() -> str:
    schema = Policy.model_json_schema(mode="validation")
    _duration_defaults(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover policy"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def require_env(name: str, what: str) -> str:
    """A secret from the environment, or a UsageError that names the variable (never the value)."""
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"{what}: environment variable {name} is not set")
    return value
