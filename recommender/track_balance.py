"""The track-balance component: how a module moves the student's credit mix toward the program's targets."""

from __future__ import annotations

from typing import Self

import numpy as np

from features.featureset import FeatureSet
from recommender.base import TermContext


def module_track_rows(fs: FeatureSet) -> np.ndarray:
    """(n_modules,) int64 index into TRACKS, -1 unknown."""
    return fs.module_info["track_row"].to_numpy(dtype=np.int64)


def module_credits(fs: FeatureSet) -> np.ndarray:
    """(n_modules,) float32 credits (the FeatureSet fills unknown credits)."""
    return np.nan_to_num(fs.module_info["credits"].to_numpy(dtype=np.float32), nan=1.0)


class TrackBalanceComponent:
    """``score[s, m] = (target[t] · earned − credits[t]) / max(earned, full_weight_credits)`` for the
    module's track ``t``: positive when the student is short of that track (it moves the mix toward the
    program's targets), negative when already above it; the gap counts fully once
    ``full_weight_credits`` are earned. In [-1, 1]; 0 for unknown tracks or students without targets.
    Nothing is learned.
    """

    name = "track_balance"
    requires = "module tracks (catalogue) and program track targets"

    def __init__(self, *, full_weight_credits: float = 60.0) -> None:
        self.full_weight_credits = full_weight_credits

    def fit(self, fs: FeatureSet) -> Self:
        has_tracks = bool(np.any(module_track_rows(fs) >= 0))
        has_targets = bool(np.any(fs.track_targets > 0))
        self.has_data_ = bool(np.any(fs.track_deficit)) and has_tracks
        if not has_tracks:
            self.abstain_reason_: str | None = "no module tracks (no catalogue or no track column)"
        elif not has_targets:
            self.abstain_reason_ = "no program track targets (no programs or no target shares)"
        elif not self.has_data_:
            self.abstain_reason_ = "no student is short of a track target"
        else:
            self.abstain_reason_ = None
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 in [-1, 1]."""
        rows = np.asarray(student_rows, dtype=np.int64)
        credits = fs.track_credits[rows].astype(np.float32)
        earned = credits.sum(axis=1, keepdims=True)
        gap = (fs.track_targets[rows] * earned - credits) / np.maximum(earned, self.full_weight_credits)
        gap[fs.track_targets[rows].sum(axis=1) <= 0] = 0.0
        padded = np.concatenate([gap, np.zeros((len(rows), 1), np.float32)], axis=1)
        tracks = module_track_rows(fs)
        return padded[:, np.where(tracks >= 0, tracks, 3)].astype(np.float32)


def track_fill(deficit: np.ndarray, fs: FeatureSet) -> np.ndarray:
    """(n, n_modules) float32 share of each module's credits that fill ``deficit`` (n, 3) credits."""
    tracks = module_track_rows(fs)
    credits = module_credits(fs)
    padded = np.concatenate([deficit.astype(np.float32), np.zeros((deficit.shape[0], 1), np.float32)], axis=1)
    per_module = padded[:, np.where(tracks >= 0, tracks, 3)]
    return np.minimum(per_module, credits[None, :]) / np.maximum(credits, 1e-9)[None, :]
