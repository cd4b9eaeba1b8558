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
from failover.policy import Policy, json_schema, load_policy, parse_duration, parse_policy, policy_warnings

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


# -- observers: who votes ---------------------------------------------------------------------

ETCD = "etcd://127.0.0.1:2379/failover/payments"


def with_etcd(data: dict[str, Any], **state: Any) -> dict[str, Any]:
    data["state"] = {"url": ETCD, **state}
    return data


def test_observers_default_to_one_per_region_in_policy_order(tmp_path: Path) -> None:
    data = base()
    data["regions"].reverse()
    policy = load_policy(write(tmp_path, data))
    assert policy.observers is None
    assert policy.voters == ["eu-west-1", "us-east-1"]
    assert policy.witnesses == []


def test_a_name_that_is_not_a_region_is_a_witness(tmp_path: Path) -> None:
    data = base()
    data["observers"] = ["eu-west-1", "arbiter", "us-east-1"]
    policy = load_policy(write(tmp_path, data))
    assert policy.voters == ["eu-west-1", "arbiter", "us-east-1"]
    assert policy.witnesses == ["arbiter"]


def test_a_witness_may_be_this_process_observer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base()
    data["observers"] = ["us-east-1", "eu-west-1", "arbiter"]
    monkeypatch.setenv("FAILOVER_OBSERVER", "arbiter")
    assert load_policy(write(tmp_path, data)).observer == "arbiter"


def test_a_witness_needs_observers_to_name_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_OBSERVER", "arbiter")
    err, message = invalid(tmp_path, base())
    assert paths(err) == ["observer"]
    assert "unknown region 'arbiter'" in message


@pytest.mark.parametrize("observer", ["eu-west-1", "arbitre"])
def test_observer_must_be_one_of_explicit_observers(tmp_path: Path, observer: str) -> None:
    """Even a region: a coordinator that is not a voter has no place in the quorum."""
    data = base()
    data["observers"] = ["us-east-1", "arbiter"]
    data["observer"] = observer
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["observer"]
    assert f"'{observer}' is not one of observers" in message and "us-east-1, arbiter" in message


def test_observer_from_env_is_checked_against_observers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base()
    data["observers"] = ["us-east-1", "arbiter"]
    monkeypatch.setenv("FAILOVER_OBSERVER", "eu-west-1")
    err, _message = invalid(tmp_path, data)
    assert paths(err) == ["observer"]


def test_duplicate_observer(tmp_path: Path) -> None:
    data = base()
    data["observers"] = ["us-east-1", "eu-west-1", "us-east-1"]
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["observers[2]"]
    assert "duplicate observer 'us-east-1'" in message


@pytest.mark.parametrize(
    ("observers", "path"),
    [
        ([], "observers"),
        (["us-east-1", "has space"], "observers[1]"),
        (["us-east-1", ""], "observers[1]"),
        (["-lead", "us-east-1"], "observers[0]"),
        ("us-east-1", "observers"),
    ],
)
def test_bad_observers(tmp_path: Path, observers: Any, path: str) -> None:
    data = base()
    data["observers"] = observers
    err, _message = invalid(tmp_path, data)
    assert paths(err) == [path]


# -- the state block: sqlite or etcd ----------------------------------------------------------


def test_sqlite_store_defaults(tmp_path: Path) -> None:
    state = load_policy(write(tmp_path, base())).state
    assert state.backend == "sqlite"
    assert state.sqlite_path == str(tmp_path.resolve() / "failover-state.db")
    assert (state.endpoints, state.prefix, state.tls, state.credentials()) == ([], "", False, None)
    assert (state.ttl, state.loop_wait, state.retry_timeout) == (10.0, 2.0, 3.0)


