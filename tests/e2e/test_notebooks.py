"""The notebooks run top to bottom as scripts and save readable figures; jupytext turns each into a notebook.

Each notebook runs in its own subprocess (``python notebooks/<name>.py``) against one tiny institution
generated once for the module, with the figures directory pointed at a temporary folder. One more run
checks the fallback: with no usable database the notebook generates its own institution where
``PATHWAYS_NOTEBOOK_DATA_DIR`` says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import nbformat
import pytest

from records.db import make_engine, upgrade
from records.ingest import import_tables
from records.synthetic import generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
EXPECTED_FIGURES: dict[str, tuple[str, ...]] = {
    "01_records.py": (
        "01_students_per_program",
        "01_credits_per_track",
        "01_grade_distributions",
        "01_competency_coverage",
    ),
    "02_models.py": ("02_metrics", "02_contributions", "02_calibration", "02_group_gaps"),
    "03_pathway.py": (
        "03_record",
        "03_competency_profile",
        "03_recommendations",
        "03_pathway",
        "03_what_if",
    ),
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def tiny_institution_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database holding the generated tiny institution (seed 7), shared by the notebook runs."""
    url = f"sqlite:///{tmp_path_factory.mktemp('notebook-records') / 'tiny.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        import_tables(engine, generate("tiny", 7))
    finally:
        engine.dispose()
    return url


def run_notebook(name: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run one notebook as a script with only the given PATHWAYS_* variables set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PATHWAYS_")}
    env.update(settings)
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(NOTEBOOKS_DIR / name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def assert_figures(figures_dir: Path, stems: tuple[str, ...]) -> None:
    """Every expected figure is a PNG with a picture in it (not one flat colour), and nothing else."""
    assert sorted(path.name for path in figures_dir.iterdir()) == sorted(f"{stem}.png" for stem in stems)
    for stem in stems:
        path = figures_dir / f"{stem}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
        pixels = matplotlib.image.imread(path)
        height, width = pixels.shape[:2]
        assert height >= 300 and width >= 400, f"{path.name} is only {width}x{height}"
        assert float(pixels[..., :3].std()) > 0.02, f"{path.name} is blank"


@pytest.mark.parametrize("notebook", sorted(EXPECTED_FIGURES))
def test_notebook_runs_as_a_script_and_saves_its_figures(
    notebook: str, tiny_institution_url: str, tmp_path: Path
) -> None:
    figures_dir = tmp_path / "figures"
    data_dir = tmp_path / "generated"
    result = run_notebook(
        notebook,
        tmp_path,
        PATHWAYS_DATABASE_URL=tiny_institution_url,
        PATHWAYS_FIGURES_DIR=str(figures_dir),
        PATHWAYS_NOTEBOOK_DATA_DIR=str(data_dir),
        PATHWAYS_NOTEBOOK_SIZE="tiny",
    )
    assert result.returncode == 0, f"{notebook} failed:\n{result.stderr[-4000:]}"
    assert "records of PATHWAYS_DATABASE_URL" in result.stdout
    assert not data_dir.exists(), "the notebook generated an institution although the database holds one"
    assert_figures(figures_dir, EXPECTED_FIGURES[notebook])


def test_notebook_generates_an_institution_when_the_database_holds_none(tmp_path: Path) -> None:
    empty_url = f"sqlite:///{tmp_path / 'empty.db'}"
    figures_dir = tmp_path / "figures"
    data_dir = tmp_path / "generated"
    result = run_notebook(
        "01_records.py",
        tmp_path,
        PATHWAYS_DATABASE_URL=empty_url,
        PATHWAYS_FIGURES_DIR=str(figures_dir),
        PATHWAYS_NOTEBOOK_DATA_DIR=str(data_dir),
        PATHWAYS_NOTEBOOK_SIZE="tiny",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "holds no institution" in result.stdout
    assert "the generated tiny institution (seed 7)" in result.stdout
    assert (data_dir / "tiny-seed7.db").stat().st_size > 0
    assert_figures(figures_dir, EXPECTED_FIGURES["01_records.py"])


@pytest.mark.parametrize("notebook", sorted(EXPECTED_FIGURES))
def test_jupytext_converts_the_notebook(notebook: str, tmp_path: Path) -> None:
    output = tmp_path / notebook.replace(".py", ".ipynb")
    jupytext = Path(sys.executable).parent / "jupytext"
    result = subprocess.run(
        [str(jupytext), "--to", "notebook", "--output", str(output), str(NOTEBOOKS_DIR / notebook)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    converted = nbformat.read(output, as_version=4)
    nbformat.validate(converted)
    kinds = [cell.cell_type for cell in converted.cells]
    assert kinds[0] == "markdown" and converted.cells[0].source.startswith("# 0")
    assert kinds.count("code") >= 4 and kinds.count("markdown") >= 4
    assert any("save(fig" in cell.source for cell in converted.cells if cell.cell_type == "code")
