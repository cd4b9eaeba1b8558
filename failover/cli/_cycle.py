"""The commands that probe and decide: check, plan, once (cron), run (daemon); and demo, schema."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from failover import operations, render
from failover.app import App, probe_once, probe_until_known
from failover.cli._common import console, exit_for, handle_errors, json_option, main, policy_option, print_json, run_app
from failover.cli._lock import exclusive_run
from failover.policy import load_policy


@main.command()
@policy_option
@json_option
@handle_errors
def check(policy_path: str | None, as_json: bool) -> None:
    """Probe everything once and print the health table (changes nothing)."""
    policy = load_policy(policy_path)
    results = run_app(policy, lambda app: probe_once(app.probes), persist=False, adapters=False)
    if as_json:
        print_json(
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

    outcomes = run_app(policy, work, persist=False)
    print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)


@main.command()
@policy_option
@json_option
@handle_errors
def once(policy_path: str | None, as_json: bool) -> None:
    """Probe, decide, apply, exit (cron mode; state kept in the store).

    Two runs never overlap on one sqlite store: a second one exits 1 at once, naming the
    first. With an etcd store the leader election serialises them."""
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        await probe_until_known(app)
        return await asyncio.to_thread(app.coordinator.evaluate)

    with exclusive_run(policy):
        outcomes = run_app(policy, work)
    print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)
    exit_for(outcomes)


@main.command()
@policy_option
@handle_errors
def run(policy_path: str | None) -> None:
    """The daemon: scheduled probes, decisions, reconciliation, proxy, API, alerts."""
    from failover.services import run_daemon

    run_daemon(load_policy(policy_path))


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
