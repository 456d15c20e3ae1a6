"""Scoring speed: top-k with eligibility for every student, against the bare factor product.

    .venv/bin/python -m bench.scoring --size large

Reads the institution from ``var/bench/<size>-7.db`` (the features benchmark prepares it; generated and
imported here when missing), builds the FeatureSet as of the newest closed term and the term context of
the next term, fits the collaborative component (implicit ALS), then for every student, in chunks:

- *bare*: ``student_factors @ module_factors.T`` (float32), nothing else;
- *top-k* (``batched_factor_top_k``: ``factor_top_k`` per chunk, chunks on ``--workers`` threads, as
  the bare product's BLAS uses both cores): eligibility (prerequisite groups via sparse products,
  offerings, seats, passed, in progress, exclusions), products only where a module can be eligible (a
  dense block of open modules without prerequisites, dealt into groups by the chunk's mean score, one
  dot product per eligible module with prerequisites), and a top 10 from a group bound;
- the same on one thread (reported, not the figure);
- the reference path: the full product followed by ``top_k_eligible``. The lists of the top-k path
  must be identical to it (places that differ must be ties within float32 rounding between eligible
  modules; counted as ``tie_swaps``), or the bench fails.

``--repeat`` passes over every student are made, each running the paths in turn, and the fastest total
of each counts (the machine is shared). The ratio top-k / bare is the figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

import numpy as np

from features.build import build_feature_set, build_term_context
from recommender.collaborative import CollaborativeComponent
from recommender.eligibility import batched_factor_top_k, eligible_mask, prerequisite_index, top_k_eligible
from records.db import make_engine, upgrade
from records.frames import load_frames, load_term_state, newest_closed_term, next_term

log = logging.getLogger("bench.scoring")


def database(size: str, seed: int = 7) -> str:
    path = Path("var/bench") / f"{size}-{seed}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        from records.ingest import import_tables
        from records.synthetic import generate

        upgrade(url)
        engine = make_engine(url)
        import_tables(engine, generate(size, seed))
        engine.dispose()
    return url


def _check_identical(
    columns: np.ndarray,
    values: np.ndarray,
    reference_columns: np.ndarray,
    reference_values: np.ndarray,
    scores: np.ndarray,
    eligible: np.ndarray,
) -> int:
    """Assert the lists (n, k) equal the reference path's; returns how many places differ by a tie.

    The products are the same float32 dot products computed by different kernels (a block of columns,
    one dot product per entry) and may differ in the last bit, so two eligible modules whose scores are
    equal within 1e-5 may come in either order; any other difference fails. ``scores`` (n, n_modules) is
    the full product, ``eligible`` the eligibility mask of the rows (only consulted where lists differ).
    """
    np.testing.assert_allclose(values, reference_values, rtol=1e-5, atol=1e-6)
    differ_rows, differ_places = np.nonzero(columns != reference_columns)
    chosen = columns[differ_rows, differ_places]
    assert (chosen >= 0).all(), "a list is shorter than the reference"
    np.testing.assert_allclose(
        scores[differ_rows, chosen], reference_values[differ_rows, differ_places], rtol=1e-5, atol=1e-6
    )
    assert eligible[differ_rows, chosen].all(), "an ineligible module in a list"
    return len(differ_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large")
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--factors", type=int, default=48)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="threads for the chunks of the top-k path")
    parser.add_argument("--repeat", type=int, default=3, help="passes over all students; the fastest counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    engine = make_engine(database(args.size))
    cutoff = newest_closed_term(engine)
    fs = build_feature_set(load_frames(engine, cutoff))
    context = build_term_context(fs, load_term_state(engine, next_term(engine, cutoff), cutoff_term=cutoff))
    started = time.perf_counter()
    collaborative = CollaborativeComponent(factors=args.factors, random_state=0).fit(fs)
    fit_s = time.perf_counter() - started
    users, items = collaborative.user_factors_, collaborative.item_factors_
    index = prerequisite_index(fs)
    all_rows = np.arange(fs.n_students)
    chunks = [all_rows[start : start + args.chunk] for start in range(0, fs.n_students, args.chunk)]
    passes: list[tuple[float, float, float, float]] = []
    n_recommended = tie_swaps = 0
    for _ in range(args.repeat):
        tick = time.perf_counter()
        for rows in chunks:
            scores = users[rows] @ items.T
        bare_s = time.perf_counter() - tick

        tick = time.perf_counter()
        columns, values = batched_factor_top_k(
            users, items, fs, all_rows, context, args.k, index=index, chunk=args.chunk, workers=args.workers
        )
        topk_s = time.perf_counter() - tick

        tick = time.perf_counter()
        batched_factor_top_k(
            users, items, fs, all_rows, context, args.k, index=index, chunk=args.chunk, workers=1
        )
        one_thread_s = time.perf_counter() - tick

        # The reference path (the full product, then eligibility and top k on it): timed, and the lists
        # must be identical to it.
        full_s = 0.0
        n_recommended = tie_swaps = 0
        for rows in chunks:
            tick = time.perf_counter()
            scores = users[rows] @ items.T
            reference_columns, reference_values = top_k_eligible(
                scores, fs, rows, context, args.k, index=index
            )
            full_s += time.perf_counter() - tick
            np.testing.assert_allclose(values[rows], reference_values, rtol=1e-5, atol=1e-6)
            differ = np.flatnonzero((columns[rows] != reference_columns).any(axis=1))
            tie_swaps += _check_identical(
                columns[rows[differ]],
                values[rows[differ]],
                reference_columns[differ],
                reference_values[differ],
                scores[differ],
                eligible_mask(fs, rows[differ], context, index=index),
            )
            n_recommended += int((reference_columns >= 0).sum())
        passes.append((bare_s, topk_s, one_thread_s, full_s))
    # The machine is shared: each figure is the fastest of the passes.
    bare_s, topk_s, one_thread_s, full_s = (min(values) for values in zip(*passes, strict=True))
    result = {
        "size": args.size,
        "students": fs.n_students,
        "modules": fs.n_modules,
        "factors": int(items.shape[1]),
        "chunk": args.chunk,
        "passes": [[round(value, 2) for value in one] for one in passes],
        "als_fit_s": round(fit_s, 1),
        "bare_product_s": round(bare_s, 2),
        "workers": args.workers,
        "eligible_products_topk_s": round(topk_s, 2),
        "ratio": round(topk_s / bare_s, 2),
        "eligible_products_topk_one_thread_s": round(one_thread_s, 2),
        "ratio_one_thread": round(one_thread_s / bare_s, 2),
        "full_product_then_eligible_topk_s": round(full_s, 2),
        "ratio_full_product_path": round(full_s / bare_s, 2),
        "recommended_pairs": n_recommended,
        "identical_to_reference": True,
        "tie_swaps": tie_swaps,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
