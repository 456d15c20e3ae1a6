"""Choosing what to serve on the validation split: the blend, or the blend shrunk toward the best single
component when the blend does not beat it (never serve worse than the best of the parts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

SELECTION_METRIC = "ndcg@10+recall@10"
"""What the selection maximises: the sum of the two metrics of the quality bar."""
SHRINK_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def selection_score(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """NDCG@k + Recall@k of ranked lists (see :func:`ndcg_at_k`)."""
    return ndcg_at_k(module_rows, relevant, k) + recall_at_k(module_rows, relevant, k)


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
    found = _hits(module_rows, relevant, k).sum(axis=1).astype(np.float64)
    n_relevant = np.diff(sp.csr_matrix(relevant).indptr).astype(np.float64)
    return float(np.divide(found, n_relevant, out=np.zeros_like(found), where=n_relevant > 0).mean())


def ndcg_at_k(module_rows: np.ndarray, relevant: sp.csr_matrix, k: int = 10) -> float:
    """Mean NDCG@k (binary gains) of ranked lists ``module_rows`` (n, >=k) int, -1 empty, against
    ``relevant`` (n, n_modules) csr; students without a relevant module count as 0."""
    top = np.asarray(module_rows)[:, :k].astype(np.int64)
    relevant = sp.csr_matrix(relevant)
    n = top.shape[0]
    if n == 0:
        return 0.0
    coo = relevant.tocoo()
    n_modules = relevant.shape[1]
    relevant_keys = coo.row[coo.data != 0].astype(np.int64) * n_modules + coo.col[coo.data != 0]
    listed_keys = np.arange(n, dtype=np.int64)[:, None] * n_modules + top
    hits = np.isin(listed_keys, relevant_keys) & (top >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits.astype(np.float64) @ discounts[: top.shape[1]]
    n_relevant = np.minimum(np.diff(relevant.indptr), k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[n_relevant]
    return float(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0).mean())


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
    components' own lists are not), with ``served`` its metric; ``grid`` every combination tried;
    ``blends`` each kind of blend tried with its metric as learned (the better kind is served, shrunk as
    ``shrink`` says).
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
    grid: dict[str, float] = field(default_factory=dict)
    blends: dict[str, float | None] = field(default_factory=dict)
    note: str = ""

    @property
    def winner(self) -> str:
        """``blend`` when the blend is served as learned, else the single component it shrinks toward."""
        if self.shrink == 0 or self.best_single is None:
            return "blend"
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
            "grid": dict(self.grid),
            "blends": dict(self.blends),
            "note": self.note,
        }


def choose_shrink(grid: dict[tuple[float, bool], float]) -> tuple[float, bool]:
    """The (shrink, re-rank) with the best metric; ties go to the smaller shrink (closer to the learned
    blend), then to re-ranking."""
    best = max(grid.values())
    return min(
        (key for key, value in grid.items() if value >= best - 1e-12), key=lambda key: (key[0], not key[1])
    )