def test_etcd_url_gives_endpoints_and_prefix(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["state"]["url"] = "etcd://10.0.0.1:2379,[2001:DB8::0:1]:2380,Etcd-3.Example.NET./failover/payments/"
    state = load_policy(write(tmp_path, data)).state
    assert state.backend == "etcd" and not state.tls and state.sqlite_path is None
    assert state.endpoints == ["http://10.0.0.1:2379", "http://[2001:db8::1]:2380", "http://etcd-3.example.net:2379"]
    assert state.prefix == "/failover/payments"  # the trailing slash is dropped
    assert state.url == "etcd://10.0.0.1:2379,[2001:DB8::0:1]:2380,Etcd-3.Example.NET./failover/payments"
    assert (state.ttl, state.loop_wait, state.retry_timeout) == (10.0, 2.0, 3.0)
    assert state.credentials() is None


def test_etcds_url_gives_https_endpoints(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["state"]["url"] = "etcds://etcd-1:2379,etcd-2:2379/payments"
    state = load_policy(write(tmp_path, data)).state
    assert state.tls and state.endpoints == ["https://etcd-1:2379", "https://etcd-2:2379"]
    assert state.prefix == "/payments"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("etcd://10.0.0.1:2379", "has no key prefix"),
        ("etcd://10.0.0.1:2379/", "has no key prefix"),
        ("etcd://10.0.0.1:2379///", "has no key prefix"),
        ("etcd:///failover", "names no etcd member"),
        ("etcd://10.0.0.1:0/f", "1 to 65535"),
        ("etcd://10.0.0.1:65536/f", "1 to 65535"),
        ("etcd://10.0.0.1:/f", "1 to 65535"),
        ("etcd://10.0.0.1:http/f", "1 to 65535"),
        ("etcd://999.0.0.1:2379/f", "'999.0.0.1' is not an IPv4 address"),
        ("etcd://::1:2379/f", "in brackets"),
        ("etcd://[::g]:2379/f", "'[::g]' is not an IPv6 address"),
        ("etcd://[::1/f", "closing ']'"),
        ("etcd://[::1]2379/f", "is not [IPv6]:port"),
        ("etcd://etcd_1:2379/f", "'etcd_1' is not a host name"),
        ("etcd://-etcd:2379/f", "'-etcd' is not a host name"),
        ("etcd://a:2379,,b:2379/f", "an empty host"),
        ("etcd://a:2379,a:2379/f", "a:2379 is listed twice"),
        ("etcd://a:2379/f//g", "empty part"),
        ("etcd://a:2379/f/../g", "bad part '..'"),
        ("etcd://a:2379/f g", "bad part 'f g'"),
        ("etcd://a:2379/f?x=1", "no '?' or '#'"),
        ("http://a:2379/f", "etcd://host:port"),
        ("etcd:/a:2379/f", "etcd://host:port"),
        ("postgres://db/failover", "sqlite:////abs/path.db"),
    ],
)
def test_bad_state_url(tmp_path: Path, url: str, says: str) -> None:
    data = base()
    data["state"] = {"url": url}
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["state.url"]
    assert says in message, message


def test_credentials_in_the_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["state"]["url"] = "etcd://root:s3cret@10.0.0.1:2379/f"
    err, message = invalid(tmp_path, data)
    assert paths(err) == ["state.url"]
    assert "s3cret" not in message and "state.password_env" in message


def test_tls_files_are_relative_to_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    data = with_etcd(base(), ca_file="pki/ca.pem", cert_file="/etc/etcd/client.pem", key_file="client-key.pem")
    data["state"]["url"] = "etcds://10.0.0.1:2379/f"
    write(folder, data)
    monkeypatch.chdir(tmp_path)
    state = load_policy(Path("conf") / "policy.yaml").state
    assert state.ca_file == str(folder.resolve() / "pki" / "ca.pem")
    assert state.cert_file == "/etc/etcd/client.pem"
    assert state.key_file == str(folder.resolve() / "client-key.pem")
    assert state.ttl == 10.0 and state.prefix == "/f"  # the rest survives the resolution


@pytest.mark.parametrize("field", ["ca_file", "cert_file", "key_file"])
@pytest.mark.parametrize("url", [ETCD, "sqlite:///state.db"])
def test_tls_files_only_with_etcds(tmp_path: Path, field: str, url: str) -> None:
    data = base()
    data["state"] = {"url": url, field: "x.pem"}
    err, message = invalid(tmp_path, data)
    assert paths(err) == [f"state.{field}"]
    assert "only with an etcds://" in message


@pytest.mark.parametrize(("given", "missing"), [("cert_file", "key_file"), ("key_file", "cert_file")])
def test_client_certificate_and_key_go_together(tmp_path: Path, given: str, missing: str) -> None:
    data = with_etcd(base(), **{given: "x.pem"})
    data["state"]["url"] = "etcds://10.0.0.1:2379/f"
    err, message = invalid(tmp_path, data)
    assert paths(err) == [f"state.{given}"]
    assert f"needs state.{missing} too" in message


def test_ca_file_alone_is_fine(tmp_path: Path) -> None:
    data = with_etcd(base(), ca_file="ca.pem")
    data["state"]["url"] = "etcds://10.0.0.1:2379/f"
    state = load_policy(write(tmp_path, data)).state
    assert state.ca_file == str(tmp_path.resolve() / "ca.pem") and state.cert_file is None


@pytest.mark.parametrize(("given", "missing"), [("username_env", "password_env"), ("password_env", "username_env")])
def test_user_and_password_variables_go_together(tmp_path: Path, given: str, missing: str) -> None:
    err, message = invalid(tmp_path, with_etcd(base(), **{given: "ETCD_X"}))
    assert paths(err) == [f"state.{given}"]
    assert f"needs state.{missing} too" in message


