"""policies/schema.json is the generated JSON Schema of the policy model, kept in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from failover.policy import json_schema
from tests.unit.test_policy import EXAMPLE_WITH_ETCD

POLICIES = Path(__file__).resolve().parents[2] / "policies"
EXAMPLES = sorted(POLICIES.glob("*.yaml"))


def test_schema_file_is_up_to_date() -> None:
    on_disk = (POLICIES / "schema.json").read_text()
    assert on_disk == json_schema(), "regenerate it: failover schema > policies/schema.json"


def test_schema_is_json_and_forbids_unknown_keys() -> None:
    schema = json.loads(json_schema())
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"service", "observer", "regions", "domains"}
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, name


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"example.yaml", "minimal.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((POLICIES / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors


def test_schema_rejects_what_the_model_rejects() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(json_schema()))
    data = yaml.safe_load((POLICIES / "minimal.yaml").read_text())
    data["regions"][0]["prioirty"] = 1
    assert not validator.is_valid(data)
    data = yaml.safe_load((POLICIES / "minimal.yaml").read_text())
    data["domains"][0]["checks"][0]["interval"] = 2  # a bare number is not a duration
    assert not validator.is_valid(data)


def test_block_defaults_show_durations_as_strings() -> None:
    """A default the schema shows must itself validate: ``"10s"``, never a bare 10.0."""
    properties = json.loads(json_schema())["properties"]
    assert properties["state"]["default"]["ttl"] == "10s"
    assert properties["state"]["default"]["retry_timeout"] == "3s"
    assert properties["election"]["default"]["failback_after"] == "10m"


def test_the_documented_etcd_alternative_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads((POLICIES / "schema.json").read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(EXAMPLE_WITH_ETCD)]
    assert not errors


@pytest.mark.parametrize(
    "state",
    [
        {"url": "etcd://10.0.0.1:2379/"},  # no prefix
        {"url": "etcd://root:pw@10.0.0.1:2379/f"},
        {"url": "mysql://db/f"},
        {"url": "etcds://10.0.0.1:2379/f", "cert_file": "c.pem"},  # without its key
        {"url": "etcd://10.0.0.1:2379/f", "password_env": "P"},  # without the user
        {"url": "etcd://10.0.0.1:2379/f", "ttl": 10},
    ],
)
def test_schema_rejects_bad_state_blocks(state: dict[str, object]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(json_schema()))
    data = yaml.safe_load((POLICIES / "minimal.yaml").read_text())
    data["state"] = state
    assert not validator.is_valid(data)
    data["state"] = {"url": "etcd://10.0.0.1:2379/f"}
    assert validator.is_valid(data)
