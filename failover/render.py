"""Tables for people (rich). Machines get ``--json`` instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from failover.model import AuditEntry, DomainOutcome, ProbeResult, StreakKey, iso
from failover.policy import Policy

STYLE = {
    "up": "green",
    "down": "red",
    "unknown": "yellow",
    "applied": "green",
    "noop": "dim",
    "planned": "cyan",
    "error": "red",
    "lost_race": "red",
    "skipped": "yellow",
}


def _c(text: str) -> str:
    style = STYLE.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def checks(console: Console, policy: Policy, results: Mapping[StreakKey, ProbeResult]) -> None:
    region_of = {gw.name: r.name for r in policy.regions for gw in r.gateways}
    table = Table(title=f"{policy.service}: one probe of every check", expand=False)
    for col in ("domain", "region", "gateway", "check", "result", "latency", "detail"):
        table.add_column(col)
    for key, result in results.items():
        outcome = "up" if result.ok else "down"
        detail = result.reason + (f" [yellow]({result.warning})[/yellow]" if result.warning else "")
        table.add_row(
            key.domain,
            region_of[key.gateway],
            key.gateway,
            key.check,
            _c(outcome),
            f"{result.latency * 1000:.1f}ms",
            detail,
        )
    console.print(table)


def status(console: Console, data: Mapping[str, Any]) -> None:
    if "observers" in data:  # a shared store: who leads, who votes
        voters = ", ".join(
            f"{name}={'[green]alive[/green]' if o['alive'] else '[red]gone[/red]'}"
            + ("" if o["alive"] or not o["last_seen"] else f" (last seen {o['last_seen']})")
            for name, o in data["observers"].items()
        )
        console.print(f"leader: [bold]{data['leader'] or 'none'}[/bold]; observers: {voters}")
    for domain, info in data["domains"].items():
        override = info["override"]
        title = (
            f"{domain}: primary [bold]{info['primary'] or '-'}[/bold], secondary {info['secondary'] or '-'}, "
            f"epoch {info['epoch']}"
        )
        table = Table(title=title, caption=info["reason"], expand=False)
        for col in ("region", "health", "drained", "gateways", "why"):
            table.add_column(col)
        for region, r in info["regions"].items():
            gws = ", ".join(f"{g}={_c(s)}" for g, s in r["gateways"].items())
            down_votes = r.get("observers_down") or []
            why = r["reason"] + (f" [down for: {', '.join(down_votes)}]" if down_votes and "observers" in data else "")
            table.add_row(region, _c(r["status"]), "yes" if r["drained"] else "", gws, why)
        console.print(table)
        if override:
            until = override["until"] or "released by hand"
            console.print(f"  override: {override['region']} by {override['by']} until {until}: {override['reason']}")


def outcomes(console: Console, results: list[DomainOutcome]) -> None:
    for outcome in results:
        d = outcome.decision
        console.print(f"[bold]{d.domain}[/bold]: {d.reason}")
        for a in outcome.adapters:
            console.print(f"  {a.adapter}: {_c(a.action)} {a.detail}")
            for change in a.changes:
                console.print(f"    {change}")


def history(console: Console, entries: list[AuditEntry]) -> None:
    table = Table(expand=False)
    for col in ("at", "kind", "domain", "observer", "detail"):
        table.add_column(col)
    for e in entries:
        table.add_row(iso(e.at) or "", e.kind, e.domain or "*", e.observer, e.detail)
    console.print(table)


def explanation(console: Console, data: Mapping[str, Any]) -> None:
    """``failover explain``: per domain, the rule in words, then the evidence per region."""
    for domain, info in data["domains"].items():
        console.print(
            f"[bold]{domain}[/bold]: primary [bold]{info['primary'] or '-'}[/bold], "
            f"secondary {info['secondary'] or '-'}, epoch {info['epoch']}"
        )
        console.print(f"  why: {info['explanation']}", highlight=False)
        decision = info["decision"]
        console.print(f"  the engine now: {decision['kind']}: {decision['reason']}", highlight=False)
        quorum = info["quorum"]
        if quorum:
            console.print(
                f"  voters: {', '.join(quorum['voters'])}; reporting: {', '.join(quorum['reporting']) or 'none'} "
                f"({quorum['needed']} needed)"
            )
        table = Table(expand=False, title=f"evidence: the last probes seen by {data['observer']} at {data['at']}")
        for col in ("region", "prio", "health", "drained", "observers", "gateways (last probe)"):
            table.add_column(col)
        for region, r in info["regions"].items():
            gateways = "\n".join(
                f"{name}={_c(g['status'])}: {'; '.join(c['last'] for c in g['checks']) or g['reason']}"
                for name, g in r["gateways"].items()
            )
            drained = r["drained"]
            votes = ", ".join(f"{o}={_c(s)}" for o, s in r["observers"].items())
            since = f" since {r['since'][11:19]}Z" if r["since"] else ""  # the region's reason is in the why line
            table.add_row(
                region,
                str(r["priority"]),
                f"{_c(r['status'])}{since}",
                f"by {drained['by']}: {drained['reason']}" if drained else "",
                votes,
                gateways,
            )
        console.print(table)