@pytest.mark.parametrize("field", ["username_env", "password_env"])
def test_credential_variables_must_be_variable_names(tmp_path: Path, field: str) -> None:
    data = with_etcd(base(), username_env="ETCD_USER", password_env="ETCD_PASSWORD")
    data["state"][field] = "etcd password"
    err, _message = invalid(tmp_path, data)
    assert paths(err) == [f"state.{field}"]


def test_credentials_are_read_from_the_environment_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_USER", "failover")
    monkeypatch.setenv("ETCD_PASSWORD", "pw-1234567")
    data = with_etcd(base(), username_env="ETCD_USER", password_env="ETCD_PASSWORD")
    policy = load_policy(write(tmp_path, data))
    assert "pw-1234567" not in policy.model_dump_json()  # the policy holds the names only
    assert policy.state.credentials() == ("failover", "pw-1234567")
    monkeypatch.delenv("ETCD_PASSWORD")
    with pytest.raises(UsageError, match="ETCD_PASSWORD is not set") as info:
        policy.state.credentials()
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [("ttl", "30s"), ("loop_wait", "2s"), ("retry_timeout", "3s"), ("username_env", "U"), ("password_env", "P")],
)
def test_etcd_fields_are_refused_with_sqlite(tmp_path: Path, field: str, value: str) -> None:
    """Even at their default value: written with sqlite, they would be read as if they did something."""
    data = base()
    data["state"] = {"url": "sqlite:///state.db", field: value}
    err, message = invalid(tmp_path, data)
    assert f"state.{field}" in paths(err)
    assert "only with an etcd store" in message


def test_lease_timings(tmp_path: Path) -> None:
    data = with_etcd(base(), ttl="30s", loop_wait="10s", retry_timeout="10s")  # Patroni's own defaults
    state = load_policy(write(tmp_path, data)).state
    assert (state.ttl, state.loop_wait, state.retry_timeout) == (30.0, 10.0, 10.0)


@pytest.mark.parametrize(
    ("ttl", "loop_wait", "retry_timeout", "ok"),
    [
        ("8s", "2s", "3s", True),  # exactly at the limit
        ("7s", "2s", "3s", False),
        ("1s", "200ms", "400ms", True),
        ("1s", "200ms", "401ms", False),
        ("10s", "9s", "500ms", True),
        ("10s", "1s", "5s", False),
    ],
)
def test_patroni_rule_loop_wait_plus_twice_retry_timeout_within_ttl(
    tmp_path: Path, ttl: str, loop_wait: str, retry_timeout: str, ok: bool
) -> None:
    data = with_etcd(base(), ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)
    if ok:
        assert load_policy(write(tmp_path, data)).state.ttl == parse_duration(ttl)
    else:
        err, message = invalid(tmp_path, data)
        assert paths(err) == ["state.ttl"]
        assert "loop_wait + 2 * retry_timeout <= ttl" in message
        assert f"{ttl} is shorter than loop_wait + 2 * retry_timeout = {loop_wait} + 2 * {retry_timeout}" in message


def test_patroni_rule_shows_the_numbers_of_a_default(tmp_path: Path) -> None:
    err, message = invalid(tmp_path, with_etcd(base(), ttl="5s"))
    assert paths(err) == ["state.ttl"]
    assert "5s is shorter than loop_wait + 2 * retry_timeout = 2s + 2 * 3s = 8s" in message
    assert "at least 8s" in message


@pytest.mark.parametrize(
    ("field", "value"), [("ttl", "0s"), ("loop_wait", "0s"), ("retry_timeout", "-1s"), ("ttl", 10)]
)
def test_bad_lease_timing(tmp_path: Path, field: str, value: Any) -> None:
    data = with_etcd(base(), **{field: value})
    if field != "ttl":
        data["state"]["ttl"] = "1h"  # only the field under test is wrong
    err, _message = invalid(tmp_path, data)
    assert paths(err) == [f"state.{field}"]


def test_whole_seconds_for_the_lease(tmp_path: Path) -> None:
    err, message = invalid(tmp_path, with_etcd(base(), ttl="10500ms"))
    assert paths(err) == ["state.ttl"] and "whole seconds" in message


def _example_with_etcd() -> dict[str, Any]:
    """example.yaml with its commented etcd alternative (observers and state) switched on."""
    lines = (POLICIES / "example.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# observers:"))
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    data = yaml.safe_load((POLICIES / "example.yaml").read_text())
    data.update(yaml.safe_load("\n".join(block)))
    return dict(data)


EXAMPLE_WITH_ETCD = _example_with_etcd()


