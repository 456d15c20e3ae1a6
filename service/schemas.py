"""The HTTP shapes: input models refuse unknown fields; output models describe every answer.

Inputs and outputs are separate classes so that ``/openapi.json`` documents exactly what goes in
and what comes out. Handlers return plain dataclasses/dicts; routes shape them into these models.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Track = Literal["academic", "vocational", "project"]
RiskLevel = Literal["low", "medium", "high", "unknown"]


def _as_utc(value: dt.datetime) -> dt.datetime:
    """Times are stored in UTC; SQLite hands them back without a zone, so name it."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


UtcDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ErrorOut(_Out):
    """Every 4xx/5xx answer: a reason a person can act on."""

    detail: str | list[dict[str, Any]] = Field(
        description="why the request failed; a list of {loc, msg, type} for validation errors",
        examples=["no student with id 'S404'"],
    )


def error_response(description: str, example: str | list[dict[str, Any]]) -> dict[str, Any]:
    """An OpenAPI response entry for an error: the ErrorOut shape with its own example ``detail``."""
    return {
        "model": ErrorOut,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


# Each example is what the service really answers (tests/e2e/test_docs.py checks them).
ERROR_EXAMPLES: dict[int, str | list[dict[str, Any]]] = {
    400: "There was an error parsing the body",
    401: "unknown, expired or revoked token",
    403: "the student role may not do this (needs admin)",
    404: "no student with id 'S404'",
    422: [
        {
            "loc": ["query", "k"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ],
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_response("malformed request (e.g. a body that is not UTF-8 JSON)", ERROR_EXAMPLES[400]),
    401: error_response("missing or unknown bearer token", ERROR_EXAMPLES[401]),
    403: error_response("the caller's role may not do this", ERROR_EXAMPLES[403]),
    404: error_response("no such resource (or not visible to the caller)", ERROR_EXAMPLES[404]),
    413: {"model": ErrorOut, "description": "request body too large"},
    422: error_response("invalid input, with field paths", ERROR_EXAMPLES[422]),
}


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


class ModuleOut(_Out):
    # Examples name records of the demo institution (`pathways demo`: small, seed 7).
    id: str = Field(examples=["M0042"])
    code: str | None = Field(default=None, examples=["CMP2005"])
    title: str | None = Field(default=None, examples=["Studio Project: Data Visualisation"])
    track: str | None = Field(default=None, examples=["project"])
    credits: float | None = Field(default=None, examples=[10.0])


class ModuleDetailOut(ModuleOut):
    description: str | None = None
    department: str | None = None
    level: int | None = None
    delivery: str | None = None
    capacity: int | None = None
    pass_grade: float = 60.0
    competencies: list[ModuleCompetencyOut] = Field(default_factory=list)
    prerequisites: list[PrerequisiteOut] = Field(default_factory=list)
    offered_terms: list[str] = Field(default_factory=list, description="empty: offered every term")


class ModuleCompetencyOut(_Out):
    competency_id: str
    name: str | None = None
    weight: float
    level: int | None = None


class PrerequisiteOut(_Out):
    group: int = Field(description="modules in one group are alternatives; every group is required")
    requires_module_id: str
    min_grade: float | None = None


class ModulePageOut(_Out):
    items: list[ModuleOut]
    total: int = Field(ge=0, examples=[120])
    offset: int = Field(ge=0, examples=[0])
    limit: int = Field(ge=1, examples=[50])


class OccupationOut(_Out):
    id: str = Field(examples=["15-2051.00"])
    title: str = Field(examples=["Data Scientists"])
    description: str | None = None


# ---------------------------------------------------------------------------------------------
# Recommendations and pathways
# ---------------------------------------------------------------------------------------------


class FlagOut(_Out):
    kind: str = Field(examples=["fail_risk"])
    reason: str = Field(examples=["predicted chance of failing is 41%"])


class RecommendationItemOut(_Out):
    rank: int = Field(ge=1, examples=[1])
    module: ModuleOut
    score: float = Field(examples=[0.82])
    components: dict[str, float] = Field(
        default_factory=dict,
        description="per-component contributions; with the intercept they sum to the score",
        examples=[{"sequence": 0.41, "collaborative": 0.2, "risk": -0.05}],
    )
    reasons: list[str] = Field(default_factory=list, examples=[["of 212 students with your last-term ..."]])
    expected_grade: float | None = Field(default=None, examples=[71.5])
    fail_probability: float | None = Field(default=None, ge=0.0, le=1.0, examples=[0.12])
    risk: RiskLevel = Field(default="unknown", examples=["low"])
    flags: list[FlagOut] = Field(default_factory=list)
    recommendation_id: int | None = Field(
        default=None, description="id of the stored batch recommendation, when one matches"
    )
    origin: Literal["model", "advisor"] = Field(
        default="model", description="advisor: an advisor chose it in place of a suggested module"
    )
    review: Literal["pending", "approved"] | None = Field(
        default=None,
        description="pending: flagged and waiting for an advisor; approved: an advisor approved it",
    )
    feedback: Literal["accept", "dismiss"] | None = Field(
        default=None, description="the student's latest feedback on it"
    )


class RecommendationsOut(_Out):
    student_id: str = Field(examples=["S00578"])
    term: str | None = Field(description="the target term", examples=["2026-1"])
    occupation: str | None = Field(default=None, description="the what-if occupation, if any")
    model_version: str = Field(examples=["20261126-102830-3fa9"])
    source: Literal["live", "batch"] = Field(
        description="batch: the promoted model's stored nightly list with decisions and dismissals "
        "applied (the default question); live: scored now by the promoted model (any other question)"
    )
    items: list[RecommendationItemOut]
    notes: list[str] = Field(default_factory=list, description="what the records lack, in plain words")


class PathwayModuleOut(ModuleOut):
    reasons: list[str] = Field(default_factory=list)


class PathwayTermOut(_Out):
    term: str | None = Field(examples=["2026-1"])
    modules: list[PathwayModuleOut]
    credits: float = Field(examples=[30.0])


class PathwayOut(_Out):
    student_id: str
    occupation: str | None = None
    model_version: str
    terms: list[PathwayTermOut]
    notes: list[str] = Field(default_factory=list)


class FeedbackIn(_In):
    module_id: str = Field(min_length=1, max_length=64, examples=["M0029"])
    action: Literal["accept", "dismiss"] = Field(examples=["dismiss"])
    recommendation_id: int | None = Field(
        default=None, ge=1, description="the stored recommendation this answers, if known"
    )
    occupation: str | None = Field(
        default=None, max_length=32, description="the what-if occupation of the list the module was in"
    )


class FeedbackOut(_Out):
    id: int
    student_id: str
    module_id: str
    action: str
    target_term: str = Field(description="the term of the suggestion ('' when it has no code)")
    recommendation_id: int | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime | None = Field(default=None, description="when the action last changed")


# ---------------------------------------------------------------------------------------------
# Advisor queue and reviews
# ---------------------------------------------------------------------------------------------


class QueueItemOut(_Out):
    recommendation_id: int = Field(examples=[42])
    student_id: str = Field(examples=["S00578"])
    rank: int
    module: ModuleOut
    score: float
    components: dict[str, float] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    expected_grade: float | None = None
    fail_probability: float | None = None
    risk: RiskLevel = "unknown"
    flags: list[FlagOut]
    model_version: str
    target_term: str | None = None


class QueueOut(_Out):
    batch_id: int | None = Field(description="the current batch; null when none is stored")
    model_version: str | None = None
    total: int = Field(default=0, description="items waiting for a decision (after filters), all pages")
    offset: int = 0
    limit: int = 50
    kinds: dict[str, int] = Field(
        default_factory=dict,
        description="flag kind -> waiting items with such a flag (before the kind filter)",
    )
    items: list[QueueItemOut]


class UndoOut(_Out):
    review_id: int
    recommendation_id: int
    audit: AuditEntryOut


class ReviewIn(_In):
    action: Literal["approve", "reject", "replace"] = Field(examples=["replace"])
    replacement_module_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="required for replace", examples=["M0038"]
    )
    comment: str | None = Field(default=None, max_length=2000, examples=["Take the project module first."])


class AuditEntryOut(_Out):
    id: int
    at: UtcDatetime
    actor: str
    action: str
    entity: str
    entity_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class ReviewOut(_Out):
    id: int
    recommendation_id: int
    student_id: str
    module_id: str
    action: str
    replacement_module_id: str | None = None
    comment: str | None = None
    created_at: UtcDatetime
    audit: AuditEntryOut


# ---------------------------------------------------------------------------------------------
# Models (admin)
# ---------------------------------------------------------------------------------------------


class ModelOut(_Out):
    version: str = Field(examples=["20261126-102830-3fa9"])
    status: str = Field(examples=["promoted"])
    created_at: UtcDatetime
    cutoff_term: str | None = None
    duration_s: float | None = None
    metrics: dict[str, Any] | None = Field(default=None, examples=[{"ndcg@10": 0.31}])
    gate_reason: str | None = None
    promoted: bool = Field(description="true for the version currently promoted")
    loaded: bool = Field(description="true for the version this server holds in memory")
    report_url: str | None = Field(default=None, examples=["/v1/models/20261126-102830-3fa9/report"])


class PromotionOut(_Out):
    version: str
    previous_version: str | None = None
    action: str = Field(examples=["promote"])
    at: UtcDatetime
    actor: str | None = None


# ---------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------


class HealthOut(_Out):
    status: Literal["ok"] = "ok"


class ModelStateOut(_Out):
    state: Literal["none", "loading", "loaded", "failed"] = Field(
        description="none: nothing promoted; failed: the last load failed and is tried again"
    )
    promoted: str | None = Field(default=None, description="the promoted version, as last read")
    loaded: str | None = Field(default=None, description="the version this process holds")
    reason: str | None = None
    retry_in_s: float | None = Field(default=None, description="seconds to the next load attempt")


class ReadyOut(_Out):
    status: Literal["ready", "not ready"]
    model_version: str | None = Field(default=None, description="the model version this process holds")
    model: ModelStateOut | None = None
    reasons: list[str] = Field(default_factory=list)


ModuleDetailOut.model_rebuild()
