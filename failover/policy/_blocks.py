"""Service-wide blocks: health, election, alerts, proxy and the admin API (state: ``_state``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from failover.policy._types import Duration, EnvName, Name, Port, PositiveDuration, Strict, host_port


class Health(Strict):
    rise: int = Field(default=2, ge=1, le=100)
    fall: int = Field(default=3, ge=1, le=100)
    min_healthy_gateways: int = Field(default=1, ge=1)


class Election(Strict):
    failback: Literal["manual", "auto"] = "manual"
    failback_after: Duration = 600.0
    hold_down: Duration = 300.0
    max_failovers_per_hour: int = Field(default=4, ge=1)


AlertEvent = Literal[
    "failover",
    "failback",
    "elected",
    "region_down",
    "region_up",
    "override_set",
    "override_released",
    "override_expired",
    "drain",
    "undrain",
    "adapter_error",
    "lost_race",
    "certificate_expiring",
    "quorum_lost",  # fewer than a majority of the observers report: nothing moves automatically
    "leader_changed",  # another coordinator now holds the leader lease and applies changes
    "discovery_failed",  # a region's gateways_from stopped answering (its last set is kept)
    "discovery_recovered",  # it answers again
]


def _http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://\S+$", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value


class _Delivery(Strict):
    """What every alert sink shares: filtering, de-duplication, retries and its queue."""

    link: str | None = Field(
        default=None, description="URL put in every message (a dashboard, the runbook); '{domain}' is filled in"
    )
    name: Name | None = Field(default=None, description="label in metrics and logs; default: the kind, kind-2, ...")
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


class SlackAlert(_Delivery):
    """A Slack incoming webhook (Block Kit message). Delivery is queued, retried, de-duplicated."""

    kind: Literal["slack"]
    webhook_env: EnvName = Field(description="environment variable holding the incoming-webhook URL (a secret)")


class WebhookAlert(_Delivery):
    """A generic JSON webhook, signed ``X-Failover-Signature: sha256=<hex HMAC of the body>``."""

    kind: Literal["webhook"]
    url_env: EnvName = Field(description="environment variable holding the URL")
    secret_env: EnvName | None = Field(
        default=None, description="environment variable holding the HMAC-SHA256 signing key; unsigned without it"
    )


Alert = Annotated[SlackAlert | WebhookAlert, Field(discriminator="kind")]


_EMBEDDED_ONLY = (
    "listen", "mode", "connect_timeout", "drain_time", "workers", "max_connections", "idle_timeout",
    "proxy_protocol", "balance", "ejection_time", "backlog",
)  # fmt: skip


def runtime_api_target(value: str) -> tuple[str, str] | tuple[str, tuple[str, int]]:
    """``unix:/run/haproxy.sock`` -> ("unix", path); ``tcp:127.0.0.1:9999`` -> ("tcp", (host, port))."""
    scheme, _, rest = value.partition(":")
    if scheme == "unix" and rest.startswith("/"):
        return "unix", rest
    if scheme == "tcp" and rest and (rest.startswith("[") or rest.count(":") == 1):
        return "tcp", host_port(rest, 0)
    raise ValueError(f"'{value}' is not a Runtime API address: use unix:/absolute/path or tcp:host:port")


class Proxy(Strict):
    kind: Literal["embedded", "haproxy"] = Field(
        default="embedded",
        description="embedded: relay in this process; haproxy: program an existing HAProxy through its Runtime API",
    )
    runtime_api: str | None = Field(
        default=None,
        description="kind haproxy: its Runtime API (a 'stats socket ... level admin'): unix:/path or tcp:host:port",
    )
    backend: str | None = Field(
        default=None, description="kind haproxy: the backend whose servers are named after the gateways"
    )
    listen: str = "0.0.0.0:8443"
    upstream_port: Port = Field(
        default=443,
        description="the gateways' port; kind haproxy: set on the servers only when given (else HAProxy's stays)",
    )
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
        host_port(v, 8443)
        return v

    @field_validator("runtime_api")
    @classmethod
    def _runtime_api(cls, v: str | None) -> str | None:
        if v is not None:
            runtime_api_target(v)
        return v

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str | None) -> str | None:
        # HAProxy's own rule for proxy names
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]+", v):
            raise ValueError(f"'{v}' is not an HAProxy backend name (letters, digits, '-', '_', '.', ':')")
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> Proxy:
        if self.kind == "haproxy":
            missing = [f for f in ("runtime_api", "backend") if getattr(self, f) is None]
            if missing:
                example = "runtime_api: unix:/run/haproxy.sock, backend: gateways"
                raise ValueError(f"kind haproxy needs {' and '.join(missing)} (e.g. {example})")
            embedded = sorted(set(_EMBEDDED_ONLY) & self.model_fields_set)
            if embedded:
                raise ValueError(
                    f"{', '.join(embedded)}: only for kind embedded (HAProxy's own configuration sets these)"
                )
        else:
            given = [f for f in ("runtime_api", "backend") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{' and '.join(given)}: only for kind haproxy")
        return self

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
        return host_port(self.listen, 8443)


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
        host_port(v, 8877)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.listen, 8877)
