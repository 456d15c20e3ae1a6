"""`pathways generate --route-skew`: an institution whose routes are walled into their usual tracks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from pathways.cli import app


def _route_track_share(folder: Path) -> dict[str, float]:
    """Share of each route's enrollments in modules of the route's usual track."""
    students = pd.read_csv(folder / "students.csv", usecols=["id", "entry_route"])
    modules = pd.read_csv(folder / "modules.csv", usecols=["id", "track"])
    enrollments = pd.read_csv(folder / "enrollments.csv", usecols=["student_id", "module_id"])
    joined = enrollments.merge(students, left_on="student_id", right_on="id").merge(
        modules, left_on="module_id", right_on="id", suffixes=("_student", "_module")
    )
    usual = {"general": "academic", "vocational": "vocational"}
    return {
        route: float((joined.loc[joined["entry_route"] == route, "track"] == track).mean())
        for route, track in usual.items()
    }


def test_route_skew_walls_routes_into_their_usual_tracks(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(
        app, ["generate", "--size", "small", "--seed", "7", "--out", str(tmp_path / "plain")]
    )
    assert plain.exit_code == 0, plain.output
    skewed = runner.invoke(
        app,
        [
            "generate",
            "--size",
            "small",
            "--seed",
            "7",
            "--route-skew",
            "1",
            "--out",
            str(tmp_path / "skewed"),
        ],
    )
    assert skewed.exit_code == 0, skewed.output
    before, after = _route_track_share(tmp_path / "plain"), _route_track_share(tmp_path / "skewed")
    assert after["general"] > before["general"] + 0.05
    assert after["vocational"] > before["vocational"] + 0.10


def test_route_skew_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--size", "tiny", "--route-skew", "1.5", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code != 0
    assert "route-skew" in result.output
    assert not (tmp_path / "x").exists()
