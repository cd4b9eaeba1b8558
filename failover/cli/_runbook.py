"""The on-call commands: status, promote, release, drain, undrain, history."""

from __future__ import annotations

from typing import Any

import click

from failover import operations, render
from failover.app import App
from failover.cli._common import (
    console,
    default_by,
    errors,
    handle_errors,
    json_option,
    main,
    operation,
    policy_option,
    print_json,
    run_app,
)
from failover.policy import load_policy, parse_duration


@main.command()
@policy_option
@json_option
@handle_errors
def status(policy_path: str | None, as_json: bool) -> None:
    """Current primary/secondary per domain, health, overrides (from the store; no probing)."""
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        return operations.status(app.coordinator)

    data = run_app(policy, work, persist=False, adapters=False)
    print_json(data) if as_json else render.status(console, data)


@main.command()
@click.argument("region")
@click.option("--reason", required=True, help="why: goes to the audit log and the alerts")
@click.option("--domain", default=None, help="only this domain (default: all)")
@click.option("--for", "duration", default=None, help="expire the override after e.g. 30m, 2h")
@click.option("--force", is_flag=True, help="pin the region even if it is unhealthy")
@click.option("--by", default=None, help="who asks (default: user@host)")
@policy_option
@json_option
@handle_errors
def promote(
    region: str,
    reason: str,
    domain: str | None,
    duration: str | None,
    force: bool,
    by: str | None,
    policy_path: str | None,
    as_json: bool,
) -> None:
    """Manual failover: pin REGION as primary until released or expired."""
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
        if seconds <= 0:
            raise click.BadParameter(
                "must be longer than zero (leave --for out to pin until released)", param_hint="--for"
            )
    operation(
        policy_path,
        as_json,
        lambda app: operations.promote(app.coordinator, region, reason, by or default_by(), domain, seconds, force),
    )


@main.command()
@click.option("--domain", default=None, help="only this domain's override (default: the service-wide one)")
@click.option("--by", default=None)
@policy_option
@json_option
@handle_errors
def release(domain: str | None, by: str | None, policy_path: str | None, as_json: bool) -> None:
    """Drop a manual override."""

    def act(app: App) -> Any:
        dropped, outcomes = operations.release(app.coordinator, by or default_by(), domain)
        if dropped is None and not as_json:
            errors.print("no override was set")
        return outcomes

    operation(policy_path, as_json, act)


@main.command()
@click.argument("region")
@click.option("--reason", default="maintenance", show_default=True)
@click.option("--by", default=None)
@policy_option
@json_option
@handle_errors
def drain(region: str, reason: str, by: str | None, policy_path: str | None, as_json: bool) -> None:
    """Take REGION out of election for maintenance."""
    operation(policy_path, as_json, lambda app: operations.drain(app.coordinator, region, by or default_by(), reason))


@main.command()
@click.argument("region")
@click.option("--by", default=None)
@policy_option
@json_option
@handle_errors
def undrain(region: str, by: str | None, policy_path: str | None, as_json: bool) -> None:
    """Return REGION to election."""
    operation(policy_path, as_json, lambda app: operations.undrain(app.coordinator, region, by or default_by()))


@main.command()
@click.option("--domain", default=None)
@click.option("--limit", type=int, default=None, help="only the newest N entries")
@policy_option
@json_option
@handle_errors
def history(domain: str | None, limit: int | None, policy_path: str | None, as_json: bool) -> None:
    """The audit log, oldest first."""
    policy = load_policy(policy_path)
    from failover.store import open_store

    store = open_store(policy.state, policy.observer, policy.report_freshness())
    try:
        entries = store.history(policy.domain(domain).name if domain else None, limit)
    finally:
        store.close()
    if as_json:
        print_json(
            [
                {
                    "at": operations.iso(e.at),
                    "kind": e.kind,
                    "domain": e.domain,
                    "detail": e.detail,
                    "observer": e.observer,
                    "data": e.data,
                }
                for e in entries
            ]
        )
    else:
        render.history(console, entries)
