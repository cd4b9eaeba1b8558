"""The ``state`` block: where coordinators keep what they decide and observe.

``sqlite:///...`` is one embedded file per coordinator (or per host). ``etcd://`` and
``etcds://`` (TLS) name one etcd cluster that every coordinator of the service shares; every
key lives under the URL's prefix. The lease timings follow Patroni's rule
``loop_wait + 2 * retry_timeout <= ttl``: a leader that stops acting at ``ttl`` after its last
keepalive can then never act after its lease expired at the server.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from failover.policy._types import EnvName, PositiveDuration, Strict, format_duration, require_env

ETCD_DEFAULT_PORT = 2379
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_URL_FORMS = "sqlite:////abs/path.db, sqlite:///relative.db, etcd://host:port[,host:port...]/prefix or etcds://..."
# Fields that mean something only with an etcd store, and those only with TLS.
ETCD_ONLY = ("username_env", "password_env", "ttl", "loop_wait", "retry_timeout")
TLS_ONLY = ("ca_file", "cert_file", "key_file")


@dataclass(frozen=True)
class EtcdUrl:
    """A parsed ``etcd(s)://host:port[,host:port...]/prefix``."""

    tls: bool
    hosts: tuple[tuple[str, int], ...]  # IPv6 hosts in brackets, names lower-cased
    prefix: str  # "/failover/payments": a leading slash, no trailing one

    @property
    def endpoints(self) -> list[str]:
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://{host}:{port}" for host, port in self.hosts]


def _host(text: str) -> str:
    """An IPv4 address, a bracketed IPv6 address, or a host name (RFC 1123)."""
    if text.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(text[1:-1]).compressed}]"
        except ValueError:
            raise ValueError(f"'{text}' is not an IPv6 address") from None
    if re.fullmatch(r"[0-9.]+", text):  # all digits: it can only be meant as an IPv4 address
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise ValueError(f"'{text}' is not an IPv4 address") from None
    name = text.removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"'{text}' is not a host name, an IPv4 address or an [IPv6] address")
    return name.lower()


def _host_port(text: str) -> tuple[str, int]:
    if not text:
        raise ValueError("an empty host in the host list (two commas, or a comma at an end?)")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"'{text}': an IPv6 address needs its closing ']'")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"'{text}' is not [IPv6]:port")
        port = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ValueError(f"'{text}': put an IPv6 address in brackets, e.g. [2001:db8::1]:{ETCD_DEFAULT_PORT}")
    else:
        host, colon, after = text.partition(":")
        port = after if colon else None
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ValueError(f"'{text}': the port must be a number from 1 to 65535")
    return _host(host), int(port) if port is not None else ETCD_DEFAULT_PORT


