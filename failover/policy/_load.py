"""Loading a policy file: YAML, validation with field paths, cross-field checks, JSON Schema."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from failover.errors import PolicyError, UsageError
from failover.policy._crosscheck import policy_problems
from failover.policy._model import Policy
from failover.policy._state import State
from failover.policy._types import DURATION_PATTERN, format_duration

_TAGS = {"http", "tcp", "tls", "dns", "rfc2136", "zonefile", "route53", "clouddns", "eip", "slack", "webhook"}


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    items = list(loc)
    for i, part in enumerate(items):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TAGS and i > 0 and isinstance(items[i - 1], int):
            continue  # pydantic puts the union's tag in the path; the operator never wrote it
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_policy(data: Any, source: str = "<policy>", observer: str | None = None) -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(source, [("", "the file must hold a mapping (service:, regions:, domains: ...)")])
    if observer:
        data = {**data, "observer": observer}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            path = _path(err["loc"])
            unknown = re.match(r"unknown key '([^']+)'", msg)
            if unknown:  # point at the key itself: regions[0].prioirty
                path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            problems.append((path, msg))
        raise PolicyError(source, problems) from None
    problems = policy_problems(policy)
    if problems:
        raise PolicyError(source, problems)
    return policy


def load_policy(path: str | os.PathLike[str] | None) -> Policy:
    """Read, parse and validate a policy file. ``$FAILOVER_OBSERVER`` overrides ``observer``."""
    if path is None:
        path = os.environ.get("FAILOVER_POLICY")
        if not path:
            raise UsageError("no policy file: pass --policy PATH or set FAILOVER_POLICY")
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read policy {file}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(str(file), [("", f"malformed YAML{where}: {problem}")]) from None
    policy = parse_policy(data, str(file), os.environ.get("FAILOVER_OBSERVER"))
    policy = policy.model_copy(update={"state": _resolve_state(policy.state, file)})
    policy._source = str(file.resolve())
    return policy


def _resolve_state(state: State, policy_file: Path) -> State:
    """``sqlite:///rel.db`` and the TLS files are relative to the policy file, as DESIGN.md says."""
    url = state.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        url = "sqlite:///" + str((policy_file.parent / rel).resolve())
    files = {
        name: resolve_relative(str(policy_file), path)
        for name in ("ca_file", "cert_file", "key_file")
        if (path := getattr(state, name)) is not None
    }
    return state.model_copy(update={"url": url, **files})


def resolve_relative(policy_file: str | None, path: str) -> str:
    if os.path.isabs(path) or not policy_file:
        return path
    return str((Path(policy_file).parent / path).resolve())


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _duration_defaults(node: Any, defs: dict[str, Any]) -> None:
    """Show duration defaults as the strings a file must hold (``"2s"``), not as seconds: on
    each duration field, and inside a block's default (``state: {ttl: "10s", ...}``)."""
    if isinstance(node, dict):
        if node.get("pattern") == DURATION_PATTERN and isinstance(node.get("default"), int | float):
            node["default"] = format_duration(float(node["default"]))
        ref, default = node.get("$ref"), node.get("default")
        if isinstance(ref, str) and isinstance(default, dict):
            fields = defs.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            for key, value in default.items():
                if fields.get(key, {}).get("pattern") == DURATION_PATTERN and isinstance(value, int | float):
                    default[key] = format_duration(float(value))
        for value in node.values():
            _duration_defaults(value, defs)
    elif isinstance(node, list):
        for value in node:
            _duration_defaults(value, defs)


def json_schema() -> str:
    schema = Policy.model_json_schema(mode="validation")
    _duration_defaults(schema, schema.get("$defs", {}))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover policy"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