def test_the_documented_etcd_alternative_loads(tmp_path: Path) -> None:
    for name in ("etcd-ca.pem", "etcd-client.pem", "etcd-client-key.pem"):
        assert name in EXAMPLE_WITH_ETCD["state"].values()
    policy = load_policy(write(tmp_path, EXAMPLE_WITH_ETCD))
    assert policy.voters == ["us-east-1", "eu-west-1", "witness"] and policy.witnesses == ["witness"]
    state = policy.state
    assert state.backend == "etcd" and state.tls and len(state.endpoints) == 3
    assert state.prefix == "/failover/payments-api"
    assert state.ca_file == str(tmp_path.resolve() / "etcd-ca.pem")
    assert (state.username_env, state.password_env) == ("ETCD_USERNAME", "ETCD_PASSWORD")
    assert (state.ttl, state.loop_wait, state.retry_timeout) == (10.0, 2.0, 3.0)
    assert policy_warnings(policy) == []


# -- warnings: valid, but probably not what was meant -----------------------------------------


def regions(*names: str) -> dict[str, Any]:
    data = base()
    data["observer"] = names[0]
    data["regions"] = [
        {"name": name, "gateways": [{"name": f"gw-{i}", "address": f"192.0.2.{i + 1}"}]} for i, name in enumerate(names)
    ]
    return data


def warnings_for(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    return policy_warnings(load_policy(write(tmp_path, data)))


def test_sqlite_brings_no_quorum_warning(tmp_path: Path) -> None:
    assert warnings_for(tmp_path, base()) == []
    assert warnings_for(tmp_path, regions("a", "b", "c", "d")) == []


def test_two_observers_and_no_witness_warn_that_only_manual_promotion_moves_traffic(tmp_path: Path) -> None:
    expected = (
        "observers: with two observers and no witness, automatic failover cannot tell a partition from an "
        "outage: only manual promotion (failover promote) will move traffic; add a witness (a third observer "
        "in another place)"
    )
    assert warnings_for(tmp_path, with_etcd(base())) == [expected]
    data = with_etcd(regions("a", "b", "c"))
    data["observers"] = ["a", "c"]
    assert warnings_for(tmp_path, data) == [expected]


def test_a_witness_makes_two_regions_safe(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["observers"] = ["us-east-1", "eu-west-1", "witness"]
    assert warnings_for(tmp_path, data) == []


def test_two_observers_one_a_witness_warn(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["observers"] = ["us-east-1", "witness"]
    (warning,) = warnings_for(tmp_path, data)
    assert warning.startswith("observers: with two observers, losing either one stops automatic failover")


@pytest.mark.parametrize(("count", "warned"), [(3, False), (4, True), (5, False), (6, True)])
def test_an_even_number_of_observers_warns(tmp_path: Path, count: int, warned: bool) -> None:
    names = [f"r{i}" for i in range(count)]
    found = warnings_for(tmp_path, with_etcd(regions(*names)))
    if warned:
        (warning,) = found
        assert f"{count} observers need {count // 2 + 1} for a strict majority" in warning and "odd" in warning
    else:
        assert found == []


def test_a_single_observer_over_several_regions_warns(tmp_path: Path) -> None:
    data = with_etcd(base())
    data["observers"] = ["us-east-1"]
    (warning,) = warnings_for(tmp_path, data)
    assert warning.startswith("observers: only 'us-east-1' votes")
    assert warnings_for(tmp_path, with_etcd(regions("solo"))) == []  # one region: nothing to fail over to


def test_a_witness_named_like_a_region_is_probably_a_typo(tmp_path: Path) -> None:
    data = base()
    data["observers"] = ["us-east-1", "eu-west1", "arbiter"]
    assert warnings_for(tmp_path, data) == [
        "observers[1]: 'eu-west1' is not a region, so it is a witness (never gets traffic); did you mean 'eu-west-1'?"
    ]


def test_cli_validate_prints_warnings_and_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, with_etcd(base()), "two.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("FAILOVER_OBSERVER", "FAILOVER_POLICY")}
    proc = subprocess.run(
        [*_failover_cmd(), "validate", "--policy", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: observers: with two observers and no witness" in proc.stderr
    assert "warning" not in proc.stdout and "is valid" in proc.stdout


# -- alerts -----------------------------------------------------------------------------------


def test_alerts_can_filter_on_quorum_and_leader_events(tmp_path: Path) -> None:
    data = base()
    data["alerts"] = [{"kind": "slack", "webhook_env": "SLACK", "events": ["quorum_lost", "leader_changed"]}]
    (alert,) = load_policy(write(tmp_path, data)).alerts
    assert alert.events == ["quorum_lost", "leader_changed"]
    data["alerts"][0]["events"] = ["quorum_lots"]
    err, _message = invalid(tmp_path, data)
    assert paths(err) == ["alerts[0].events[0]"]
