"""The OpenAPI 3.1 document of the admin API, built from the request and response models.

The repository keeps a copy in docs/openapi.json (``python -m failover.api > docs/openapi.json``
regenerates it); a test checks that the copy, this function and ``GET /openapi.json`` agree.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from failover.api._models import REQUESTS, RESPONSES, ErrorBody, OperationResult, Status

REF = "#/components/schemas/{model}"

_OPERATIONS = {
    "promote": (
        "Manual failover: pin a region as primary",
        "Records an override (audited with who and why), applies it through every traffic adapter and "
        "answers with what was read back. Refuses an unhealthy region (409) unless `force` is true.",
        True,
    ),
    "release": (
        "Drop a manual override",
        "Drops the override of `domain` (or the service-wide one) and re-decides at once. An empty body is allowed.",
        False,
    ),
    "drain": ("Take a region out of election", "Traffic leaves the region at once if it is primary.", True),
    "undrain": ("Return a region to election", "The region can be elected again.", True),
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }


def _ok(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
    }


def openapi_document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in REQUESTS.values()]
    models += [(m, "serialization") for m in RESPONSES]
    _, schemas = models_json_schema(models, ref_template=REF)
    components = dict(sorted(schemas.get("$defs", {}).items()))
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                "operationId": "healthz",
                "responses": {"200": _ok(_model("Healthz"), "alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Every target probed once and a first evaluation done",
                "operationId": "readyz",
                "responses": {
                    "200": _ok(_model("Readyz"), "ready"),
                    "503": _ok(_model("Readyz"), "not ready yet; `reason` says what is missing"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "operationId": "metrics",
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/v1/status": {
            "get": {
                "summary": "Primary and secondary per domain, health, overrides",
                "description": "The same JSON as `failover status --json`.",
                "operationId": "status",
                "responses": {
                    "200": _ok(Status, "current state"),
                    "503": _error("the state store is unreachable"),
                },
            }
        },
    }
    for action, model in REQUESTS.items():
        summary, description, required = _OPERATIONS[action]
        paths[f"/v1/{action}"] = {
            "post": {
                "summary": summary,
                "description": description + " Needs `Authorization: Bearer <token>`; every accepted call is audited.",
                "operationId": action,
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": required,
                    "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
                },
                "responses": {
                    "200": _ok(OperationResult, "applied through every adapter and verified by reading back"),
                    "400": _error("bad body, unknown region or domain: `error` and `problems` name the field"),
                    "401": _error("no token, or a wrong one: nothing changed"),
                    "409": _error(
                        "refused (e.g. an unhealthy region without force), or recorded but not applied "
                        "by every adapter: `error` says which"
                    ),
                    "413": _error("body larger than 64 KiB"),
                    "503": _error("the state store is unreachable: nothing changed"),
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "failover admin API",
            "version": "1.0.0",
            "description": "Served by `failover run` on `api.listen`. GETs are open; every POST needs the bearer "
            "token from the environment variable named by `api.token_env`. See docs/runbook.md.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _model(name: str) -> type[BaseModel]:
    for model in RESPONSES:
        if model.__name__ == name:
            return model
    raise KeyError(name)


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


__all__ = ["ErrorBody", "openapi_document", "openapi_json"]
