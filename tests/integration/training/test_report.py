"""The HTML report with its plots, from a hand-made evaluation."""

from __future__ import annotations

from pathlib import Path

from training.report import write_report

EVALUATION = {
    "cutoff_term": "2025-2",
    "test_term": "2025-2",
    "k": [5, 10],
    "n_students": 3,
    "eligibility_violations": 0,
    "models": {
        "hybrid": {"ndcg@10": 0.4321, "recall@10": 0.5, "coverage": 0.25},
        "popularity": {"ndcg@10": 0.1234, "recall@10": 0.25, "coverage": 0.1},
        "promoted": None,
    },
    "groups": {
        "entry_route": {
            "groups": {"general": {"n": 2, "ndcg@10": 0.5}, "transfer": {"n": 1, "ndcg@10": float("nan")}},
            "largest_gap": {"ndcg@10": {"gap": 0.2, "high": "general", "low": "vocational"}},
        }
    },
    "track_mix": {"lists": {"academic": 0.5, "vocational": 0.5}, "targets": {"academic": 1.0}},
    "cross_track_exposure": {"overall": 0.5, "general": 0.5, "vocational": None},
    "calibration": {"brier": 0.1, "bins": [{"n": 2, "mean_predicted": 0.2, "observed_rate": 0.5}]},
    "notes": ["a <note>"],
}


def test_report_has_tables_plots_and_escapes_text(tmp_path: Path) -> None:
    path = write_report(tmp_path, "v1", EVALUATION, "promoted: first model", {"fit": 12.5, "score": 3.25})
    assert path == tmp_path / "v1" / "report.html"
    assert {p.name for p in path.parent.iterdir()} == {
        "report.html",
        "metrics.png",
        "track_mix.png",
        "calibration.png",
        "group_gaps.png",
    }
    assert all(
        (path.parent / name).read_bytes().startswith(b"\x89PNG")
        for name in ("metrics.png", "calibration.png")
    )
    page = path.read_text()
    assert "0.4321" in page and "0.1234" in page and "promoted: first model" in page
    assert "12.5000" in page and "a &lt;note&gt;" in page and "<note>" not in page
    assert "nan" not in page
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
