"""Choosing what to serve on the validation split: the blend, or the blend shrunk toward the best single
component when the blend does not beat it (never serve worse than the best of the parts by more than the
noise of the validation students allows), or the two best single components together when the choice
between them is noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

SELECTION_METRIC = "ndcg@10+recall@10"
"""What the selection maximises: the sum of the two metrics of the quality bar."""
SHRINK_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
EVIDENCE_Z = 0.5
"""A candidate within this many paired standard errors of the best one on the validation students counts as
as good (:func:`choose_by_evidence`); bench/README.md: the record sets, the rules measured."""


def selection_score(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """NDCG@k + Recall@k of ranked lists (see :func:`ndcg_at_k`)."""
    return ndcg_at_k(module_rows, relevant, k) + recall_at_k(module_rows, relevant, k)


def student_scores(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> np.ndarray:
    """(n,) float64 NDCG@k + Recall@k of each student's list (0 for a student without a relevant module):
    their mean is :func:`selection_score`."""
    return _ndcg_per_student(module_rows, relevant, k) + _recall_per_student(module_rows, relevant, k)


def paired_margin(scores: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean of ``scores - reference`` over the same students (paired) and its standard error (0 with
    fewer than two students)."""
    difference = np.asarray(scores, np.float64) - np.asarray(reference, np.float64)
    if len(difference) < 2:
        return float(difference.mean()) if len(difference) else 0.0, 0.0
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))


def choose_by_evidence(
    scores: dict[Any, np.ndarray], order: list[Any], z: float = EVIDENCE_Z
) -> tuple[Any, float]:
    """The first candidate of ``order`` (the simplest first) whose per-student scores are, on the mean, no
    more than ``z`` paired standard errors below the best candidate's; with it the allowance it was
    granted (``z`` × that standard error, 0 for the best itself). ``scores``: candidate → (n,) scores of
    the same students; ``order`` holds every candidate. With many students the standard errors vanish
    and the best mean is chosen; with a few dozen, a simpler candidate is not dropped on noise."""
    best = max(order, key=lambda key: (float(np.mean(scores[key])), -order.index(key)))
    for key in order:
        if key == best:
            return key, 0.0
        margin, error = paired_margin(scores[key], scores[best])
        if margin >= -z * error:
            return key, z * error
    raise AssertionError("unreachable: the best candidate is in order")


def _hits(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    top = np.asarray(module_rows)[:, :k].astype(np.int64)
    coo = sp.csr_matrix(relevant).tocoo()
    n_modules = relevant.shape[1]
    relevant_keys = coo.row[coo.data != 0].astype(np.int64) * n_modules + coo.col[coo.data != 0]
    listed_keys = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_modules + top
    return np.isin(listed_keys, relevant_keys) & (top >= 0)


def recall_at_k(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """Mean Recall@k of ranked lists against ``relevant``; students without a relevant module count 0."""
    if len(module_rows) == 0:
        return 0.0
    return float(_recall_per_student(module_rows, relevant, k).mean())


def _recall_per_student(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    if len(module_rows) == 0:
        return np.zeros(0, np.float64)
    found = _hits(module_rows, relevant, k).sum(axis=1).astype(np.float64)
    n_relevant = np.diff(sp.csr_matrix(relevant).indptr).astype(np.float64)
    return np.divide(found, n_relevant, out=np.zeros_like(found), where=n_relevant > 0)


def ndcg_at_k(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k (binary gains) of ranked lists ``module_rows`` (n, >=k) int, -1 empty, against
    ``relevant`` (n, n_modules) csr; students without a relevant module count as 0."""
    if len(module_rows) == 0:
        return 0.0
    return float(_ndcg_per_student(module_rows, relevant, k).mean())


def _ndcg_per_student(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    top = np.asarray(module_rows)[:, :k].astype(np.int64)
    relevant = sp.csr_matrix(relevant)
    n = top.shape[0]
    if n == 0:
        return np.zeros(0, np.float64)
    coo = relevant.tocoo()
    n_modules = relevant.shape[1]
    relevant_keys = coo.row[coo.data != 0].astype(np.int64) * n_modules + coo.col[coo.data != 0]
    listed_keys = np.arange(n, dtype=np.int64)[:, None] * n_modules + top
    hits = np.isin(listed_keys, relevant_keys) & (top >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits.astype(np.float64) @ discounts[: top.shape[1]]
    n_relevant = np.minimum(np.diff(relevant.indptr), k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[n_relevant]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def check_half(n: int, random_state: int, min_students: int = 20) -> np.ndarray | None:
    """(n,) bool: a fixed random half of the validation students held out to choose what is served;
    None when there are too few students to hold any out."""
    if n < 2 * min_students:
        return None
    rng = np.random.default_rng(random_state + 1)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, n // 2, replace=False)] = True
    return mask


@dataclass
class Selection:
    """What the validation split chose, and why (reported by ``evaluate --json`` and the report).

    ``blend``: the blend's metric on the held-out students; ``singles``: each component's own list's;
    ``best_single`` and ``blend_vs_best`` (ratio); ``shrink`` toward ``best_single`` (0 = the blend as
    learned, 1 = the winner alone) and whether the list is re-ranked (``rerank``; the single
    components' own lists are not), with ``served`` its metric; ``partner``: the runner-up single
    component served with the winner, equal weights on their z-scores (shrink 1: the choice between the
    two was within the noise); ``tolerance``: how far below the best candidate's metric ``served`` was
    allowed to be (:func:`choose_by_evidence`); ``grid`` every combination tried; ``blends`` each kind of
    blend tried with its metric as learned (the better kind is served, shrunk as ``shrink`` says);
    ``risk_penalty`` the fit-versus-risk penalty chosen for the served point (None: not chosen, the model's
    configured one) and ``risk_penalties`` each penalty tried with the served point's metric;
    ``newcomers_blend``: the choice was judged on students with enrolments only, and newcomers are served
    the blend as learned (``recommender.blend.ServedBlend.newcomers_unshrunk``).
    """

    metric: str = SELECTION_METRIC
    n_students: int = 0
    blend: float | None = None
    singles: dict[str, float] = field(default_factory=dict)
    best_single: str | None = None
    blend_vs_best: float | None = None
    shrink: float = 0.0
    rerank: bool = True
    served: float | None = None
    partner: str | None = None
    tolerance: float = 0.0
    grid: dict[str, float] = field(default_factory=dict)
    blends: dict[str, float | None] = field(default_factory=dict)
    risk_penalty: float | None = None
    risk_penalties: dict[str, float] = field(default_factory=dict)
    newcomers_blend: bool = False
    note: str = ""

    @property
    def winner(self) -> str:
        """``blend`` when the blend is served as learned, else the single component it shrinks toward
        (``a+b`` for two served together)."""
        if self.shrink == 0 or self.best_single is None:
            return "blend"
        if self.partner:
            return f"{self.best_single}+{self.partner}"
        return self.best_single

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "n_students": self.n_students,
            "blend": self.blend,
            "singles": dict(self.singles),
            "best_single": self.best_single,
            "blend_vs_best": self.blend_vs_best,
            "winner": self.winner,
            "shrink": self.shrink,
            "rerank": self.rerank,
            "served": self.served,
            "partner": self.partner,
            "tolerance": self.tolerance,
            "grid": dict(self.grid),
            "blends": dict(self.blends),
            "risk_penalty": self.risk_penalty,
            "risk_penalties": dict(self.risk_penalties),
            "newcomers_blend": self.newcomers_blend,
            "note": self.note,
        }
