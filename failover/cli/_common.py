"""What every command shares: the ``failover`` group, error-to-exit-code mapping, the common
options, JSON printing, and running an app for the length of one command."""

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
from failover.app import App, build_app, probe_until_known
from failover.errors import FailoverError
from failover.policy import Policy, load_policy

log = logging.getLogger("failover.cli")
F = TypeVar("F", bound=Callable[..., Any])
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True)


def default_by() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return f"{user}@{socket.gethostname()}"


def print_error(exc: FailoverError) -> None:
    errors.print(f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True)


def handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FailoverError as exc:
            print_error(exc)
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


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def run_app(policy: Policy, work: Callable[[App], Any], persist: bool = True, adapters: bool = True) -> Any:
    async def main() -> Any:
        from failover.discovery import discover_once

        for problem in await discover_once(policy):  # gateways_from: one answer, or the region stays unknown
            log.warning("gateways_from: %s", problem)
        app = build_app(policy, persist=persist, with_adapters=adapters)
        try:
            return await work(app)
        finally:
            await app.aclose()

    return asyncio.run(main())


def exit_for(outcomes: list[Any]) -> None:
    if any(a.action in ("error", "lost_race") for o in outcomes for a in o.adapters):
        sys.exit(1)


def operation(policy_path: str | None, as_json: bool, act: Callable[[App], Any], probe: bool = True) -> None:
    policy = load_policy(policy_path)

    async def work(app: App) -> Any:
        if probe:
            await probe_until_known(app)
        return await asyncio.to_thread(act, app)

    outcomes = run_app(policy, work)
    print_json(operations.outcomes_json(outcomes)) if as_json else render.outcomes(console, outcomes)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="log each step")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.version_option(package_name="failover")
def main(verbose: bool, log_format: str) -> None:
    """Multi-region failover coordinator for API gateways."""
    from failover.logs import setup_logging

    setup_logging(logging.INFO if verbose else logging.WARNING, log_format)
