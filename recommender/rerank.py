"""Re-ranking for track targets and competency spread (MMR), greedy over k places, vectorised."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def module_similarity(module_competency: sp.csr_matrix) -> np.ndarray:
    """(n_modules, n_modules) float32 cosine similarity of module competency vectors (0 for untagged)."""
    tags = sp.csr_matrix(module_competency, dtype=np.float32)
    norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
    unit = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)) @ tags
    return np.asarray((unit @ unit.T).toarray(), dtype=np.float32)


def rerank(
    relevance: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    similarity: np.ndarray,
    module_track: np.ndarray,
    module_credits: np.ndarray,
    deficit: np.ndarray,
    diversity: float,
    track_weight: float,
    must_include: np.ndarray | None = None,
) -> np.ndarray:
    """Choose k of each student's candidates, greedily, best first.

    ``relevance`` (n, c) float32 blend scores, ``-inf`` for empty places; ``candidates`` (n, c) module rows
    (-1 empty); ``similarity`` (n_modules, n_modules); ``module_track`` (n_modules,) int (-1 unknown);
    ``module_credits`` (n_modules,); ``deficit`` (n, 3) credits short per track. At each position the value
    of a candidate is ``(1 − diversity) · relevance01 − diversity · max similarity to the chosen ones +
    track_weight · share of its credits that fill a still-open track deficit`` (the deficit shrinks as
    modules of that track are chosen). ``must_include`` (n, 3) bool marks tracks a list must show when
    any candidate has them (a student short of project credits with none yet sees a project module): the
    best candidate of such a track replaces the lowest place not already holding a required track.
    Returns positions into the candidate axis, (n, k) int64, -1 empty.
    """
    n, width = relevance.shape
    valid = np.isfinite(relevance) & (candidates >= 0)
    low = np.where(valid, relevance, np.inf).min(axis=1, initial=np.inf, keepdims=True)
    high = np.where(valid, relevance, -np.inf).max(axis=1, initial=-np.inf, keepdims=True)
    span = np.where(np.isfinite(high - low) & (high > low), high - low, 1.0)
    relevance01 = np.where(valid, (relevance - np.where(np.isfinite(low), low, 0.0)) / span, 0.0)
    safe_candidates = np.where(candidates >= 0, candidates, 0)
    track = module_track[safe_candidates]
    track = np.where(track >= 0, track, 3)
    credits = np.maximum(module_credits[safe_candidates], 1e-9)
    remaining = np.concatenate([deficit.astype(np.float32), np.zeros((n, 1), np.float32)], axis=1)
    if n == 1:
        positions = _rerank_one(
            relevance01[0],
            safe_candidates[0],
            track[0],
            credits[0],
            remaining[0],
            ~valid[0],
            k,
            similarity,
            diversity,
            track_weight,
        )[None, :]
        if must_include is not None:
            _guarantee_tracks(positions, relevance, valid, track, must_include)
        return positions
    max_similarity = np.zeros((n, width), dtype=np.float32)
    chosen_mask = ~valid
    students = np.arange(n)
    positions = np.full((n, k), -1, dtype=np.int64)
    for position in range(min(k, width)):
        fill = np.minimum(np.take_along_axis(remaining, track, axis=1), credits) / credits
        value = (1.0 - diversity) * relevance01 - diversity * max_similarity + track_weight * fill
        value[chosen_mask] = -np.inf
        pick = np.argmax(value, axis=1)
        ok = np.isfinite(value[students, pick])
        positions[ok, position] = pick[ok]
        chosen_mask[students[ok], pick[ok]] = True
        picked_modules = safe_candidates[students, pick]
        new_similarity = similarity[picked_modules[:, None], safe_candidates]
        max_similarity = np.where(ok[:, None], np.maximum(max_similarity, new_similarity), max_similarity)
        picked_track = track[students, pick]
        remaining[students[ok], picked_track[ok]] = np.maximum(
            remaining[students[ok], picked_track[ok]] - credits[students[ok], pick[ok]], 0.0
        )
    if must_include is not None:
        _guarantee_tracks(positions, relevance, valid, track, must_include)
    return positions


def _rerank_one(
    relevance01: np.ndarray,
    candidates: np.ndarray,
    track: np.ndarray,
    credits: np.ndarray,
    remaining: np.ndarray,
    chosen: np.ndarray,
    k: int,
    similarity: np.ndarray,
    diversity: float,
    track_weight: float,
) -> np.ndarray:
    """:func:`rerank`'s greedy choice for one student (a live answer) on 1-d arrays of its ``width``
    candidates: the same values at every place (the same float32 operations, one row), the pick and its
    updates as scalars. ``remaining`` and ``chosen`` are updated in place. Returns (k,) int64, -1 empty."""
    width = len(relevance01)
    positions = np.full(k, -1, dtype=np.int64)
    max_similarity = np.zeros(width, dtype=np.float32)
    for position in range(min(k, width)):
        fill = np.minimum(remaining[track], credits) / credits
        value = (1.0 - diversity) * relevance01 - diversity * max_similarity + track_weight * fill
        value[chosen] = -np.inf
        pick = int(np.argmax(value))
        if not np.isfinite(value[pick]):
            continue
        positions[position] = pick
        chosen[pick] = True
        max_similarity = np.maximum(max_similarity, similarity[candidates[pick], candidates])
        picked_track = track[pick]
        remaining[picked_track] = np.maximum(remaining[picked_track] - credits[pick], 0.0)
    return positions


def _guarantee_tracks(
    positions: np.ndarray,
    relevance: np.ndarray,
    valid: np.ndarray,
    track: np.ndarray,
    must_include: np.ndarray,
) -> None:
    """In place: put each required track's best candidate into the list when it has none of that track."""
    n, k = positions.shape
    students = np.arange(n)
    protected = np.zeros((n, k), dtype=bool)
    for track_row in range(must_include.shape[1]):
        safe = np.where(positions >= 0, positions, 0)
        listed_track = np.where(positions >= 0, np.take_along_axis(track, safe, axis=1), -1)
        has_track = (listed_track == track_row).any(axis=1)
        protected |= (listed_track == track_row) & must_include[:, track_row][:, None]
        of_track = valid & (track == track_row)
        best = np.argmax(np.where(of_track, relevance, -np.inf), axis=1)
        need = must_include[:, track_row] & ~has_track & of_track.any(axis=1)
        # The lowest unprotected place: an empty one if any, else the last filled one.
        free = ~protected
        if not need.any() or not free.any():
            continue
        place = k - 1 - np.argmax(free[:, ::-1], axis=1)
        empty = positions < 0
        first_empty = np.argmax(empty, axis=1)
        place = np.where(empty.any(axis=1), first_empty, place)
        need &= free[students, place]
        positions[students[need], place[need]] = best[need]
        protected[students[need], place[need]] = True
