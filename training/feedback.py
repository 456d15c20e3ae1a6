"""Advisor reviews and student feedback as a validation set for a freshly fitted model.

Positives: approved pairs, advisors' replacement modules, accepted pairs. Negatives: rejected and
replaced pairs, dismissed pairs. The model scores the students who have any of them with the
exclusions lifted (the serving context hides negatives, which would make the measure trivially zero)
and we count how many of each land in the top k.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sqlalchemy import Engine, select

from recommender.base import TermContext
from recommender.hybrid import HybridRecommender
from records.schema import Feedback, Review

log = logging.getLogger(__name__)


def feedback_pairs(engine: Engine) -> pd.DataFrame:
    """Columns ``student_id``, ``module_id`` (str) and ``positive`` (bool), one row per signal."""
    with engine.connect() as connection:
        reviews = pd.read_sql(
            select(Review.student_id, Review.module_id, Review.action, Review.replacement_module_id),
            connection,
        )
        feedback = pd.read_sql(select(Feedback.student_id, Feedback.module_id, Feedback.action), connection)
    parts = [
        pd.DataFrame(
            {
                "student_id": reviews["student_id"],
                "module_id": reviews["module_id"],
                "positive": reviews["action"] == "approve",
            }
        ),
        pd.DataFrame(
            {
                "student_id": reviews.loc[reviews["action"] == "replace", "student_id"],
                "module_id": reviews.loc[reviews["action"] == "replace", "replacement_module_id"],
                "positive": True,
            }
        ).dropna(),
        pd.DataFrame(
            {
                "student_id": feedback["student_id"],
                "module_id": feedback["module_id"],
                "positive": feedback["action"] == "accept",
            }
        ),
    ]
    pairs = pd.concat(parts, ignore_index=True).astype(
        {"student_id": object, "module_id": object, "positive": bool}
    )
    return pairs.drop_duplicates(ignore_index=True)


def feedback_agreement(
    model: HybridRecommender, context: TermContext, pairs: pd.DataFrame, k: int
) -> dict[str, Any]:
    """Share of positive and of negative pairs in the model's top k (exclusions lifted).

    Returns ``{"n_positive", "n_negative", "positives_in_top_k", "negatives_in_top_k", "k"}``; a share
    is None when there are no such pairs among students and modules the model knows.
    """
    fs = model.fs_
    rows = fs.students.rows(pairs["student_id"].to_numpy(dtype=object))
    columns = fs.modules.rows(pairs["module_id"].to_numpy(dtype=object))
    known = (rows >= 0) & (columns >= 0)
    result: dict[str, Any] = {
        "k": k,
        "n_positive": int((known & pairs["positive"].to_numpy()).sum()),
        "n_negative": int((known & ~pairs["positive"].to_numpy()).sum()),
        "positives_in_top_k": None,
        "negatives_in_top_k": None,
    }
    if not known.any():
        return result
    students = np.unique(rows[known])
    open_context = TermContext(
        target_term=context.target_term,
        offered=context.offered,
        seats_left=context.seats_left,
        excluded=sp.csr_matrix((fs.n_students, fs.n_modules), dtype=np.float32),
        extra_in_progress=context.extra_in_progress,
    )
    lists = model.recommend(students, open_context, k=k)
    position = np.full(fs.n_students, -1, dtype=np.int64)
    position[students] = np.arange(len(students))
    listed = lists.module_rows[position[rows[known]]]
    hit = (listed == columns[known][:, None]).any(axis=1)
    positive = pairs["positive"].to_numpy()[known]
    if positive.any():
        result["positives_in_top_k"] = float(hit[positive].mean())
    if (~positive).any():
        result["negatives_in_top_k"] = float(hit[~positive].mean())
    log.info("feedback agreement: %s", result)
    return result