def parse_etcd_url(url: str) -> EtcdUrl:
    """Parse ``etcd(s)://host:port[,host:port...]/prefix``; a ValueError says what is wrong."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("etcd", "etcds"):
        raise ValueError(f"not an etcd URL; use {_URL_FORMS}")
    authority, _, path = rest.partition("/")
    if "@" in authority:  # never echo it: it may hold a password
        raise ValueError(
            "put no user or password in the URL: name environment variables in "
            "state.username_env and state.password_env"
        )
    if "?" in rest or "#" in rest:
        raise ValueError(f"'{url}': an etcd URL takes no '?' or '#' part")
    if not authority:
        raise ValueError(f"'{url}' names no etcd member: use {scheme}://host:port[,host:port...]/prefix")
    hosts = tuple(_host_port(part) for part in authority.split(","))
    repeated = sorted({f"{h}:{p}" for h, p in hosts if hosts.count((h, p)) > 1})
    if repeated:
        raise ValueError(f"'{url}': etcd member {', '.join(repeated)} is listed twice")
    prefix = path.rstrip("/")
    if not prefix:
        raise ValueError(
            f"'{url}' has no key prefix: add one after the hosts, e.g. "
            f"{scheme}://{authority}/failover/<service> (every key of this service lives under it)"
        )
    for part in prefix.split("/"):
        if not part:
            raise ValueError(f"'{url}': the key prefix '/{prefix}' has an empty part ('//')")
        if not _PREFIX_PART.match(part) or part in (".", ".."):
            raise ValueError(
                f"'{url}': the key prefix '/{prefix}' has a bad part '{part}' "
                "(use letters, digits, '.', '_', '-' between single slashes)"
            )
    return EtcdUrl(tls=scheme == "etcds", hosts=hosts, prefix="/" + prefix)


class State(Strict):
    """Where decisions, observations, overrides and the audit log are kept."""

    model_config = ConfigDict(
        json_schema_extra={
            "dependentRequired": {
                "cert_file": ["key_file"],
                "key_file": ["cert_file"],
                "username_env": ["password_env"],
                "password_env": ["username_env"],
            }
        }
    )

    url: str = Field(
        default="sqlite:///failover-state.db",
        description="sqlite:////abs.db, sqlite:///rel.db (relative to the policy file), "
        "etcd://host:port[,host:port...]/prefix, or etcds://... (TLS)",
        json_schema_extra={"pattern": r"^(sqlite:///.+|etcds?://[^/@?#]+/.*[^/].*)$"},
    )
    ca_file: str | None = Field(
        default=None, min_length=1, description="etcds:// only: PEM CA bundle to trust (default: the system's)"
    )
    cert_file: str | None = Field(default=None, min_length=1, description="etcds:// only: PEM client certificate")
    key_file: str | None = Field(default=None, min_length=1, description="etcds:// only: PEM key of cert_file")
    username_env: EnvName | None = Field(default=None, description="etcd only: environment variable holding the user")
    password_env: EnvName | None = Field(
        default=None, description="etcd only: environment variable holding the password"
    )
    ttl: PositiveDuration = Field(
        default=10.0, description="etcd only: the leader's lease (whole seconds); >= loop_wait + 2 * retry_timeout"
    )
    loop_wait: PositiveDuration = Field(
        default=2.0, description="etcd only: how often the leader renews its lease and the daemon re-checks"
    )
    retry_timeout: PositiveDuration = Field(
        default=3.0, description="etcd only: the deadline of one etcd call, shared by all the endpoints"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v.startswith("sqlite:///"):
            return v
        if not v.startswith(("etcd://", "etcds://")):
            raise ValueError(f"use {_URL_FORMS}")
        parse_etcd_url(v)
        return v.rstrip("/")  # the prefix has no trailing '/' (parsing made sure one is left)

    @property
    def backend(self) -> Literal["sqlite", "etcd"]:
        return "sqlite" if self.url.startswith("sqlite:") else "etcd"

    @property
    def etcd(self) -> EtcdUrl | None:
        """The parsed etcd URL, or None with sqlite."""
        return parse_etcd_url(self.url) if self.backend == "etcd" else None

    @property
    def endpoints(self) -> list[str]:
        """``http://host:port`` (``https://`` with etcds://) for each etcd member; empty with sqlite."""
        return self.etcd.endpoints if self.etcd else []

    @property
    def prefix(self) -> str:
        """The etcd key prefix, e.g. ``/failover/payments`` (no trailing slash); empty with sqlite."""
        return self.etcd.prefix if self.etcd else ""

    @property
    def tls(self) -> bool:
        return self.url.startswith("etcds://")

    @property
    def sqlite_path(self) -> str | None:
        """The database file of a sqlite store (absolute once loaded from a file); None with etcd."""
        return self.url.removeprefix("sqlite:///") if self.backend == "sqlite" else None

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) read now from the variables the policy names, or None without auth.
        A variable that is not set is a UsageError naming it (never a value)."""
        if self.username_env is None or self.password_env is None:
            return None
        return (
            require_env(self.username_env, "state.username_env"),
            require_env(self.password_env, "state.password_env"),
        )


def state_problems(state: State) -> list[tuple[str, str]]:
    """Checks across the state block's fields, as ``(field path, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    given = state.model_fields_set
    for name in TLS_ONLY:
        if name in given and getattr(state, name) is not None and not state.tls:
            scheme = "a sqlite store" if state.backend == "sqlite" else "etcd:// (plain HTTP)"
            problems.append((f"state.{name}", f"only with an etcds:// (TLS) store URL, not with {scheme}"))
    for name in ETCD_ONLY:
        if name in given and getattr(state, name) is not None and state.backend != "etcd":
            problems.append((f"state.{name}", "only with an etcd store (state.url: etcd://... or etcds://...)"))
    for one, other, applies, what in (
        ("cert_file", "key_file", state.tls, "the client certificate and its key go together"),
        ("username_env", "password_env", state.backend == "etcd", "name both variables (user, password) or neither"),
    ):
        for a, b in ((one, other), (other, one)) if applies else ():
            if getattr(state, a) is not None and getattr(state, b) is None:
                problems.append((f"state.{a}", f"needs state.{b} too: {what}"))
    if state.backend == "etcd":
        problems.extend(_timing_problems(state))
    return problems


def _timing_problems(state: State) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if state.ttl != math.floor(state.ttl):
        problems.append(("state.ttl", f"etcd leases last whole seconds: {format_duration(state.ttl)} is not one"))
    need_ms = round((state.loop_wait + 2 * state.retry_timeout) * 1000)
    if need_ms > round(state.ttl * 1000):
        need = format_duration(need_ms / 1000)
        problems.append(
            (
                "state.ttl",
                f"{format_duration(state.ttl)} is shorter than loop_wait + 2 * retry_timeout = "
                f"{format_duration(state.loop_wait)} + 2 * {format_duration(state.retry_timeout)} = {need} "
                "(Patroni's rule: loop_wait + 2 * retry_timeout <= ttl); the leader could still act after its "
                f"lease expired and another took over: raise ttl to at least {math.ceil(need_ms / 1000)}s "
                "or shorten loop_wait or retry_timeout",
            )
        )
    return problems
