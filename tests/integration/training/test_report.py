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
        "outcomes.png",
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


def _equity_evaluation(route_gap: float) -> dict[str, object]:
    """An evaluation whose equity section comes from the real metric functions on small arrays."""
    import numpy as np

    from training.metrics import gap_with_interval, route_exposure

    track = np.array([0, 0, 1, 1, 2])
    routes = np.array(["general"] * 40 + ["vocational"] * 40 + ["transfer"] * 3, dtype=object)
    lists = np.tile([[0, 1, 4]], (83, 1))
    lists[40:80] = [2, 3, 4]
    exposure = route_exposure(lists, track, np.full(5, 5.0), routes, np.tile([0.5, 0.3, 0.2], (83, 1)), 30)
    ndcg = np.concatenate([np.full(40, 0.6), np.full(40, 0.6 * (1 - route_gap)), [0.1, 0.2, 0.3]])
    ndcg += np.random.default_rng(0).normal(0, 0.05, 83)
    gaps = {"entry_route": {"ndcg@10": gap_with_interval(ndcg, routes, 30)}}
    return {
        **EVALUATION,
        "models": {**EVALUATION["models"], "hybrid": {"ndcg@10": 0.43, "predicted_fail_rate": 0.0917}},  # type: ignore[dict-item]
        "equity": {"min_group_size": 30, "exposure": {"hybrid": exposure}, "gaps": gaps, "risk_penalty": 3.0},
        "calibration": {
            "n": 10,
            "brier": 0.1,
            "ece": 0.0123,
            "bins": [
                {"bin_lower": 0.0, "bin_upper": 0.1, "n": 7, "mean_predicted": 0.05, "observed_rate": 0.1}
            ],
        },
    }


def test_report_equity_section_shows_exposure_gaps_intervals_and_calibration(tmp_path: Path) -> None:
    history = [("v1", _equity_evaluation(0.1)), ("v2", _equity_evaluation(0.2))]
    path = write_report(
        tmp_path, "v3", _equity_evaluation(0.3), "rejected: the gap grew", {}, history=history
    )
    names = {p.name for p in path.parent.iterdir()}
    assert {"route_exposure.png", "route_gaps.png"} <= names
    assert (path.parent / "route_gaps.png").read_bytes().startswith(b"\x89PNG")
    page = path.read_text()
    equity = page.split("<h2>Equity</h2>")[1].split("<h2>")[0]
    assert "1.00 / 0.00 / 0.00" not in equity  # no route is shown one track only: project is in every list
    assert "0.67 / 0.00 / 0.33" in equity and "0.00 / 0.67 / 0.33" in equity  # general, vocational slots
    assert "general vs vocational" in equity  # the largest difference between routes' mixes
    assert "transfer" in equity and "yes" in equity  # three transfer students: too small
    assert "95% interval" in equity and "ECE 0.0123" in equity and "0.0917" in equity
    assert "3.0000 blend logits" in equity
