"""The learned blends: decomposable models of "the student took this module in the next term".

:class:`BoostedBlend` (the default): ``intercept + Σ_c f_c(score_c)`` with each ``f_c`` a step function
learned by gradient boosting with one component per tree (scikit-learn's HistGradientBoosting, additive and
monotone where the component says "higher is better"). :class:`AdditiveBlend`: the same sum with
piecewise-linear ``f_c`` learned by a logistic regression. :class:`LinearBlend`: ``intercept + Σ_c weight_c ·
(score_c − mean_c) / scale_c``. Either way each component's contribution is one term of the sum
(decomposable, hence explainable), and every blend keeps the components it is told are monotone
non-decreasing (the hybrid tells each the competency gap: a what-if occupation can only move a module up).
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)


# Standardised scores are clipped so that a score far outside what the blend was trained on cannot
# dominate the sum.
CLIP = 6.0
MAX_BINS = 255
"""Bins per component of :class:`BoostedBlend` (HistGradientBoosting's own maximum)."""
TIE_BREAK = 1e-3
"""The base blend's share in a blend shrunk all the way to its winner (:class:`ServedBlend`)."""


def _moments(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation over the pairs (zeros without pairs)."""
    if len(scores) == 0:
        return np.zeros(scores.shape[1]), np.zeros(scores.shape[1])
    return scores.mean(axis=0), scores.std(axis=0)


def _rising(monotone: np.ndarray | None, n_components: int) -> np.ndarray:
    """(n_components,) bool: the columns a blend must keep non-decreasing (none when None)."""
    return np.zeros(n_components, bool) if monotone is None else np.asarray(monotone) > 0


class LinearBlend:
    """Learned: ``mean_``, ``scale_``, ``weights_`` (n_components,) float64 and ``intercept_``.

    Standardised scores are clipped to ±CLIP. Components whose scores do not vary over the training
    pairs (no data) get weight 0, and so do components marked monotone (``monotone`` in :meth:`fit`)
    whose weight comes out negative: they are left out and the rest refitted without them.
    """

    def __init__(self, *, regularization: float = 1.0, random_state: int = 0) -> None:
        self.regularization = regularization
        self.random_state = random_state

    def fit(
        self,
        scores: np.ndarray,
        taken: np.ndarray,
        sample_weight: np.ndarray | None = None,
        monotone: np.ndarray | None = None,
    ) -> Self:
        """``scores`` (n_pairs, n_components) raw component scores; ``taken`` (n_pairs,) bool labels;
        ``monotone`` (n_components,) +1 where the weight may not be negative (all free when None)."""
        scores = np.asarray(scores, dtype=np.float64)
        rising = _rising(monotone, scores.shape[1])
        self.mean_, scale = _moments(scores)
        self.active_ = scale > 1e-9
        self.scale_ = np.where(self.active_, scale, 1.0)
        self.weights_ = np.zeros(scores.shape[1])
        self.intercept_ = 0.0
        if not self.active_.any() or len(np.unique(taken)) < 2:
            log.warning("blend: nothing to learn from (no varying component or one class); weights zero")
            return self
        while self.active_.any():
            standard = np.clip(
                (scores[:, self.active_] - self.mean_[self.active_]) / self.scale_[self.active_], -CLIP, CLIP
            )
            model = LogisticRegression(C=self.regularization, max_iter=500, random_state=self.random_state)
            model.fit(standard, taken, sample_weight=sample_weight)
            self.weights_[:] = 0.0
            self.weights_[self.active_] = model.coef_[0]
            self.intercept_ = float(model.intercept_[0])
            wrong = rising & (self.weights_ < 0)
            if not wrong.any():
                break
            self.active_ = self.active_ & ~wrong
        return self

    def standardise(self, column: int, scores: np.ndarray) -> np.ndarray:
        """Component ``column``'s raw scores as the blend sees them, float32 (zeros for inactive ones)."""
        if not self.active_[column]:
            return np.zeros_like(scores, dtype=np.float32)
        standard = (scores - np.float32(self.mean_[column])) / np.float32(self.scale_[column])
        return np.clip(standard, -CLIP, CLIP).astype(np.float32, copy=False)

    def contribution(self, column: int, scores: np.ndarray) -> np.ndarray:
        """``weight · standardised score`` of component ``column``, float32, same shape as ``scores``."""
        weight = np.float32(self.weights_[column])
        if weight == 0:
            return np.zeros_like(scores, dtype=np.float32)
        return self.standardise(column, scores) * weight


def hat_basis(values: np.ndarray, knots: np.ndarray) -> sp.csr_matrix:
    """(n, len(knots)) float32 piecewise-linear interpolation weights of ``values`` between sorted knots
    (clamped at both ends), as CSR: row i stores two weights summing to 1 (one with a single knot)."""
    values = np.asarray(values, dtype=np.float64)
    n, n_knots = len(values), len(knots)
    if n_knots == 1:
        return sp.csr_matrix(np.ones((n, 1), np.float32))
    left = np.clip(np.searchsorted(knots, values, side="right") - 1, 0, n_knots - 2)
    width = knots[left + 1] - knots[left]
    share = np.clip((values - knots[left]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
    data = np.column_stack([1.0 - share, share]).astype(np.float32).ravel()
    indices = np.column_stack([left, left + 1]).astype(np.int32).ravel()
    indptr = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n_knots))


class AdditiveBlend:
    """A logistic generalised additive model: ``score = intercept + Σ_c f_c(score_c)`` with each ``f_c``
    piecewise linear between knots at quantiles of the component's scores (every distinct value when a
    component has few), learned jointly by an L2 logistic regression on the hat-function basis. Each
    ``f_c`` is centred on the training pairs, so a contribution reads as "above or below the typical
    candidate". Decomposable like a linear blend, but a component may matter more at one end.

    Learned: ``knots_`` and ``values_`` (per component, f at the knots), ``offsets_``, ``intercept_``,
    ``mean_``/``scale_`` (for :meth:`standardise`), ``weights_`` (n_components,) = the standard deviation
    of each contribution over the training pairs (0: the component is not used). A component marked
    monotone (``monotone`` in :meth:`fit`) has its ``f_c`` projected onto non-decreasing functions (the
    isotonic regression of its knot values, weighted by the pairs near each knot).
    """

    def __init__(
        self, *, n_knots: int = 8, max_distinct: int = 16, regularization: float = 1.0, random_state: int = 0
    ) -> None:
        self.n_knots = n_knots
        self.max_distinct = max_distinct
        self.regularization = regularization
        self.random_state = random_state

    def _knots(self, values: np.ndarray) -> np.ndarray:
        distinct = np.unique(values)
        if len(distinct) <= self.max_distinct:
            return distinct.astype(np.float64)
        return np.unique(np.quantile(values, np.linspace(0.0, 1.0, self.n_knots)))

    def fit(
        self,
        scores: np.ndarray,
        taken: np.ndarray,
        sample_weight: np.ndarray | None = None,
        monotone: np.ndarray | None = None,
    ) -> Self:
        """``scores`` (n_pairs, n_components) raw component scores; ``taken`` (n_pairs,) bool labels;
        ``monotone`` (n_components,) +1 where ``f_c`` must be non-decreasing (all free when None)."""
        scores = np.asarray(scores, dtype=np.float64)
        n_components = scores.shape[1]
        rising = _rising(monotone, n_components)
        self.mean_, scale = _moments(scores)
        self.scale_ = np.where(scale > 1e-9, scale, 1.0)
        self.knots_ = [np.zeros(1) for _ in range(n_components)]
        self.values_ = [np.zeros(1) for _ in range(n_components)]
        self.offsets_ = np.zeros(n_components)
        self.weights_ = np.zeros(n_components)
        self.intercept_ = 0.0
        if len(scores) == 0 or len(np.unique(taken)) < 2:
            log.warning("blend: nothing to learn from (no pairs or one class); contributions zero")
            return self
        active = [c for c in range(n_components) if scale[c] > 1e-9]
        if not active:
            return self
        knots = {c: self._knots(scores[:, c]) for c in active}
        # Sparse: each component puts at most two non-zeros in a row of its hat basis.
        design = sp.hstack([hat_basis(scores[:, c], knots[c]) for c in active], format="csr")
        model = LogisticRegression(C=self.regularization, max_iter=1000, random_state=self.random_state)
        model.fit(design, taken, sample_weight=sample_weight)
        coefficients = model.coef_[0]
        intercept = float(model.intercept_[0])
        near = np.asarray(design.sum(axis=0), dtype=np.float64).ravel()
        start = 0
        for c in active:
            width = len(knots[c])
            self.knots_[c] = knots[c]
            self.values_[c] = coefficients[start : start + width].astype(np.float64)
            if rising[c] and width > 1 and np.any(np.diff(self.values_[c]) < 0):
                self.values_[c] = IsotonicRegression().fit_transform(
                    np.arange(width), self.values_[c], sample_weight=near[start : start + width] + 1e-9
                )
            start += width
            contribution = np.interp(scores[:, c], self.knots_[c], self.values_[c])
            self.offsets_[c] = float(contribution.mean())
            self.weights_[c] = float(contribution.std())
            intercept += self.offsets_[c]
        self.intercept_ = intercept
        return self

    def standardise(self, column: int, scores: np.ndarray) -> np.ndarray:
        """Component ``column``'s raw scores as z-scores over the training pairs, float32."""
        standard = (scores - np.float32(self.mean_[column])) / np.float32(self.scale_[column])
        return np.clip(standard, -CLIP, CLIP).astype(np.float32, copy=False)

    def contribution(self, column: int, scores: np.ndarray) -> np.ndarray:
        """``f_c(score) − offset_c``, float32, same shape as ``scores`` (zeros for unused components)."""
        if self.weights_[column] == 0:
            return np.zeros_like(scores, dtype=np.float32)
        knots = self.knots_[column].astype(np.float32)
        values = (self.values_[column] - self.offsets_[column]).astype(np.float32)
        flat = np.interp(np.asarray(scores, np.float32).ravel(), knots, values).astype(np.float32)
        return flat.reshape(np.shape(scores))


class BoostedBlend:
    """A boosted generalised additive model: ``score = intercept + Σ_c f_c(score_c)`` learned by gradient
    boosting on the log-loss with every tree on one component (``interaction_cst``), so the sum stays
    decomposable, and ``f_c`` non-decreasing for the components marked monotone (``monotone`` in
    :meth:`fit`: +1 where a higher score can only mean "more likely taken"). The constraint is what
    regularises it: a blend learned from a few thousand positives otherwise bends to their noise.

    Each ``f_c`` is a step function over at most MAX_BINS bins of the component's score (edges at its
    training quantiles): the trees learn on bin numbers, and after the fit ``f_c`` is read off the model
    bin by bin and centred on the training pairs. Learned: ``edges_`` (float32) and ``levels_`` (one per
    bin) per component, ``offsets_``, ``intercept_``,
    ``mean_``/``scale_`` (for :meth:`standardise`), ``weights_`` (n_components,) = the standard deviation
    of each contribution over the training pairs (0: the component is not used).
    """

    def __init__(
        self,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int | None = None,
        l2_regularization: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def fit(
        self,
        scores: np.ndarray,
        taken: np.ndarray,
        sample_weight: np.ndarray | None = None,
        monotone: np.ndarray | None = None,
    ) -> Self:
        """``scores`` (n_pairs, n_components) raw component scores; ``taken`` (n_pairs,) bool labels;
        ``monotone`` (n_components,) +1 (non-decreasing), 0 (free) or -1; all free when None."""
        scores = np.asarray(scores, dtype=np.float32)
        n_components = scores.shape[1]
        self.mean_ = scores.mean(axis=0, dtype=np.float64) if len(scores) else np.zeros(n_components)
        scale = scores.std(axis=0, dtype=np.float64) if len(scores) else np.zeros(n_components)
        self.scale_ = np.where(scale > 1e-9, scale, 1.0)
        self.edges_ = [np.zeros(0) for _ in range(n_components)]
        self.levels_ = [np.zeros(1) for _ in range(n_components)]
        self.offsets_ = np.zeros(n_components)
        self.weights_ = np.zeros(n_components)
        self.intercept_ = 0.0
        active = [c for c in range(n_components) if scale[c] > 1e-9] if len(scores) else []
        if not active or len(np.unique(taken)) < 2:
            log.warning("blend: nothing to learn from (no varying component or one class); all zero")
            return self
        signs = np.zeros(n_components, np.int64) if monotone is None else np.asarray(monotone, np.int64)
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.leaf_size(len(scores)),
            l2_regularization=self.l2_regularization,
            monotonic_cst=signs[active].tolist(),
            interaction_cst=[[i] for i in range(len(active))],
            early_stopping=False,
            random_state=self.random_state,
        )
        # Each component is cut into at most MAX_BINS bins at quantiles of its training values and the
        # trees learn on the bin numbers: a step of f_c can only fall on these edges, so the step function
        # read off below is the model's own, for unseen scores too.
        self.edges_ = [self._edges(scores[:, c]) if c in active else np.zeros(0) for c in range(n_components)]
        bins = np.column_stack(
            [np.searchsorted(self.edges_[c], scores[:, c], side="right") for c in active]
        ).astype(np.float32)
        model.fit(bins, np.asarray(taken, bool), sample_weight=sample_weight)
        # The model is a sum of one function per component: each is read off bin by bin, moving that
        # component alone away from a reference point (bin 0 everywhere).
        reference = np.zeros((1, len(active)), np.float32)
        base = float(model.decision_function(reference)[0])
        intercept = base
        for i, c in enumerate(active):
            probe = np.zeros((len(self.edges_[c]) + 1, len(active)), np.float32)
            probe[:, i] = np.arange(len(probe))
            self.levels_[c] = (model.decision_function(probe) - base).astype(np.float64)
            contribution = self.levels_[c][bins[:, i].astype(np.int64)]
            self.offsets_[c] = float(contribution.mean())
            self.weights_[c] = float(contribution.std())
            intercept += self.offsets_[c]
        self.intercept_ = intercept
        return self

    def leaf_size(self, n_pairs: int) -> int:
        """``min_samples_leaf``, or by default one pair in 500, between 5 and 200 (a small institution's
        few pairs can still be split; a large one's steps rest on many)."""
        if self.min_samples_leaf is not None:
            return self.min_samples_leaf
        return int(np.clip(n_pairs // 500, 5, 200))

    @staticmethod
    def _edges(values: np.ndarray) -> np.ndarray:
        """Bin edges of one component: between its distinct training values when there are at most
        MAX_BINS, else at its quantiles (float32, as the scores are)."""
        distinct = np.unique(values)
        if len(distinct) <= MAX_BINS:
            return ((distinct[:-1].astype(np.float64) + distinct[1:]) / 2.0).astype(np.float32)
        cuts = np.quantile(values, np.linspace(0.0, 1.0, MAX_BINS + 1)[1:-1])
        return np.unique(cuts.astype(np.float32))

    def standardise(self, column: int, scores: np.ndarray) -> np.ndarray:
        """Component ``column``'s raw scores as z-scores over the training pairs, float32."""
        standard = (scores - np.float32(self.mean_[column])) / np.float32(self.scale_[column])
        return np.clip(standard, -CLIP, CLIP).astype(np.float32, copy=False)

    def contribution(self, column: int, scores: np.ndarray) -> np.ndarray:
        """``f_c(score) − offset_c``, float32, same shape as ``scores`` (zeros for unused components)."""
        if self.weights_[column] == 0:
            return np.zeros_like(scores, dtype=np.float32)
        levels = (self.levels_[column] - self.offsets_[column]).astype(np.float32)
        return levels[np.searchsorted(self.edges_[column], np.asarray(scores, np.float32), side="right")]


Blend = BoostedBlend | AdditiveBlend | LinearBlend
"""Any learned blend (what :class:`ServedBlend` wraps)."""


class ServedBlend:
    """The blend as served: a learned blend (``base``) with components left out (they abstained) and,
    when a single component won on the validation split, shrunk toward it.

    ``contribution_c = (1 − shrink) · base.contribution_c + shrink · [c = winner] · (score − mean_c) /
    scale_c``, zero for ``left_out`` columns; ``intercept_ = (1 − shrink) · base.intercept_``. With
    ``shrink`` 1 the order is the winner's own (its z-score, not clipped, so its top scores keep their
    order); the sum stays decomposable, one term per component. ``weights_`` (n_components,) are the
    base weights scaled by ``1 − shrink`` plus ``shrink`` at the winner (0 for left-out components).
    With a ``partner`` the shrink is shared: ``shrink / 2`` on the z-score of each of the two (with
    ``shrink`` 1, the order of their z-scores' sum). ``risk_penalty``: the fit-versus-risk penalty its lists
    are served with (None: the model's own, ``HybridRecommender._served_risk_penalty``).

    With ``shrink`` 1 the base blend keeps a weight of TIE_BREAK: it orders what the winner leaves tied. A
    student the winner knows nothing of (a newcomer, to a component that reads the history) gets the
    blend's order instead of an arbitrary one; anyone else the winner's, but where its scores are within
    about TIE_BREAK of each other in z-score.

    ``newcomers_unshrunk``: the shrink was chosen on students with enrolments only, and a newcomer (no
    enrolment yet) is served :meth:`for_newcomers`, the blend as learned (the same left-out components
    and risk penalty, no shrink).
    """

    def __init__(
        self,
        base: Blend,
        *,
        left_out: tuple[int, ...] = (),
        winner: int | None = None,
        shrink: float = 0.0,
        partner: int | None = None,
        risk_penalty: float | None = None,
        newcomers_unshrunk: bool = False,
    ) -> None:
        if not 0.0 <= shrink <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], not {shrink}")
        if partner is not None and partner == winner:
            raise ValueError(f"partner must differ from the winner, both are column {winner}")
        self.base = base
        self.left_out = tuple(left_out)
        self.winner = winner if shrink > 0 else None
        self.shrink = float(shrink) if winner is not None else 0.0
        self.partner = partner if self.winner is not None else None
        self.risk_penalty = risk_penalty
        self.newcomers_unshrunk = newcomers_unshrunk and self.winner is not None
        # What the arithmetic shrinks by: shrink 1 keeps the base blend as the winner's tie-break.
        self.mix_ = min(self.shrink, 1.0 - TIE_BREAK)
        weights = (1.0 - self.mix_) * np.asarray(base.weights_, dtype=np.float64)
        toward = self._shrunk_toward()
        for column in toward:
            weights[column] += self.mix_ / len(toward)
        weights[list(self.left_out)] = 0.0
        self.weights_ = weights
        self.intercept_ = float((1.0 - self.mix_) * base.intercept_)
        self.mean_ = base.mean_
        self.scale_ = base.scale_

    def for_newcomers(self) -> ServedBlend | None:
        """The blend newcomers are served when it is not this one (``newcomers_unshrunk``), else None."""
        if not getattr(self, "newcomers_unshrunk", False):  # a blend saved before it has none
            return None
        return ServedBlend(self.base, left_out=self.left_out, risk_penalty=self.risk_penalty)

    def standardise(self, column: int, scores: np.ndarray) -> np.ndarray:
        """As the base blend sees the component (z-scores over its training pairs)."""
        return self.base.standardise(column, scores)

    def contribution(self, column: int, scores: np.ndarray) -> np.ndarray:
        """This component's term of the served score, float32, same shape as ``scores``."""
        if self.weights_[column] == 0:
            return np.zeros_like(scores, dtype=np.float32)
        return self.from_base(column, self.base.contribution(column, scores), scores)

    def from_base(self, column: int, value: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """:meth:`contribution` given the base blend's own (``base.contribution(column, scores)``), so
        that blends sharing a base compute it once (a zero-weight column still gives zeros)."""
        if self.weights_[column] == 0:
            return np.zeros_like(scores, dtype=np.float32)
        mix = getattr(self, "mix_", self.shrink)  # a blend saved before the tie-break has none
        if mix:
            value = value * np.float32(1.0 - mix)
        toward = self._shrunk_toward()
        if column in toward:
            standard = (np.asarray(scores, np.float32) - np.float32(self.mean_[column])) / np.float32(
                self.scale_[column]
            )
            value = value + np.float32(mix / len(toward)) * standard
        return value.astype(np.float32, copy=False)

    def _shrunk_toward(self) -> tuple[int, ...]:
        """The columns the blend is shrunk toward: the winner, and its partner (a blend saved before
        partners has none)."""
        if self.winner is None:
            return ()
        partner = getattr(self, "partner", None)
        return (self.winner,) if partner is None else (self.winner, partner)
