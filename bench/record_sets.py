"""Quality on the record sets of the test matrix: each set (records.record_sets) is imported into a fresh
SQLite file and run through the nightly job; the evaluation's hybrid is compared with the best single
component (and ``successor``) on the test term, with what the validation split chose to serve.

    .venv/bin/python -m bench.record_sets                        # tiny, seed 7: the test matrix's own sets
    .venv/bin/python -m bench.record_sets --size small --seeds 7 8 9
    .venv/bin/python -m bench.record_sets --sets log_alone dated_log --options '{"num_threads": 1}'

``--options``: model options (JSON) over the test matrix's (``collaborative_algorithms: ["als"]``, one
thread). One JSON line per set and seed on standard output, then a summary; logs on standard error.
The test terms of the tiny sets hold 80-150 students: one set's ratio moves by a few percent with the
seed, so several seeds say more than one.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from records.db import make_engine, upgrade
from records.ingest import import_tables
from records.record_sets import RECORD_SETS
from records.settings import get_settings
from records.synthetic import generate
from training.pipeline import run_nightly

# The test matrix's model options (tests/integration/training/conftest.py FAST_MODEL).
TEST_MATRIX_OPTIONS: dict[str, Any] = {"collaborative_algorithms": ["als"], "num_threads": 1}


def run_set(name: str, size: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    record_set = RECORD_SETS[name]
    with tempfile.TemporaryDirectory(prefix=f"pathways-{name}-") as folder:
        url = f"sqlite:///{Path(folder) / 'pathways.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            tables = record_set.cut(generate(size, seed=seed), size, seed)
            import_tables(engine, tables, allow_uncatalogued=record_set.uncatalogued)
            settings = get_settings(
                database_url=url,
                artifacts_dir=Path(folder) / "models",
                reports_dir=Path(folder) / "reports",
                lock_path=Path(folder) / "train.lock",
                log_level="WARNING",
            )
            result = run_nightly(settings, engine=engine, model_options=options)
        finally:
            engine.dispose()
    evaluation = result.evaluation
    selection = evaluation.get("selection") or {}
    comparison = evaluation.get("comparison", {})
    return {
        "set": name,
        "size": size,
        "seed": seed,
        "n_test_students": evaluation.get("n_students"),
        "ratio": {metric: values.get("ratio") for metric, values in comparison.items()},
        "best_single": {metric: values.get("best_single") for metric, values in comparison.items()},
        "hybrid": {metric: values.get("hybrid") for metric, values in comparison.items()},
        "difference": {
            metric: (values.get("difference"), values.get("standard_error"))
            for metric, values in comparison.items()
        },
        "served": {
            "winner": selection.get("winner"),
            "blends": selection.get("blends"),
            "shrink": selection.get("shrink"),
            "rerank": selection.get("rerank"),
            "validation_blend_vs_best": selection.get("blend_vs_best"),
        },
        "abstained": sorted(evaluation.get("abstained", {})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--sets", nargs="+", default=sorted(RECORD_SETS), choices=sorted(RECORD_SETS))
    parser.add_argument("--options", default="{}", help="model options (JSON) over the test matrix's")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    options = {**TEST_MATRIX_OPTIONS, **json.loads(args.options)}
    if "collaborative_algorithms" in options:
        options["collaborative_algorithms"] = tuple(options["collaborative_algorithms"])
    ratios: dict[str, list[float]] = {}
    for name in args.sets:
        for seed in args.seeds:
            row = run_set(name, args.size, seed, options)
            print(json.dumps(row), flush=True)
            ratios.setdefault(name, []).append(row["ratio"].get("ndcg@10") or 0.0)
    summary = {
        name: {"ndcg_ratio_mean": round(statistics.fmean(values), 4), "min": round(min(values), 4)}
        for name, values in ratios.items()
    }
    print(
        json.dumps(
            {
                "summary": summary,
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
