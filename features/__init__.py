"""Features: records as of a cutoff (``records.frames.Frames``) turned into vectors and sparse matrices.

``build.build_feature_set(frames)`` gives the ``featureset.FeatureSet`` every model reads;
``build.build_term_context(fs, state)`` aligns a target term's ``TermState`` with it
(``context.TermContext``).
One module per kind of feature: ``interactions`` (student × module matrices), ``sequence`` (transitions,
popularity), ``competency`` (tags, mastery, demand, goals, gaps), ``text`` (``CompetencyTagger``),
``tracks`` (track mix); ``idindex`` maps external ids to rows.
"""
