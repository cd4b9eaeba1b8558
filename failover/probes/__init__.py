"""Probes, one module per kind; ``build_probes`` makes one per (domain, check, gateway)."""

from __future__ import annotations

from collections.abc import Collection

from failover.model import StreakKey
from failover.policy import Check, DnsCheck, HttpCheck, Policy, TcpCheck, TlsCheck
from failover.probes.base import Probe, Target

__all__ = ["Probe", "Target", "build_probe", "build_probes"]


def build_probe(target: Target, check: Check) -> Probe:
    if isinstance(check, HttpCheck) and check.scheme == "http":
        from failover.probes.http1 import PlainHttpProbe

        return PlainHttpProbe(target, check)
    if isinstance(check, HttpCheck):
        from failover.probes.http import HttpProbe

        return HttpProbe(target, check)
    if isinstance(check, TcpCheck):
        from failover.probes.tcp import TcpProbe

        return TcpProbe(target, check)
    if isinstance(check, TlsCheck):
        from failover.probes.tls import TlsProbe

        return TlsProbe(target, check)
    if isinstance(check, DnsCheck):
        from failover.probes.dns import DnsProbe

        return DnsProbe(target, check)
    raise TypeError(f"no probe for {check!r}")


def build_probes(policy: Policy, gateways: Collection[str] | None = None) -> dict[StreakKey, Probe]:
    """One probe per (domain, check, gateway) of the policy's current gateways; with
    ``gateways``, only for those gateway names (the ones discovery just found)."""
    probes: dict[StreakKey, Probe] = {}
    for domain in policy.domains:
        for region in policy.regions:
            for gateway in region.gateways:
                if gateways is not None and gateway.name not in gateways:
                    continue
                target = Target(domain.name, region.name, gateway.name, gateway.address)
                for index, check in enumerate(domain.checks):
                    probe = build_probe(target, check)
                    key = StreakKey(domain.name, gateway.name, probe.label)
                    if key in probes:  # two checks with the same label: tell them apart by position
                        key = StreakKey(domain.name, gateway.name, f"{probe.label}#{index}")
                    probes[key] = probe
    return probes
