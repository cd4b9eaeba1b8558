"""Checks that span a whole policy, run after the model validated: uniqueness, references
between blocks, and the traffic blocks against the policy's regions and gateways."""

from __future__ import annotations

import difflib
import re

from failover.policy._model import Policy
from failover.policy._state import state_problems
from failover.policy._traffic import AWS_REGION_PATTERN, CloudDnsTraffic, EipTraffic, Route53Traffic


def policy_problems(policy: Policy) -> list[tuple[str, str]]:
    """Every problem found, as ``(field path, message)`` pairs."""
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
        for gi, gw in enumerate(region.listed):
            if gw.name in seen_gw:
                problems.append((f"regions[{ri}].gateways[{gi}].name", f"duplicate gateway name '{gw.name}'"))
            if gw.address in seen_addr:
                problems.append((f"regions[{ri}].gateways[{gi}].address", f"duplicate gateway address '{gw.address}'"))
            seen_gw.add(gw.name)
            seen_addr.add(gw.address)
        # a discovered region's size is only known at run time: a warning (discovery_warnings), not an error
        if region.gateways_from is None and policy.health.min_healthy_gateways > len(region.gateways):
            problems.append(
                (
                    "health.min_healthy_gateways",
                    f"{policy.health.min_healthy_gateways} is more than region '{region.name}' has "
                    f"({len(region.gateways)}): it could never be healthy",
                )
            )
    problems.extend(_observer_problems(policy))
    problems.extend(state_problems(policy.state))
    if policy.proxy and policy.proxy.domain and policy.proxy.domain not in [d.name for d in policy.domains]:
        problems.append(("proxy.domain", f"unknown domain '{policy.proxy.domain}'"))
    for di, domain in enumerate(policy.domains):
        for ci, check in enumerate(domain.checks):
            if check.timeout > check.interval:
                problems.append(
                    (
                        f"domains[{di}].checks[{ci}].timeout",
                        "is longer than the interval: probes of one target would pile up",
                    )
                )
    problems.extend(_traffic_problems(policy))
    return problems


def _observer_problems(policy: Policy) -> list[tuple[str, str]]:
    """``observers`` unique; the process's own ``observer`` one of the voters."""
    problems: list[tuple[str, str]] = []
    for i, name in enumerate(policy.observers or []):
        if name in (policy.observers or [])[:i]:
            problems.append((f"observers[{i}]", f"duplicate observer '{name}'"))
    voters = policy.voters
    if policy.observer not in voters:
        close = difflib.get_close_matches(policy.observer, voters, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        if policy.observers is None:
            message = f"unknown region '{policy.observer}'{hint}; regions: {', '.join(voters)}"
        else:
            message = (
                f"'{policy.observer}' is not one of observers{hint}: {', '.join(voters)}; "
                "add it there or run this coordinator as one of them ($FAILOVER_OBSERVER)"
            )
        problems.append(("observer", message))
    return problems


def _traffic_problems(policy: Policy) -> list[tuple[str, str]]:
    """Cross-field checks of the cloud traffic blocks (route53, clouddns, eip)."""
    problems: list[tuple[str, str]] = []
    regions = [r.name for r in policy.regions]
    region_of = {gw.name: r.name for r in policy.regions for gw in r.listed}

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
                        problems.append(
                            (
                                f"{at}.{field_name}",
                                f"no target for region(s) {', '.join(missing)}: every region can be elected primary",
                            )
                        )
            if isinstance(block, EipTraffic):
                homes: dict[str, list[str]] = {}
                for gw in block.gateways:
                    if gw not in region_of:
                        message = unknown(gw, sorted(region_of), "gateway")
                        if any(r.gateways_from is not None for r in policy.regions):
                            message += (
                                "; a gateway found through gateways_from cannot carry an Elastic IP "
                                "(its name is only known at run time): list it under gateways"
                            )
                        problems.append((f"{at}.gateways.{gw}", message))
                    else:
                        homes.setdefault(region_of[gw], []).append(gw)
                if len(homes) > 1:
                    spread = "; ".join(f"{r}: {', '.join(gws)}" for r, gws in homes.items())
                    problems.append(
                        (
                            f"{at}.gateways",
                            f"maps gateways of more than one region ({spread}). An Elastic IP is regional and "
                            "cannot move between regions: use one eip block per region and let a DNS adapter "
                            "(route53, clouddns, rfc2136) move traffic across regions",
                        )
                    )
                elif len(homes) == 1 and block.aws_region is None:
                    home = next(iter(homes))
                    if not re.match(AWS_REGION_PATTERN, home):
                        problems.append(
                            (
                                f"{at}.aws_region",
                                f"required: region '{home}' is not an AWS region name, so set the AWS region "
                                "where the Elastic IP lives (e.g. us-east-1)",
                            )
                        )
            ids = list(block.gateways.values()) if isinstance(block, EipTraffic) else []
            for dup in sorted({i for i in ids if ids.count(i) > 1}):
                problems.append((f"{at}.gateways", f"'{dup}' is mapped to more than one gateway"))
    return problems
