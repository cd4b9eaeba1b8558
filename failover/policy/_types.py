"""Value types of the policy file: durations, names, ports, addresses, and the strict base model."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from failover.errors import UsageError

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


def host_port(value: str, default_port: int) -> tuple[str, int]:
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


def ip_port(value: str, default_port: int) -> tuple[str, int]:
    """Like ``host_port`` but the host must be an IP address: DNS messages go to an address,
    and a name here would need a resolver that may be the very thing that is down."""
    host, port = host_port(value, default_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{value}': use an IP address (and optional :port), not a host name") from None
    return host, port


class Strict(BaseModel):
    """Rejects unknown keys, naming the closest valid key."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
            for key in data:
                if key not in known:
                    close = difflib.get_close_matches(str(key), sorted(known), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    valid = ", ".join(sorted(known))
                    raise ValueError(f"unknown key '{key}'{hint}; valid keys: {valid}")
        return data


def require_env(name: str, what: str) -> str:
    """A secret from the environment, or a UsageError that names the variable (never the value)."""
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"{what}: environment variable {name} is not set")
    return value
