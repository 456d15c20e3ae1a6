"""Track mix: credits passed per track, the program's target shares, and the deficit (plain functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.featureset import TRACKS


def track_credits(
    passed: sp.csr_matrix, module_track_row: np.ndarray, module_credits: np.ndarray
) -> np.ndarray:
    """(n_students, 3) float32 credits of passed modules per track (TRACKS order).

    ``passed`` (n_students, n_modules) CSR with an entry per passed module (a module passed twice counts
    once); modules of unknown track (-1) count nowhere.
    """
    n_modules = passed.shape[1]
    known = module_track_row >= 0
    by_track = sp.csr_matrix(
        (
            module_credits[known].astype(np.float32),
            (np.flatnonzero(known), module_track_row[known]),
        ),
        shape=(n_modules, len(TRACKS)),
    )
    indicator = passed.copy()
    indicator.data = np.ones_like(indicator.data)
    return np.asarray((indicator @ by_track).toarray(), dtype=np.float32)


def track_targets(program_targets: np.ndarray, student_program_row: np.ndarray) -> np.ndarray:
    """(n_students, 3) float32 target shares of the student's program; zeros without a program.

    ``program_targets`` (n_programs, 3) float32.
    """
    result = np.zeros((len(student_program_row), len(TRACKS)), dtype=np.float32)
    has_program = student_program_row >= 0
    if len(program_targets):
        result[has_program] = program_targets[student_program_row[has_program]]
    return result


def track_deficit(credits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n_students, 3) float32 >= 0: ``targets * total credits passed - credits``, clipped at 0."""
    total = credits.sum(axis=1, keepdims=True)
    return np.clip(targets * total - credits, 0.0, None).astype(np.float32)


def program_required(
    program_modules: pd.DataFrame,
    n_programs: int,
    n_modules: int,
    program_rows: np.ndarray,
    module_rows: np.ndarray,
) -> sp.csr_matrix:
    """(n_programs, n_modules) float32: 1 where the program requires the module (rows given as arrays)."""
    known = (program_rows >= 0) & (module_rows >= 0)
    matrix = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (program_rows[known], module_rows[known])),
        shape=(n_programs, n_modules),
        dtype=np.float32,
    )
    matrix.data[:] = 1.0
    return matrix
