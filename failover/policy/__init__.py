"""The policy file: its model (pydantic v2), loading with operator-friendly errors, and schema.

One service per file. Durations are strings (``500ms``, ``2s``, ``5m``, ``1h``, ``14d``) and
are held as float seconds. Secrets are never in the file: blocks name environment variables
(``secret_env``, ``token_env``, ``webhook_env``), resolved only when used.

    _types.py       durations, names, addresses, the Strict base (unknown keys refused)
    _checks.py      http / tcp / tls / dns checks
    _traffic.py     rfc2136 / zonefile / route53 / clouddns / eip blocks
    _blocks.py      health, election, alerts, proxy, api
    _state.py       state: the sqlite or etcd store, its URL, TLS, credentials, lease timings
    _model.py       Gateway, Region, Domain, Policy (with observers: voters and witnesses)
    _crosscheck.py  checks across blocks: uniqueness, references, traffic blocks vs regions
    _warnings.py    valid but risky choices (two observers and no witness ...), for validate
    _load.py        YAML loading, field-path errors, JSON Schema
"""

from failover.policy._blocks import Alert, AlertEvent, Api, Election, Health, Proxy, SlackAlert, WebhookAlert
from failover.policy._checks import Check, DnsCheck, HttpCheck, TcpCheck, TlsCheck
from failover.policy._load import json_schema, load_policy, parse_policy, resolve_relative
from failover.policy._model import Domain, Gateway, Policy, Region
from failover.policy._state import ETCD_DEFAULT_PORT, EtcdUrl, State, parse_etcd_url
from failover.policy._traffic import (
    AliasTarget,
    CloudDnsTraffic,
    EipTraffic,
    Rfc2136Traffic,
    Route53Traffic,
    Traffic,
    Tsig,
    ZonefileTraffic,
)
from failover.policy._types import (
    DURATION_PATTERN,
    Duration,
    PositiveDuration,
    Strict,
    format_duration,
    host_port,
    parse_duration,
    require_env,
)
from failover.policy._warnings import policy_warnings

__all__ = [
    "DURATION_PATTERN",
    "ETCD_DEFAULT_PORT",
    "Alert",
    "AlertEvent",
    "AliasTarget",
    "Api",
    "Check",
    "CloudDnsTraffic",
    "DnsCheck",
    "Domain",
    "Duration",
    "EipTraffic",
    "Election",
    "EtcdUrl",
    "Gateway",
    "Health",
    "HttpCheck",
    "Policy",
    "PositiveDuration",
    "Proxy",
    "Region",
    "Rfc2136Traffic",
    "Route53Traffic",
    "SlackAlert",
    "State",
    "Strict",
    "TcpCheck",
    "TlsCheck",
    "Traffic",
    "Tsig",
    "WebhookAlert",
    "ZonefileTraffic",
    "format_duration",
    "host_port",
    "json_schema",
    "load_policy",
    "parse_duration",
    "parse_etcd_url",
    "parse_policy",
    "policy_warnings",
    "require_env",
    "resolve_relative",
]
