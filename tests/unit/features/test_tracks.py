"""Track mix on a hand-written history."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.interactions import max_csr
from features.tracks import track_credits, track_deficit, track_targets


def test_credits_targets_and_deficit() -> None:
    history = pd.DataFrame(
        {
            "student_row": np.array([0, 0, 0, 0, 1], np.int32),
            "module_row": np.array([0, 0, 1, 2, 3], np.int32),
            "passed": [True, True, True, False, True],
        }
    )
    track_row = np.array([0, 2, 1, -1])  # module 3 has an unknown track
    passed = history.loc[history["passed"]]
    matrix = max_csr(
        passed["student_row"].to_numpy(),
        passed["module_row"].to_numpy(),
        np.full(len(passed), 80.0, np.float32),
        (2, 4),
    )
    credits = track_credits(matrix, track_row, np.array([10.0, 20.0, 5.0, 7.0]))
    # module 0 passed twice counts once; module 2 failed; module 3's track is unknown.
    np.testing.assert_allclose(credits, [[10.0, 0.0, 20.0], [0.0, 0.0, 0.0]])
    targets = track_targets(np.array([[0.5, 0.3, 0.2]], np.float32), np.array([0, -1]))
    np.testing.assert_allclose(targets, [[0.5, 0.3, 0.2], [0.0, 0.0, 0.0]])
    deficit = track_deficit(credits, targets)
    # 30 credits so far: targets 15 / 9 / 6 → short 5 academic, 9 vocational, none in projects.
    np.testing.assert_allclose(deficit, [[5.0, 9.0, 0.0], [0.0, 0.0, 0.0]])
    assert deficit.dtype == np.float32
