"""The ``failover`` command. Parses, calls, prints; it never decides.

Exit codes: 0 ok, 1 an operational failure, 2 bad usage or an invalid policy.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from failover import operations, render
from failover.app import App, build_app, probe_once, probe_until_known
from failover.errors import FailoverError
from failover.policy import Policy, load_policy, parse_duration

F = TypeVar("F", bound=Callable[..., Any])
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)


def _default_by() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return f"{user}@{socket.gethostname()}"


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FailoverError as exc:
            errors.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def policy_option(func: F) -> F:
    return click.option(
        "--policy",
        "policy_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="policy file (default: $FAILOVER_POLICY)",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable output")(func)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _run_app(policy: Policy, work: Callable[[App], Any], persist: bool = True, adapters: bool = True) -> Any:
    async def main() -> Any:
        app = build_app(policy, persist=persist, with_adapters=adapters)
        try:
            return await work(app)
        finally:
            await app.aclose()

    return asyncio.run(main())


def _exit_for(outcomes: list[Any]) -> None:
    if any(a.action in ("error", "lost_race") for o in outcomes for a in o.adapters):
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="log each step")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.version_option(package_name="failover")
def main(verbose: bool, log_format: str) -> None:
    """Multi-region failover coordinator for API gateways."""
    from failover.logs import setup_logging

    setup_logging(logging.INFO if verbose else logging.WARNING, log_format)


@main.command()
@policy_option
@handle_errors
def validate(policy_path: str | None) -> None:
    """Check the policy file and the credentials it names; change nothing."""
    from failover.policy import policy_warnings

    policy = load_policy(policy_path)
    for warning in policy_warnings(policy):  # valid but risky: said, and the exit code stays 0
        click.echo(f"warning: {warning}", err=True)
    from failover.app import build_adapters

    failures = 0
    for domain, adapters in build_adapters(policy).items():
        for adapter in adapters:
            try:
                console.print(f"[green]ok[/green] {domain}: {adapter.check_access()}")
            except FailoverError as exc:
                failures += 1
                console.print(f"[red]fail[/red] {domain}: {exc}")
            finally:
                adapter.close()
    if failures:
        raise FailoverError(f"{failures} adapter(s) cannot reach what the policy names")
    console.print(f"policy {policy.source} is valid: {len(policy.regions)} regions, {len(policy.domains)} domains")


@main.command()
@policy_option
@json_option
@handle_errors
def check(policy_path: str | None, as_json: bool) -> None:
    """Probe everything once and print the health table (changes nothing)."""
    policy = load_policy(policy_path)
    results = _run_app(policy, lambda app: probe_once(app.probes), persist=False, adapters=False)
    if as_json:
        _print_json(
            [
                {
                    "domain": k.domain,
                    "gateway": k.gateway,
                    "check": k.check,
                    "ok": r.ok,
                    "latency": r.latency,
                    "reason": r.reason,
                    "warning": r.warning,
                }
                for k, r in results.items()
            ]
        )
    else:
        render.checks(console, policy, results)
    if not all(r.ok for r in results.values()):
        sys.exit(1)


@main.command()
@policy_option
@json_option
@handle_errors
def plan(policy_path: str | None, as_json: bool) -> None:
    """Probe, decide, and show what each adapter would change; change nothing."""
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        await probe_until_known(app)
        return app.coordinator.evaluate(apply=False)

    outcomes = _run_app(policy, work, persist=False)
    _print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)


@main.command()
@policy_option
@json_option
@handle_errors
def once(policy_path: str | None, as_json: bool) -> None:
    """Probe, decide, apply, exit (cron mode; state kept in the store)."""
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        await probe_until_known(app)
        return await asyncio.to_thread(app.coordinator.evaluate)

    outcomes = _run_app(policy, work)
    _print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)
    _exit_for(outcomes)


@main.command()
@policy_option
@handle_errors
def run(policy_path: str | None) -> None:
    """The daemon: scheduled probes, decisions, reconciliation, proxy, API, alerts."""
    from failover.services import run_daemon

    run_daemon(load_policy(policy_path))


@main.command()
@policy_option
@json_option
@handle_errors
def status(policy_path: str | None, as_json: bool) -> None:
    """Current primary/secondary per domain, health, overrides (from the store; no probing)."""
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        return operations.status(app.coordinator)

    data = _run_app(policy, work, persist=False, adapters=False)
    _print_json(data) if as_json else render.status(console, data)


def _operation(policy_path: str | None, as_json: bool, act: Callable[[App], Any], probe: bool = True) -> None:
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        if probe:
            await probe_until_known(app)
        return await asyncio.to_thread(act, app)

    outcomes = _run_app(policy, work)
    _print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)


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
    _operation(
        policy_path,
        as_json,
        lambda app: operations.promote(app.coordinator, region, reason, by or _default_by(), domain, seconds, force),
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
        dropped, outcomes = operations.release(app.coordinator, by or _default_by(), domain)
        if dropped is None and not as_json:
            errors.print("no override was set")
        return outcomes

    _operation(policy_path, as_json, act)


@main.command()
@click.argument("region")
@click.option("--reason", default="maintenance", show_default=True)
@click.option("--by", default=None)
@policy_option
@json_option
@handle_errors
def drain(region: str, reason: str, by: str | None, policy_path: str | None, as_json: bool) -> None:
    """Take REGION out of election for maintenance."""
    _operation(policy_path, as_json, lambda app: operations.drain(app.coordinator, region, by or _default_by(), reason))


@main.command()
@click.argument("region")
@click.option("--by", default=None)
@policy_option
@json_option
@handle_errors
def undrain(region: str, by: str | None, policy_path: str | None, as_json: bool) -> None:
    """Return REGION to election."""
    _operation(policy_path, as_json, lambda app: operations.undrain(app.coordinator, region, by or _default_by()))


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
        _print_json(
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


@main.command()
@click.option("--speed", type=float, default=1.0, help="scale the demo's pauses (tests use less)")
@click.option(
    "--cluster", is_flag=True, help="three coordinators (east, west, witness) on a local etcd; needs an etcd binary"
)
@handle_errors
def demo(speed: float, cluster: bool) -> None:
    """The whole system on this machine, with nothing to set up."""
    if cluster:
        from failover.demo.cluster import run_cluster_demo

        sys.exit(run_cluster_demo(speed=speed))
    from failover.demo import run_demo

    sys.exit(run_demo(speed=speed))


@main.command("schema")
def schema() -> None:
    """Print the policy file's JSON Schema."""
    from failover.policy import json_schema

    click.echo(json_schema(), nl=False)
