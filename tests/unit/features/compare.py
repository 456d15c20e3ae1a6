"""Exact comparison of two FeatureSets (every array, matrix and frame)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.featureset import FeatureSet
from features.idindex import IdIndex


def assert_feature_sets_equal(left: FeatureSet, right: FeatureSet) -> None:
    """Fail naming the first field that differs in value, dtype or shape."""
    for field in dataclasses.fields(FeatureSet):
        a, b = getattr(left, field.name), getattr(right, field.name)
        where = f"FeatureSet.{field.name}"
        if isinstance(a, IdIndex):
            assert a == b, where
        elif isinstance(a, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b, obj=where)
        elif sp.issparse(a):
            assert sp.issparse(b), where
            assert a.shape == b.shape and a.dtype == b.dtype, where
            assert (a != b).nnz == 0, where
        elif isinstance(a, np.ndarray):
            assert a.shape == b.shape and a.dtype == b.dtype, where
            if a.dtype == object:
                assert list(a) == list(b), where
            else:
                np.testing.assert_array_equal(a, b, err_msg=where)
        else:
            assert a == b, where
