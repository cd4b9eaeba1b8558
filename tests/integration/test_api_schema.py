"""The running admin API against its own OpenAPI document, with schemathesis: generated valid and
invalid requests, with and without the token; every answer must match the document (status
codes, content types, bodies), nothing may be a 5xx, invalid input must be refused, and an
operation that declares the bearer token must refuse a call without it."""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (the test extra)")

from schemathesis import GenerationMode  # noqa: E402

from failover.localgw import LocalGateway, ThreadedGateways  # noqa: E402
from failover.policy import parse_policy  # noqa: E402
from failover.store import open_store  # noqa: E402
from tests.conftest import EAST, WEST, wait_for  # noqa: E402
from tests.integration.test_api import DOMAIN, TOKEN_ENV, api_policy  # noqa: E402
from tests.support.bind import free_port  # noqa: E402
from tests.support.daemon import DaemonThread  # noqa: E402

TOKEN = "tok-" + secrets.token_hex(16)


STATE: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("api-schema")
    port = free_port()
    pool = ThreadedGateways([LocalGateway(n, a, port) for n, a in {**EAST, **WEST}.items()])
    pool.start()
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN
    policy = parse_policy(api_policy(tmp, port))
    daemon = DaemonThread(policy).start()
    assert policy.api is not None
    base = f"http://{policy.api.listen}"
    STATE["url"] = policy.state.url
    try:
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 15, "ready")
        yield base
    finally:
        daemon.stop()
        pool.close()
        if old is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = old


@pytest.fixture(scope="module")
def api_schema(api_base: str) -> Any:
    return schemathesis.openapi.from_url(api_base + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def make_real(case: Any) -> None:
    """The document cannot list this policy's regions and domains, so a generated valid body
    names ones that do not exist (a 400). Valid bodies get real names here, so that valid
    calls really promote, release, drain and undrain, in random order."""
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return
    body = dict(case.body)
    if isinstance(body.get("region"), str):
        body["region"] = random.choice(["east", "west"])
    if isinstance(body.get("domain"), str):
        body["domain"] = DOMAIN
    case.body = body


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_document(case: Any, api_base: str) -> None:
    headers = None
    if case.operation.method.upper() == "POST":
        make_real(case)
        headers = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(base_url=api_base, headers=headers)


def test_valid_generated_calls_really_changed_things(api_base: str) -> None:
    store = open_store(STATE["url"])
    try:
        calls = {e.data.get("action") for e in store.history() if e.kind == "api"}
    finally:
        store.close()
    assert {"promote", "drain"} <= calls, calls
