"""The equity audit on a route-skewed institution: the separation shows, the re-rank narrows it, and the
gate refuses a candidate that widens it (real databases, real fits, the nightly job end to end)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from pathways.cli import app
from records.db import make_engine
from records.ingest import import_tables
from records.synthetic import generate
from training.pipeline import run_nightly

from .conftest import FAST_MODEL, job_settings

runner = CliRunner()
pytestmark = pytest.mark.slow

# Re-ranking switched off in effect: only the blend's own top 10 are candidates, with no track bonus
# and no competency spread. On the skewed institution its lists separate the routes more.
SKEWED_CANDIDATE = {**FAST_MODEL, "k_candidates": 10, "track_weight": 0.0, "diversity": 0.0}


@pytest.fixture(scope="module")
def skewed_tables() -> dict[str, pd.DataFrame]:
    return generate("small", seed=7, route_skew=1.0)


@pytest.fixture
def skewed_engine(database_url: str, skewed_tables: dict[str, pd.DataFrame]) -> Iterator[Engine]:
    engine = make_engine(database_url)
    import_tables(engine, skewed_tables)
    yield engine
    engine.dispose()


def _env(database_url: str, folder: Path) -> dict[str, str]:
    return {
        "PATHWAYS_DATABASE_URL": database_url,
        "PATHWAYS_ARTIFACTS_DIR": str(folder / "models"),
        "PATHWAYS_REPORTS_DIR": str(folder / "reports"),
        "PATHWAYS_LOCK_PATH": str(folder / "train.lock"),
        "PATHWAYS_LOG_LEVEL": "WARNING",
    }


def test_evaluate_json_shows_popularity_separating_routes_and_the_rerank_narrowing_it(
    skewed_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["evaluate", "--json"], env=_env(database_url, tmp_path))
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)
    equity = evaluation["equity"]
    exposure = equity["exposure"]
    popularity = exposure["popularity"]["routes"]
    assert popularity["general"]["n"] >= 30 and popularity["vocational"]["n"] >= 30
    # Popularity alone shows vocational-route students a visibly more vocational mix than general-route ones.
    shown_gap = (
        popularity["vocational"]["slot_share"]["vocational"]
        - popularity["general"]["slot_share"]["vocational"]
    )
    assert shown_gap > 0.10
    assert exposure["popularity"]["difference"]["value"] > 0.12
    # The hybrid's re-rank (track targets, competency spread) narrows what its blend alone would show.
    reranked = exposure["hybrid"]["difference"]["value"]
    blend_only = exposure["hybrid_without_rerank"]["difference"]["value"]
    assert reranked < 0.9 * blend_only
    assert evaluation["models"]["hybrid"]["route_exposure_difference"] == pytest.approx(reranked)
    # Gaps per group attribute with n per group and a bootstrap interval.
    route_gap = equity["gaps"]["entry_route"]["ndcg@10"]
    assert {"general", "vocational", "transfer"} <= set(route_gap["groups"])
    interval = route_gap["gap"]["ci95"]
    assert interval[0] <= route_gap["gap"]["relative"] <= interval[1]
    assert set(equity["gaps"]) >= {"entry_route", "attribute:gender", "attribute:first_generation"}
    assert "non-binary" in equity["gaps"]["attribute:gender"]["ndcg@10"]["too_small"]


def test_the_gate_refuses_a_candidate_that_widens_the_route_gap(
    skewed_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = job_settings(database_url, tmp_path)
    first = run_nightly(settings, engine=skewed_engine, model_options=FAST_MODEL)
    assert first.promoted, first.gate_reason
    widened = run_nightly(settings, engine=skewed_engine, model_options=SKEWED_CANDIDATE)
    assert widened.status == "rejected"
    assert "grew from" in widened.gate_reason and "entry routes" in widened.gate_reason
    candidate = widened.evaluation["models"]["hybrid"]
    promoted = widened.evaluation["models"]["promoted"]
    assert promoted["version"] == first.version
    # The refusal is for equity, not accuracy: the candidate's NDCG@10 is within the tolerance.
    assert candidate["ndcg@10"] >= promoted["ndcg@10"] - settings.gate_tolerance
    assert candidate["route_exposure_difference"] > 1.1 * promoted["route_exposure_difference"]
    assert widened.report_path is not None
    page = widened.report_path.read_text()
    assert widened.gate_reason.split(" (")[0] in page
    assert {"route_exposure.png", "route_gaps.png"} <= {p.name for p in widened.report_path.parent.iterdir()}
    listing = runner.invoke(app, ["models", "list"], env=_env(database_url, tmp_path), terminal_width=400)
    assert listing.exit_code == 0, listing.output
    assert widened.gate_reason.split(" (")[0] in " ".join(listing.output.split())
    # The control: the promoted configuration again is compared on the same figures and passes.
    again = run_nightly(settings, engine=skewed_engine, model_options=FAST_MODEL)
    assert again.promoted and "equity gaps within limits" in again.gate_reason, again.gate_reason
