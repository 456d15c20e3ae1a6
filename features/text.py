"""CompetencyTagger: predicts a module's competencies from its text, so that untagged modules get vectors.

A nearest-centroid (Rocchio) model over TF-IDF: each competency is described by its own name and
description plus the text of the modules the catalog tags with it (weighted by the tag weight). A
module's score for a competency is the cosine similarity of its text to that description. It works
with no tags at all (names and descriptions alone), improves with every tagged module, and runs offline.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)


def module_text(modules: pd.DataFrame) -> pd.Series:
    """Title and description of each module joined into one string ('' when both are missing)."""
    parts = [
        modules[c].astype(object).fillna("").astype(str) for c in ("title", "description") if c in modules
    ]
    if not parts:
        return pd.Series([""] * len(modules), index=modules.index, dtype=object)
    text = parts[0]
    for part in parts[1:]:
        text = text + " " + part
    return text.str.strip()


def competency_text(competencies: pd.DataFrame) -> pd.Series:
    """Name and description of each competency joined into one string."""
    name = competencies["name"].astype(object).fillna("").astype(str)
    description = competencies["description"].astype(object).fillna("").astype(str)
    return (name + " " + name + " " + description).str.strip()


class CompetencyTagger(BaseEstimator):
    """Scores modules × competencies from text.

    ``fit(competencies, modules=None, tags=None)``: ``competencies`` has ``id``, ``name``, ``description``;
    ``modules`` has ``id``, ``title``, ``description``; ``tags`` has ``module_id``, ``competency_id``,
    ``weight`` (the catalog's tags used as training examples). ``predict_scores(modules)`` returns a
    (n_modules, n_competencies) float32 CSR of cosine similarities in [0, 1] (competency order:
    ``competency_ids_``); ``transform`` keeps the ``top_k`` best per module with score >= ``min_score``,
    scaled so that a module's best predicted tag weighs ``predicted_weight``.
    """

    def __init__(
        self,
        *,
        top_k: int = 3,
        min_score: float = 0.05,
        predicted_weight: float = 0.6,
        name_weight: float = 4.0,
        max_features: int = 20000,
        ngram_max: int = 2,
        min_df: int = 1,
    ) -> None:
        self.top_k = top_k
        self.min_score = min_score
        self.predicted_weight = predicted_weight
        self.name_weight = name_weight
        self.max_features = max_features
        self.ngram_max = ngram_max
        self.min_df = min_df

    def fit(
        self,
        competencies: pd.DataFrame,
        modules: pd.DataFrame | None = None,
        tags: pd.DataFrame | None = None,
    ) -> CompetencyTagger:
        self.competency_ids_ = competencies["id"].astype(object).to_numpy()
        own_text = competency_text(competencies)
        corpus = list(own_text)
        module_texts = module_text(modules) if modules is not None else pd.Series([], dtype=object)
        corpus += list(module_texts)
        self.vectorizer_ = TfidfVectorizer(
            lowercase=True,
            stop_words="english",
            sublinear_tf=True,
            ngram_range=(1, self.ngram_max),
            max_features=self.max_features,
            min_df=self.min_df,
        )
        has_words = any(text.strip() for text in corpus)
        if not has_words:
            corpus = ["placeholder"]
        self.vectorizer_.fit(corpus)
        own = normalize(self.vectorizer_.transform(own_text)) * self.name_weight
        centroids = sp.csr_matrix(own)
        n_tagged = 0
        if modules is not None and tags is not None and len(tags) and len(modules):
            module_vectors = normalize(self.vectorizer_.transform(module_texts))
            module_rows = pd.Index(modules["id"].astype(object)).get_indexer(tags["module_id"].astype(object))
            competency_rows = pd.Index(self.competency_ids_).get_indexer(tags["competency_id"].astype(object))
            usable = (module_rows >= 0) & (competency_rows >= 0)
            n_tagged = int(usable.sum())
            assignment = sp.csr_matrix(
                (
                    tags["weight"].to_numpy(np.float32)[usable],
                    (competency_rows[usable], module_rows[usable]),
                ),
                shape=(len(self.competency_ids_), len(modules)),
            )
            tagged_text = normalize(assignment @ module_vectors)
            centroids = centroids + tagged_text
        self.centroids_ = sp.csr_matrix(normalize(centroids), dtype=np.float32)
        self.n_training_tags_ = n_tagged
        log.info(
            "competency tagger: %d competencies, %d words, %d training tags",
            len(self.competency_ids_),
            len(self.vectorizer_.vocabulary_),
            n_tagged,
        )
        return self

    def predict_scores(self, modules: pd.DataFrame) -> sp.csr_matrix:
        """(n_modules, n_competencies) float32 CSR of cosine similarities of module text to competencies."""
        check_is_fitted(self, "centroids_")
        vectors = normalize(self.vectorizer_.transform(module_text(modules)))
        scores = sp.csr_matrix(vectors @ self.centroids_.T, dtype=np.float32)
        scores.data = np.clip(scores.data, 0.0, 1.0)
        scores.eliminate_zeros()
        return scores

    def transform(self, modules: pd.DataFrame) -> sp.csr_matrix:
        """(n_modules, n_competencies) float32 CSR of predicted tag weights (top_k per module)."""
        scores = self.predict_scores(modules).toarray()
        n_competencies = scores.shape[1]
        result = np.zeros_like(scores)
        if n_competencies and len(scores):
            k = min(self.top_k, n_competencies)
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            chosen = np.take_along_axis(scores, best, axis=1)
            chosen = np.where(chosen >= self.min_score, chosen, 0.0)
            row_max = scores.max(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                scaled = np.nan_to_num(chosen / row_max) * self.predicted_weight
            np.put_along_axis(result, best, scaled, axis=1)
        matrix = sp.csr_matrix(result.astype(np.float32))
        matrix.eliminate_zeros()
        return matrix
