"""The policy file: the shipped examples load, and every mistake an operator can make gets a
message that names the file and the field path (never a traceback)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import FailoverError, PolicyError, UsageError
from failover.policy import Policy, json_schema, load_policy, parse_duration, parse_policy

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAILOVER_OBSERVER", raising=False)
    monkeypatch.delenv("FAILOVER_POLICY", raising=False)


def base() -> dict[str, Any]:
    """A valid two-region policy, as the tests mutate it."""
    return {
        "service": "payments-api",
        "observer": "us-east-1",
        "regions": [
            {
                "name": "us-east-1",
                "priority": 10,
                "gateways": [
                    {"name": "use1-a", "address": "192.0.2.10"},
                    {"name": "use1-b", "address": "192.0.2.11"},
                ],
            },
            {
                "name": "eu-west-1",
                "priority": 20,
                "gateways": [
                    {"name": "euw1-a", "address": "198.51.100.10"},
                ],
            },
        ],
        "domains": [
            {
                "name": "api.example.com",
                "checks": [
                    {"kind": "http", "port": 8080, "path": "/ready", "interval": "2s", "timeout": "1s"},
                    {"kind": "tls", "port": 443, "warn_before": "14d"},
                ],
            }
        ],
        "health": {"rise": 2, "fall": 3, "min_healthy_gateways": 1},
        "election": {"failback": "manual", "failback_after": "10m", "hold_down": "5m"},
    }


def write(tmp_path: Path, data: Any, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def invalid(tmp_path: Path, data: Any) -> tuple[PolicyError, str]:
    """Load ``data`` from a file; it must fail with a PolicyError naming the file."""
    path = write(tmp_path, data)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message, message
    assert info.value.exit_code == 2
    assert "Traceback" not in message
    return info.value, message


def paths(err: PolicyError) -> list[str]:
    return [path for path, _ in err.problems]


# -- the shipped examples ----------------------------------------------------------------------


def test_example_policy_loads() -> None:
    policy = load_policy(POLICIES / "example.yaml")
    assert policy.service == "payments-api"
    assert [r.name for r in policy.regions] == ["us-east-1", "eu-west-1"]
    assert policy.observer == "us-east-1"
    domain = policy.domain("api.example.com")
    assert {c.kind for c in domain.checks} == {"http", "tls"}
    http = next(c for c in domain.checks if c.kind == "http")
    assert (http.interval, http.timeout) == (2.0, 1.0)
    (traffic,) = domain.traffic
    assert traffic.kind == "rfc2136"
    assert traffic.tsig is not None and traffic.tsig.secret_env == "FAILOVER_TSIG_SECRET"
    assert policy.election.hold_down == 300.0 and policy.election.failback_after == 600.0
    assert policy.health.rise == 2 and policy.health.fall == 3
    assert policy.state.url == "sqlite:////var/lib/failover/state.db"
    assert {a.kind for a in policy.alerts} == {"slack", "webhook"}
    assert policy.api is not None and policy.api.token_env == "FAILOVER_API_TOKEN"
    assert policy.proxy is not None
    assert policy.source == str((POLICIES / "example.yaml").resolve())


def test_example_policy_keeps_no_secrets() -> None:
    """Secrets are named by environment variable, never written in the file."""
    data = yaml.safe_load((POLICIES / "example.yaml").read_text())

    def items(node: Any) -> list[tuple[str, Any]]:
        if isinstance(node, dict):
            return [(str(k), v) for k, v in node.items()] + [kv for v in node.values() for kv in items(v)]
        if isinstance(node, list):
            return [kv for v in node for kv in items(v)]
        return []

    pairs = items(data)
    assert not [k for k, _ in pairs if k in ("secret", "token", "password", "webhook_url", "key")]
    env_names = [v for k, v in pairs if k.endswith("_env")]
    assert len(env_names) >= 4
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", v) for v in env_names), env_names


def test_example_policy_explains_each_block() -> None:
    lines = (POLICIES / "example.yaml").read_text().splitlines()
    comments = sum(1 for line in lines if "#" in line)
    assert comments >= 30
    for block in ("regions:", "domains:", "health:", "election:", "state:", "alerts:", "api:"):
        i = next(i for i, line in enumerate(lines) if line.startswith(block))
        assert lines[i - 1].startswith("#"), f"{block} has no comment above it"


def test_minimal_policy_loads_with_defaults() -> None:
    policy = load_policy(POLICIES / "minimal.yaml")
    assert len(policy.regions) == 2
    assert policy.election.failback == "manual"
    assert policy.state.url == "sqlite:///" + str((POLICIES / "failover-state.db").resolve())


# -- malformed files ---------------------------------------------------------------------------


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    text = "service: x\nobserver: a\nregions:\n  - name: a\n    gateways: [ {name: g, address: 10.0.0.1}\n"
    _err, message = invalid(tmp_path, text)
    assert "malformed YAML" in message
    assert "line 6" in message and "column" in message, message


def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    _err, message = invalid(tmp_path, "service: x\nregions:\n\t- name: a\n")
    assert "line 3" in message, message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    _err, message = invalid(tmp_path, text)
    assert "mapping" in message


def test_missing_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "policy.yaml"
    with pytest.raises(UsageError) as info:
        load_policy(missing)
    assert str(missing) in str(info.value)
    assert "No such file" in str(info.value)
    assert info.value.exit_code == 2


def test_no_policy_path_and_no_env(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="FAILOVER_POLICY"):
        load_policy(None)


def test_policy_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, base())
    monkeypatch.setenv("FAILOVER_POLICY", str(path))
    assert load_policy(None).source == str(path.resolve())


# -- field errors name the field path ----------------------------------------------------------


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    data = base()
    data["regions"][0]["prioirty"] = data["regions"][0].pop("priority")
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["regions[0].prioirty"]
    assert "unknown key 'prioirty'" in message
    assert "did you mean 'priority'?" in message
    assert "regions[0].prioirty: unknown key" in message


def test_unknown_key_in_a_check_names_the_check_without_the_tag(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["checks"][0]["intreval"] = "2s"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0].intreval"]
    assert "did you mean 'interval'?" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    data = base()
    data["elections"] = data.pop("election")
    _err, message = invalid(tmp_path, data)
    assert "did you mean 'election'?" in message


def test_bad_address_names_the_gateway(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["gateways"][0]["address"] = "198.51.100.300"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["regions[1].gateways[0].address"]
    assert "regions[1].gateways[0].address: '198.51.100.300' is not an IPv4 or IPv6 address" in message


def test_zero_interval(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["checks"][0]["interval"] = "0s"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0].interval"]
    assert "greater than zero" in message


@pytest.mark.parametrize("value", [2, 2.5, True])
def test_bare_number_duration(tmp_path: Path, value: object) -> None:
    data = base()
    data["domains"][0]["checks"][0]["interval"] = value
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0].interval"]
    assert "'2s'" in message  # says what a duration looks like


def test_bare_number_hold_down(tmp_path: Path) -> None:
    data = base()
    data["election"]["hold_down"] = 300
    err, _message = invalid(tmp_path, data)
    assert paths(err) == ["election.hold_down"]


def test_duration_with_unknown_unit(tmp_path: Path) -> None:
    data = base()
    data["election"]["hold_down"] = "5 minutes"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["election.hold_down"]
    assert "'5 minutes' is not a duration" in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("14d", 14 * 86400.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_observer_naming_an_unknown_region(tmp_path: Path) -> None:
    data = base()
    data["observer"] = "us-east-2"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["observer"]
    assert "unknown region 'us-east-2'" in message
    assert "did you mean 'us-east-1'?" in message
    assert "eu-west-1" in message


def test_duplicate_region_name(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["name"] = "us-east-1"
    err, message = invalid(tmp_path, data)
    assert "regions[1].name" in paths(err)
    assert "duplicate region name 'us-east-1'" in message


def test_duplicate_gateway_name_across_regions(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["gateways"][0]["name"] = "use1-a"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["regions[1].gateways[0].name"]
    assert "duplicate gateway name 'use1-a'" in message


def test_duplicate_gateway_address(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["gateways"][0]["address"] = "192.0.2.10"
    err, _message = invalid(tmp_path, data)
    assert paths(err) == ["regions[1].gateways[0].address"]


def test_duplicate_domain_name_after_normalisation(tmp_path: Path) -> None:
    data = base()
    data["domains"].append(copy.deepcopy(data["domains"][0]))
    data["domains"][1]["name"] = "API.example.com."
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[1].name"]
    assert "duplicate domain name 'api.example.com'" in message


def test_timeout_longer_than_interval(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["checks"][0].update(interval="1s", timeout="1500ms")
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0].timeout"]
    assert "longer than the interval" in message


def test_timeout_longer_than_a_default_interval(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["checks"][0] = {"kind": "tcp", "port": 443, "timeout": "3s"}  # interval 2s default
    err, _ = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0].timeout"]


def test_min_healthy_gateways_larger_than_a_region(tmp_path: Path) -> None:
    data = base()
    data["health"]["min_healthy_gateways"] = 2  # eu-west-1 has one gateway
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["health.min_healthy_gateways"]
    assert "eu-west-1" in message and "us-east-1" not in message.split("min_healthy_gateways")[1]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["gateways"][0]["address"] = "nope"
    data["domains"][0]["checks"][0]["interval"] = "0s"
    err, _message = invalid(tmp_path, data)
    assert set(paths(err)) == {"regions[1].gateways[0].address", "domains[0].checks[0].interval"}


def test_bad_tsig_secret_env_name(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["traffic"] = [
        {
            "kind": "rfc2136",
            "server": "127.0.0.1:5353",
            "zone": "example.com.",
            "tsig": {"name": "k.", "secret_env": "not a variable"},
        }
    ]
    err, _ = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].traffic[0].tsig.secret_env"]


def test_unknown_check_kind(tmp_path: Path) -> None:
    data = base()
    data["domains"][0]["checks"][0]["kind"] = "htttp"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["domains[0].checks[0]"]
    assert "'http'" in message


# -- resolution --------------------------------------------------------------------------------


def test_relative_sqlite_url_is_relative_to_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    data = base()
    data["state"] = {"url": "sqlite:///data/state.db"}
    write(folder, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    policy = load_policy(Path("..") / "conf" / "policy.yaml")
    assert policy.state.url == "sqlite:///" + str(folder.resolve() / "data" / "state.db")
    assert policy.state.url.startswith("sqlite:////")
    assert policy.source == str((folder / "policy.yaml").resolve())


def test_absolute_sqlite_url_is_kept(tmp_path: Path) -> None:
    data = base()
    data["state"] = {"url": f"sqlite:///{tmp_path}/abs.db"}
    assert load_policy(write(tmp_path, data)).state.url == f"sqlite:///{tmp_path}/abs.db"


def test_state_url_with_unknown_scheme(tmp_path: Path) -> None:
    data = base()
    data["state"] = {"url": "postgres://db/failover"}
    err, _message = invalid(tmp_path, data)
    assert paths(err) == ["state.url"]


def test_failover_observer_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, base())
    monkeypatch.setenv("FAILOVER_OBSERVER", "eu-west-1")
    assert load_policy(path).observer == "eu-west-1"


def test_failover_observer_override_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, base())
    monkeypatch.setenv("FAILOVER_OBSERVER", "ap-south-1")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [p for p, _ in info.value.problems] == ["observer"]
    assert "ap-south-1" in str(info.value)


def test_empty_failover_observer_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_OBSERVER", "")
    assert load_policy(write(tmp_path, base())).observer == "us-east-1"


def test_region_lookup_lists_known_regions(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, base()))
    assert policy.region("eu-west-1").priority == 20
    with pytest.raises(UsageError) as info:
        policy.region("nope")
    message = str(info.value)
    assert "'nope'" in message and "us-east-1" in message and "eu-west-1" in message
    assert info.value.exit_code == 2


def test_domain_lookup_normalises_and_lists_known(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, base()))
    assert policy.domain("API.Example.com.").name == "api.example.com"
    with pytest.raises(UsageError, match=r"api\.example\.com"):
        policy.domain("www.example.com")


def test_policy_is_immutable(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, base()))
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        policy.regions[0].priority = 1  # type: ignore[misc]


# -- no input crashes the loader --------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.just("0s"),
    st.just("10.0.0.1"),
    st.just("us-east-1"),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _leaves(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*at, i))
    return out


EXAMPLE = yaml.safe_load((POLICIES / "example.yaml").read_text())
LEAVES = _leaves(EXAMPLE)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(LEAVES), JUNK, st.booleans()), min_size=1, max_size=3))
def test_any_mutation_of_the_example_is_a_policy_or_a_policy_error(edits: list[Any]) -> None:
    data = copy.deepcopy(EXAMPLE)
    for at, value, delete in edits:
        node = data
        try:
            for part in at[:-1]:
                node = node[part]
            if delete and isinstance(node, dict):
                node.pop(at[-1], None)
            else:
                node[at[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        result = parse_policy(data, "fuzz.yaml")
    except PolicyError as exc:
        assert exc.problems and all(isinstance(p, str) and m for p, m in exc.problems)
        assert "fuzz.yaml" in str(exc)
    else:
        assert isinstance(result, Policy)


# -- the command -------------------------------------------------------------------------------


def _failover_cmd() -> list[str]:
    exe = shutil.which("failover")
    return [exe] if exe else [sys.executable, "-c", "from failover.cli import main; main()"]


def test_cli_validate_bad_policy_exits_2_naming_the_field(tmp_path: Path) -> None:
    data = base()
    data["regions"][1]["gateways"][0]["address"] = "not-an-ip"
    path = write(tmp_path, data, "bad.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("FAILOVER_OBSERVER", "FAILOVER_POLICY")}
    proc = subprocess.run(
        [*_failover_cmd(), "validate", "--policy", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "regions[1].gateways[0].address" in proc.stderr
    assert "bad.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_errors_are_failover_errors() -> None:
    assert issubclass(PolicyError, UsageError) and issubclass(UsageError, FailoverError)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("service: a\nservice: b\nobserver: east\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "key 'service' appears twice" in str(caught.value) and "line 2" in str(caught.value)


def test_schema_shows_duration_defaults_as_strings() -> None:
    schema = json.loads(json_schema())
    assert schema["$defs"]["HttpCheck"]["properties"]["interval"]["default"] == "2s"
    assert schema["$defs"]["Election"]["properties"]["hold_down"]["default"] == "5m"
