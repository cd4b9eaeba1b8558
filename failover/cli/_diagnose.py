"""The commands that answer questions and change nothing: validate (a policy file, with or
without the network) and explain (why each primary is where it is)."""

from __future__ import annotations

import sys
from typing import Any

import click

from failover import explain as explaining
from failover import render
from failover.app import App
from failover.cli._common import (
    console,
    handle_errors,
    json_option,
    main,
    policy_option,
    print_error,
    print_json,
    run_app,
)
from failover.errors import FailoverError
from failover.policy import load_policy


@main.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--offline",
    is_flag=True,
    help="the file alone (schema, references, timing rules): no network, no credentials; for CI and pre-commit",
)
@policy_option
@handle_errors
def validate(files: tuple[str, ...], offline: bool, policy_path: str | None) -> None:
    """Check the policy file and the credentials it names; change nothing.

    FILES (and --policy) may name several policy files, as pre-commit passes them: each is
    checked, and the exit code is 2 when any is invalid. Without either, $FAILOVER_POLICY."""
    paths: list[str | None] = [*([policy_path] if policy_path else []), *files] or [None]
    if len(paths) == 1:
        _validate(paths[0], offline)
        return
    worst = 0
    for path in paths:
        try:
            _validate(path, offline)
        except FailoverError as exc:  # say it, and go on to the next file
            print_error(exc)
            worst = max(worst, exc.exit_code)
    if worst:
        sys.exit(worst)


def _validate(path: str | None, offline: bool) -> None:
    from failover.policy import policy_warnings

    policy = load_policy(path)
    for warning in policy_warnings(policy):  # valid but risky: said, and the exit code stays 0
        click.echo(f"warning: {policy.source}: {warning}" if offline else f"warning: {warning}", err=True)
    size = f"{len(policy.regions)} regions, {len(policy.domains)} domains"
    if offline:  # nothing below this line may open a socket
        console.print(f"policy {policy.source} is valid: {size} (offline: credentials and endpoints not checked)")
        return
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
    console.print(f"policy {policy.source} is valid: {size}")


@main.command()
@click.option("--domain", default=None, help="only this domain (default: all)")
@policy_option
@json_option
@handle_errors
def explain(domain: str | None, policy_path: str | None, as_json: bool) -> None:
    """Why each primary is where it is: the rule that holds it there now, in plain words, with
    the evidence of the last probes (read from the store: no probing, changes nothing)."""
    policy = load_policy(policy_path)
    if domain is not None:
        policy.domain(domain)  # an unknown domain is a usage error (exit 2) before any I/O

    async def work(app: App) -> Any:
        return explaining.explain(app.coordinator, app.probes.keys(), domain)

    data = run_app(policy, work, persist=False, adapters=False)
    print_json(data) if as_json else render.explanation(console, data)
