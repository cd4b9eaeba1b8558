"""The ``metrics`` block: pushing the daemon's measurements to a StatsD or DogStatsD receiver
(Prometheus needs no block: ``GET /metrics`` on the admin API always serves it)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from failover.policy._types import PositiveDuration, Strict, host_port

STATSD_PORT = 8125
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
# one label is enough: "localhost", a Kubernetes service such as "datadog-agent"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(\.{_LABEL})*\.?$")
TagKey = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_./-]{0,99}$")]
# DogStatsD separates tags with "," and fields with "|": neither may appear in a value
TagValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,200}$")]


def statsd_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8125"``, ``"[::1]:8125"``, ``"datadog-agent"`` -> (host, port)."""
    example = "e.g. 127.0.0.1:8125 or statsd.internal:8125"
    try:
        host, port = host_port(value, STATSD_PORT)
    except ValueError:
        raise ValueError(f"'{value}' is not host:port with a port from 1 to 65535 ({example})") from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host):
            raise ValueError(f"'{value}': '{host}' is neither an IP address nor a host name ({example})") from None
    return host, port


class StatsdBlock(Strict):
    """Counters, gauges and timers sent over UDP to a StatsD server or a DogStatsD agent."""

    address: str = Field(description="host:port of the receiver (UDP); the port defaults to 8125")
    protocol: Literal["statsd", "dogstatsd"] = Field(
        default="statsd",
        description="statsd: plain lines, the dimensions in the metric name (failover.primary.api_example_com.east); "
        "dogstatsd: one name per metric, the dimensions as tags (|#domain:api.example.com,region:east)",
    )
    prefix: str = Field(
        default="failover",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$",
        description="put before every metric name, e.g. failover or failover.prod",
    )
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict, description="added to every metric, e.g. {env: prod} (dogstatsd only)"
    )
    interval: PositiveDuration = Field(
        default=10.0,
        description="how often gauges (health, primary, proxy) and the counts summed since the last send go out",
    )
    sample_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="share of probe latencies sent as timers, with @rate (counts stay exact: they are summed "
        "before sending); 0.1 suits thousands of probes per second",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        statsd_address(v)
        return v

    @model_validator(mode="after")
    def _tags_need_dogstatsd(self) -> StatsdBlock:
        if self.tags and self.protocol != "dogstatsd":
            raise ValueError(
                "tags need protocol: dogstatsd (plain StatsD has no tags; put a fixed dimension in the prefix, "
                "e.g. prefix: failover.prod)"
            )
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        return statsd_address(self.address)


class MetricsBlock(Strict):
    statsd: StatsdBlock | None = Field(default=None, description="push to a StatsD or DogStatsD receiver")
