"""Request bodies (validated, strict: unknown keys and wrong types are a 400 naming the field)
and the response shapes, which exist to document the API (docs/openapi.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# A positive duration with a unit, at most six digits before the point (so it cannot overflow a date).
FOR_PATTERN = r"^(?=[0-9.]*[1-9])\d{1,6}(\.\d{1,6})?(ms|s|m|h|d)$"

Text = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"\S")]
Who = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
RegionName = Annotated[str, StringConstraints(min_length=1, max_length=63)]
DomainName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
ForDuration = Annotated[str, StringConstraints(pattern=FOR_PATTERN)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re")


class PromoteBody(Body):
    """Pin ``region`` as primary (of ``domain``, or of every domain) until released or ``for`` runs out."""

    region: RegionName = Field(description="the region to make primary")
    reason: Text = Field(description="why: goes to the audit log and the alerts")
    domain: DomainName | None = Field(default=None, description="only this domain; default: every domain")
    for_: ForDuration | None = Field(
        default=None, alias="for", description="expire the override after this long, e.g. 30m, 2h; default: never"
    )
    force: bool = Field(default=False, description="pin the region even if it is unhealthy")
    by: Who | None = Field(default=None, description="who asks, recorded beside the token's name and the peer")


class ReleaseBody(Body):
    """Drop the manual override of ``domain`` (default: the service-wide one)."""

    domain: DomainName | None = None
    reason: Text | None = Field(default=None, description="why: goes to the audit log")
    by: Who | None = None


class DrainBody(Body):
    """Take ``region`` out of election for maintenance; traffic moves away at once."""

    region: RegionName
    reason: Text = Field(default="maintenance", description="why: goes to the audit log and the alerts")
    by: Who | None = None


class UndrainBody(Body):
    """Return ``region`` to election."""

    region: RegionName
    reason: Text | None = Field(default=None, description="why: goes to the audit log")
    by: Who | None = None


# -- responses (documentation; the handlers build plain dicts of these shapes) ------------------


class Problem(BaseModel):
    field: str = Field(description="where in the body, e.g. 'region' or 'for'")
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong, for a person")
    problems: list[Problem] = Field(default_factory=list, description="one per invalid field of the body")


class AdapterResult(BaseModel):
    adapter: str
    action: Literal["noop", "planned", "applied", "skipped", "lost_race", "error"]
    detail: str = Field(description="e.g. 'applied and verified in 12ms' or 'in sync'")
    changes: list[str]


class DomainResult(BaseModel):
    domain: str
    kind: str = Field(description="the decision: override, failover, keep, ...")
    reason: str = Field(description="the decision's one sentence")
    primary: str | None
    secondary: str | None
    epoch: int
    changed: bool = Field(description="the primary moved")
    adapters: list[AdapterResult] = Field(description="each traffic adapter, read back after the change")


class OverrideInfo(BaseModel):
    region: str
    reason: str
    by: str
    until: str | None = Field(description="ISO 8601, or null: until released")
    force: bool


class OperationResult(BaseModel):
    action: Literal["promote", "release", "drain", "undrain"]
    by: str = Field(description="who, as recorded in the audit log")
    verified: bool = Field(description="true: every adapter applied the change and read it back")
    outcomes: list[DomainResult]
    released: OverrideInfo | None = Field(default=None, description="release: the override dropped, if any")


class Healthz(BaseModel):
    status: Literal["ok"]


class Readyz(BaseModel):
    ready: bool
    reason: str


class RegionStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    healthy: bool
    drained: bool
    status: Literal["up", "down", "unknown"]
    reason: str
    since: str | None
    gateways: dict[str, Literal["up", "down", "unknown"]]


class StatusOverride(BaseModel):
    model_config = ConfigDict(extra="allow")
    region: str
    reason: str
    until: str | None
    by: str
    force: bool


class DomainStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    primary: str | None
    secondary: str | None
    epoch: int
    reason: str
    changed_at: str | None
    override: StatusOverride | None
    regions: dict[str, RegionStatus]


class Status(BaseModel):
    """The same JSON as ``failover status --json``."""

    model_config = ConfigDict(extra="allow")
    service: str
    observer: str
    domains: dict[str, DomainStatus]


REQUESTS: dict[str, type[Body]] = {
    "promote": PromoteBody,
    "release": ReleaseBody,
    "drain": DrainBody,
    "undrain": UndrainBody,
}
RESPONSES: tuple[type[BaseModel], ...] = (ErrorBody, OperationResult, Healthz, Readyz, Status)


PATTERN_MESSAGES = {
    "for": "must be a positive duration with a unit, such as 30m, 2h or 1d (at most 6 digits)",
    "reason": "must not be blank",
    "by": "must not be blank",
}


def problems_of(model: type[BaseModel], errors: list[Any]) -> list[dict[str, str]]:
    """pydantic's errors as ``{"field", "message"}``, worded for an operator."""
    keys = sorted(f.alias or name for name, f in model.model_fields.items())
    out = []
    for error in errors:
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and field in PATTERN_MESSAGES:
            message = PATTERN_MESSAGES[field]
        elif error["type"] == "extra_forbidden":
            message = f"unknown key; valid keys: {', '.join(keys)}"
        out.append({"field": field, "message": message})
    return out
