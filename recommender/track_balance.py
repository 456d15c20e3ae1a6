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
    """``score[s, m] = min(credits[m], deficit[s, track[m]]) / credits[m]``: the share of the module's
    credits that fill a track the student is short of, in [0, 1]; 0 for unknown tracks. Nothing learned.
    """

    name = "track_balance"

    def fit(self, fs: FeatureSet) -> Self:
        self.has_data_ = bool(np.any(fs.track_deficit)) and bool(np.any(module_track_rows(fs) >= 0))
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 in [0, 1]."""
        return track_fill(fs.track_deficit[np.asarray(student_rows, dtype=np.int64)], fs)


def track_fill(deficit: np.ndarray, fs: FeatureSet) -> np.ndarray:
    """(n, n_modules) float32 share of each module's credits that fill ``deficit`` (n, 3) credits."""
    tracks = module_track_rows(fs)
    credits = module_credits(fs)
    padded = np.concatenate([deficit.astype(np.float32), np.zeros((deficit.shape[0], 1), np.float32)], axis=1)
    per_module = padded[:, np.where(tracks >= 0, tracks, 3)]
    return np.minimum(per_module, credits[None, :]) / np.maximum(credits, 1e-9)[None, :]
