"""The JSON of a recommendation answer, written without validating it through pydantic's models.

The bytes are those of ``RecommendationsOut(...).model_dump_json()`` (:mod:`service.schemas` documents
the shape; tests/e2e/test_batch_default.py compares the two): the same keys in the same order,
float fields as floats (``5`` is written ``5.0``), NaN and infinities as ``null``, all through
pydantic-core's own serializer, so numbers are formatted alike. Skipping the validation of ten nested
items per answer is most of what rendering the default list costs; its values come from typed
columns of the stored batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import to_json

from service.lists import Item, RecommendationList


def optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def module_dict(
    module_id: str, code: str | None, title: str | None, track: str | None, credits: float | None
) -> dict[str, Any]:
    """``ModuleOut``'s fields."""
    return {"id": module_id, "code": code, "title": title, "track": track, "credits": optional_float(credits)}


def item_dict(
    rank: int,
    module: dict[str, Any],
    score: float,
    components: Mapping[str, Any] | None,
    reasons: Iterable[Any] | None,
    expected_grade: float | None,
    fail_probability: float | None,
    risk: str,
    flags: list[dict[str, str]],
    recommendation_id: int | None,
    origin: str,
    review: str | None,
    feedback: str | None,
) -> dict[str, Any]:
    """``RecommendationItemOut``'s fields, in its order; ``flags`` as ``{"kind", "reason"}`` dicts, taken
    as they are (the caller may still add to the list)."""
    return {
        "rank": rank,
        "module": module,
        "score": float(score),
        "components": {name: float(value) for name, value in (components or {}).items()},
        "reasons": [str(reason) for reason in reasons or ()],
        "expected_grade": optional_float(expected_grade),
        "fail_probability": optional_float(fail_probability),
        "risk": risk,
        "flags": flags,
        "recommendation_id": recommendation_id,
        "origin": origin,
        "review": review,
        "feedback": feedback,
    }


def answer_json(
    student_id: str,
    term: str | None,
    occupation: str | None,
    model_version: str,
    source: str,
    items: list[dict[str, Any]],
    notes: list[str],
) -> bytes:
    """``RecommendationsOut``'s JSON of the given fields (``items`` from :func:`item_dict`)."""
    return to_json(
        {
            "student_id": student_id,
            "term": term,
            "occupation": occupation,
            "model_version": model_version,
            "source": source,
            "items": items,
            "notes": notes,
        },
        inf_nan_mode="null",
    )


def _item_of(item: Item) -> dict[str, Any]:
    module = item.module
    return item_dict(
        item.rank,
        module_dict(module.id, module.code, module.title, module.track, module.credits),
        item.score,
        item.components,
        item.reasons,
        item.expected_grade,
        item.fail_probability,
        item.risk,
        [{"kind": flag["kind"], "reason": flag["reason"]} for flag in item.flags],
        item.recommendation_id,
        item.origin,
        item.review,
        item.feedback,
    )


def list_json(result: RecommendationList) -> bytes:
    """The answer's JSON of a stored list (values from typed columns; live lists go through the
    pydantic models, whose validation guards the model's arrays)."""
    return answer_json(
        result.student_id,
        result.term,
        result.occupation,
        result.model_version,
        result.source,
        [_item_of(item) for item in result.items],
        list(result.notes),
    )
