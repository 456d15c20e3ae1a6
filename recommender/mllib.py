"""Spark MLlib's ALS (implicit preferences) behind the interface the collaborative component uses for
implicit's models: ``fit(user_items)`` on a CSR matrix, then ``user_factors`` and ``item_factors`` as
dense float32 arrays in row order. Where the interactions outgrow one machine the factorisation runs on
the cluster of the active Spark session; what is kept is the factors only, so a model fitted this way is
saved, loaded and scored exactly like one fitted by implicit.

PySpark is imported only when a model is fitted (the ``spark`` extra); the Spark session is the caller's
(``SparkSession.getActiveSession()``), or a local one when none is active.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger(__name__)


class MllibALS:
    """``pyspark.ml.recommendation.ALS`` with ``implicitPrefs=True`` (Hu, Koren and Volinsky's
    confidence weighting, as implicit's ALS): ``rank`` factors, ``regParam``, ``alpha``, ``maxIter``,
    ``seed``. Learned: ``user_factors`` (n_users, rank), ``item_factors`` (n_items, rank), float32;
    users or items without any interaction get zero factors."""

    def __init__(
        self,
        *,
        factors: int = 48,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 0,
        blocks: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.blocks = blocks

    def fit(self, user_items: sp.csr_matrix, show_progress: bool = False) -> MllibALS:
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import SparkSession

        matrix = sp.coo_matrix(user_items, dtype=np.float32)
        spark = SparkSession.getActiveSession() or SparkSession.builder.master("local[*]").getOrCreate()
        triples = pd.DataFrame(
            {
                "user": matrix.row.astype(np.int32),
                "item": matrix.col.astype(np.int32),
                "rating": matrix.data.astype(np.float32),
            }
        )
        blocks = self.blocks or max(1, spark.sparkContext.defaultParallelism)
        als = ALS(
            rank=self.factors,
            maxIter=self.iterations,
            regParam=self.regularization,
            alpha=self.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=self.random_state,
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            nonnegative=False,
        )
        model = als.fit(spark.createDataFrame(triples))
        self.user_factors = _dense(model.userFactors.toPandas(), matrix.shape[0], self.factors)
        self.item_factors = _dense(model.itemFactors.toPandas(), matrix.shape[1], self.factors)
        log.info(
            "mllib ALS: %d interactions, %d factors, %d blocks on %s",
            matrix.nnz,
            self.factors,
            blocks,
            spark.sparkContext.master,
        )
        return self


def _dense(frame: pd.DataFrame, n: int, rank: int) -> np.ndarray:
    """MLlib's (id, features) rows as an (n, rank) float32 array; ids not present stay zero."""
    out = np.zeros((n, rank), dtype=np.float32)
    if len(frame):
        ids = frame["id"].to_numpy(np.int64)
        out[ids] = np.asarray(frame["features"].tolist(), dtype=np.float32)
    return out
