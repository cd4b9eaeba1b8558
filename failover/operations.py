"""What an operator can ask for, shared by the CLI and the admin API: status, promote,
release, drain, undrain. Each change is audited with who and why, then applied at once
through the same coordinator, store and fencing as the daemon's own decisions."""

from __future__ import annotations

import dataclasses
from typing import Any

from failover import events as ev
from failover.coordinator import Coordinator
from failover.coordinator.handover import wait_for_leader
from failover.errors import FailoverError, UsageError
from failover.model import DomainOutcome, Drain, Override, Snapshot, Status, effective_override, iso

__all__ = ["drain", "iso", "outcomes_json", "promote", "release", "status", "undrain"]


def status(coordinator: Coordinator, snap: Snapshot | None = None) -> dict[str, Any]:
    """The contract's ``status --json`` shape (more keys are allowed, these stay)."""
    policy = coordinator.policy
    snap = snap or coordinator.snapshot()
    domains: dict[str, Any] = {}
    for domain in policy.domains:
        state = coordinator.store.get_state(domain.name)
        override = effective_override(snap.overrides, domain.name, snap.now)
        regions: dict[str, Any] = {}
        for region in policy.regions:
            verdict = snap.health[domain.name][region.name]
            regions[region.name] = {
                "healthy": verdict.status is Status.UP,
                "drained": region.name in snap.drained,
                "status": str(verdict.status),
                "reason": verdict.reason,
                "since": iso(verdict.since),
                "gateways": {  # .get: a gateway discovered since the snapshot has no verdict in it yet
                    gw.name: str(snap.gateways[domain.name].get(gw.name, (Status.UNKNOWN, ""))[0])
                    for gw in region.gateways
                },
                "observers_down": sorted(
                    o for o, seen in snap.votes.get(domain.name, {}).get(region.name, {}).items() if seen is Status.DOWN
                ),
            }
        domains[domain.name] = {
            "primary": state.primary if state else None,
            "secondary": state.secondary if state else None,
            "epoch": state.epoch if state else 0,
            "reason": state.reason if state else "no decision yet",
            "changed_at": iso(state.changed_at) if state else None,
            "override": None
            if override is None
            else {
                "region": override.region,
                "reason": override.reason,
                "until": iso(override.until),
                "by": override.by,
                "force": override.force,
            },
            "regions": regions,
        }
    result: dict[str, Any] = {"service": policy.service, "observer": policy.observer, "domains": domains}
    if policy.state.backend == "etcd":  # coordinators in several regions share this store
        store = coordinator.store
        members, seen = store.members(), store.last_seen()
        result["leader"] = store.leader()
        result["observers"] = {
            name: {"alive": name in members, "last_seen": iso(members.get(name, seen.get(name)))}
            for name in policy.voters
        }
    return result


def _domains(coordinator: Coordinator, domain: str | None) -> list[str]:
    if domain is None:
        return [d.name for d in coordinator.policy.domains]
    return [coordinator.policy.domain(domain).name]


def _settle(coordinator: Coordinator, domains: list[str] | None = None) -> list[DomainOutcome]:
    """Apply the recorded intent now when this process may act; else hand it to the leader."""
    names = domains if domains is not None else [d.name for d in coordinator.policy.domains]
    store = coordinator.store
    if coordinator.policy.state.backend != "etcd" or store.leading() is not None:
        return _check_outcomes(coordinator.evaluate(domains=names))
    if store.leader() is None and coordinator.campaign() is not None:  # nobody leads: we may
        return _check_outcomes(coordinator.evaluate(domains=names))
    return wait_for_leader(coordinator, names)


def _check_outcomes(outcomes: list[DomainOutcome]) -> list[DomainOutcome]:
    failed = [f"{o.decision.domain}: {a.adapter}: {a.detail}" for o in outcomes for a in o.adapters if a.action.failed]
    if failed:
        raise FailoverError("recorded, but not every adapter applied it:\n  " + "\n  ".join(failed))
    return outcomes


def promote(
    coordinator: Coordinator,
    region: str,
    reason: str,
    by: str,
    domain: str | None = None,
    duration: float | None = None,
    force: bool = False,
) -> list[DomainOutcome]:
    policy = coordinator.policy
    policy.region(region)  # UsageError naming the known regions
    if not reason.strip():
        raise UsageError("promote needs a reason (--reason TEXT): it goes to the audit log and the alerts")
    targets = _domains(coordinator, domain)
    snap = coordinator.snapshot()
    if not force:
        for name in targets:
            verdict = snap.health[name][region]
            fresh = coordinator.up_now(name, region)
            if verdict.status is not Status.UP or fresh < policy.health.min_healthy_gateways:
                why = (
                    verdict.reason
                    if verdict.status is not Status.UP
                    else (f"only {fresh} gateway(s) passed their latest probe")
                )
                raise FailoverError(f"refusing to promote {region} for {name}: {why}; use --force to pin it anyway")
    now = coordinator.clock()
    until = now + duration if duration is not None else None
    override = Override(
        domain=targets[0] if domain else "*", region=region, reason=reason, by=by, at=now, until=until, force=force
    )
    scope = targets[0] if domain else None
    # audited first: an intent that could not be recorded in history is not acted on
    coordinator.emit(
        ev.OverrideSet, at=now, domain=scope, region=region, by=by, reason=reason, until=until, force=force
    )
    coordinator.store.set_override(override)
    return _settle(coordinator, targets)


def release(
    coordinator: Coordinator, by: str, domain: str | None = None
) -> tuple[Override | None, list[DomainOutcome]]:
    key = coordinator.policy.domain(domain).name if domain else "*"
    dropped = coordinator.store.clear_override(key)
    if dropped is not None:
        coordinator.emit(ev.OverrideReleased, domain=None if key == "*" else key, region=dropped.region, by=by)
    return dropped, _settle(coordinator, _domains(coordinator, domain))


def drain(coordinator: Coordinator, region: str, by: str, reason: str = "maintenance") -> list[DomainOutcome]:
    coordinator.policy.region(region)
    now = coordinator.clock()
    coordinator.emit(ev.DrainSet, at=now, region=region, by=by, reason=reason)
    coordinator.store.set_drain(Drain(region, reason, by, now))
    return _settle(coordinator)


def undrain(coordinator: Coordinator, region: str, by: str) -> list[DomainOutcome]:
    coordinator.policy.region(region)
    dropped = coordinator.store.clear_drain(region)
    if dropped is not None:
        coordinator.emit(ev.DrainCleared, region=region, by=by)
    return _settle(coordinator)


def outcomes_json(outcomes: list[DomainOutcome]) -> list[dict[str, Any]]:
    """What an evaluation did, for ``--json`` and the API."""
    return [
        {
            "domain": o.decision.domain,
            "kind": o.decision.kind,
            "reason": o.decision.reason,
            "primary": o.decision.state.primary,
            "secondary": o.decision.state.secondary,
            "epoch": o.decision.state.epoch,
            "changed": o.decision.changed,
            "adapters": [{**dataclasses.asdict(a), "changes": list(a.changes)} for a in o.adapters],
        }
        for o in outcomes
    ]
