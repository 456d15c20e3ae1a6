"""Reasons for stored batch recommendations, computed for whole chunks at once.

``recommender.explain`` builds rich explanations one (student, module) pair at a time (peer evidence
is a sparse product per pair), which suits a live request but not 200,000 students × 10 modules. The
batch stores shorter reasons built from the same numbers with array operations: the blend's two
largest positive contributions become sentences with their evidence (peer share, competency, track
credits, program popularity), plus the risk when it is high.
"""

from __future__ import annotations

import numpy as np

from features.featureset import TRACKS
from recommender.base import RankedLists, TermContext
from recommender.hybrid import HybridRecommender

EXPLAINED = ("sequence", "collaborative", "competency_gap", "track_balance", "popularity")
MAX_CONTRIBUTION_REASONS = 2


def _labels(model: HybridRecommender, kind: str) -> dict[str, str]:
    labels = getattr(model, "labels_", None) or {}
    found = labels.get(kind, {}) if isinstance(labels, dict) else {}
    return found if isinstance(found, dict) else {}


def batch_reasons(
    model: HybridRecommender,
    lists: RankedLists,
    context: TermContext,
    fail_probability: np.ndarray,
    high_risk: float,
) -> list[list[list[str]]]:
    """Reason sentences per student (list order) and slot; empty slots get an empty list.

    ``fail_probability`` (n, k) float, NaN unknown; ``high_risk``: from this probability the risk is
    always mentioned.
    """
    fs = model.fs_
    rows = np.asarray(lists.student_rows, np.int64)
    module_rows = lists.module_rows
    n, k = module_rows.shape
    valid = module_rows >= 0
    safe = np.where(valid, module_rows, 0).astype(np.int64)
    local = np.arange(n)[:, None]

    # Evidence, (n, k) each.
    sequence_share = model.components_["sequence"].score(fs, rows, context)[local, safe]
    gap = fs.competency_gap[rows]  # (n, C)
    module_competency = fs.module_competency
    best_competency = np.full((n, k), -1, np.int64)
    if module_competency.nnz and gap.shape[1]:
        dense = module_competency[safe.ravel()].toarray().astype(np.float32).reshape(n, k, -1)
        closes = dense * gap[:, None, :]
        best_competency = np.where(closes.max(axis=2) > 0, closes.argmax(axis=2), -1)
    track = fs.module_info["track_row"].to_numpy(np.int64)[safe]
    deficit = np.take_along_axis(
        np.pad(fs.track_deficit[rows], ((0, 0), (0, 1))), np.where(track >= 0, track, 3), 1
    )
    n_groups, n_stages = fs.popularity.shape[:2]
    program = fs.student_info["program_row"].to_numpy(np.int64)[rows]
    program = np.where(program >= 0, program, n_groups - 1)
    stage = np.minimum(fs.student_info["stage"].to_numpy(np.int64)[rows], max(n_stages - 1, 0))
    popularity = fs.popularity[program[:, None], stage[:, None], safe] if n_stages else np.zeros((n, k))

    names = list(lists.component_names)
    columns = [names.index(name) for name in EXPLAINED if name in names]
    contributions = lists.contributions[:, :, columns]
    order = np.argsort(-contributions, axis=2)
    competency_labels = _labels(model, "competencies")
    competency_ids = fs.competencies.ids
    term = f" in {context.target_term}" if context.target_term else ""

    def sentence(component: str, i: int, j: int) -> str | None:
        if component == "sequence" and sequence_share[i, j] >= 0.01:
            return f"{sequence_share[i, j]:.0%} of students with your recent modules took it next."
        if component == "collaborative":
            return "Students whose records resemble yours took it."
        if component == "competency_gap" and best_competency[i, j] >= 0:
            competency = str(competency_ids[best_competency[i, j]])
            label = competency_labels.get(competency, competency)
            return f"Builds {label}, which your target occupations need and you have not shown yet."
        if component == "track_balance" and track[i, j] >= 0 and deficit[i, j] > 0:
            return f"Adds {TRACKS[track[i, j]]} credits your program still needs ({deficit[i, j]:g} short)."
        if component == "popularity" and popularity[i, j] >= 0.01:
            return f"{popularity[i, j]:.0%} of students of your program took it at your stage."
        return None

    explained = [EXPLAINED[c] for c in range(len(EXPLAINED)) if EXPLAINED[c] in names]
    result: list[list[list[str]]] = []
    for i in range(n):
        per_student: list[list[str]] = []
        for j in range(k):
            reasons: list[str] = []
            if not valid[i, j]:
                per_student.append(reasons)
                continue
            for slot in order[i, j]:
                if contributions[i, j, slot] <= 0 or len(reasons) == MAX_CONTRIBUTION_REASONS:
                    break
                text = sentence(explained[slot], i, j)
                if text:
                    reasons.append(text)
            probability = fail_probability[i, j]
            if np.isfinite(probability) and probability >= high_risk:
                reasons.append(f"Predicted fail risk is high ({probability:.0%}).")
            if len(reasons) < MAX_CONTRIBUTION_REASONS:
                reasons.append(f"It is offered{term} and you meet its prerequisites.")
            per_student.append(reasons)
        result.append(per_student)
    return result
