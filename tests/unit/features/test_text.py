"""CompetencyTagger: scikit-learn conventions and sensible predictions on tiny texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from features.text import CompetencyTagger

COMPETENCIES = pd.DataFrame(
    {
        "id": ["sql", "weld", "team"],
        "name": ["SQL", "Welding", "Teamwork"],
        "description": ["querying relational databases", "arc welding of metal", "collaboration in teams"],
    }
)
MODULES = pd.DataFrame(
    {
        "id": ["m0", "m1", "m2"],
        "title": ["Databases", "Fabrication", "Capstone"],
        "description": [
            "relational databases and queries",
            "metal fabrication with arc welding",
            "group work",
        ],
    }
)


def test_unfitted_tagger_refuses_to_predict() -> None:
    with pytest.raises(NotFittedError):
        CompetencyTagger().transform(MODULES)


def test_init_only_stores_keyword_arguments() -> None:
    tagger = CompetencyTagger(top_k=2, min_score=0.2)
    assert clone(tagger).get_params()["top_k"] == 2


def test_names_and_descriptions_alone_tag_modules() -> None:
    tagger = CompetencyTagger(top_k=1).fit(COMPETENCIES)
    assert list(tagger.competency_ids_) == ["sql", "weld", "team"] and tagger.n_training_tags_ == 0
    predicted = tagger.transform(MODULES).toarray()
    assert predicted.shape == (3, 3) and predicted.dtype == np.float32
    assert predicted[0].argmax() == 0 and predicted[1].argmax() == 1
    assert (predicted > 0).sum(axis=1).max() <= 1  # top_k=1


def test_tagged_modules_teach_the_tagger_new_words() -> None:
    # "group work" shares no word with the competency texts; a tagged example teaches "group".
    untrained = CompetencyTagger().fit(COMPETENCIES, MODULES)
    assert untrained.predict_scores(MODULES.iloc[[2]]).nnz == 0
    tags = pd.DataFrame({"module_id": ["m2"], "competency_id": ["team"], "weight": [1.0]})
    tagger = CompetencyTagger().fit(COMPETENCIES, MODULES, tags)
    unseen = pd.DataFrame({"id": ["x"], "title": ["Group project"], "description": [""]})
    scores = tagger.predict_scores(unseen).toarray()
    assert scores[0].argmax() == 2 and scores[0, 2] > 0
    assert tagger.n_training_tags_ == 1
