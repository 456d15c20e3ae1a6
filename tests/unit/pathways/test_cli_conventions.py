"""The command line's conventions, part by part: help texts, logging, JSON, tables (issue 11)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import numpy as np
import pytest
import typer
from rich.table import Table
from typer.testing import CliRunner

from pathways.cli import app, print_json
from pathways.console import ResultConsole
from pathways.logging import configure_logging, verbosity_level


def _commands(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every leaf command of the click tree, with its path of names."""
    subcommands = getattr(group, "commands", None)
    if not subcommands:
        yield path, group
        return
    for name, command in subcommands.items():
        yield from _commands(command, (*path, name))


ALL_COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_command_tree_holds_the_new_commands() -> None:
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    assert {"occupations", "users list", "users token", "recommend", "evaluate"} <= names


@pytest.mark.parametrize("path,command", ALL_COMMANDS, ids=[" ".join(path) for path, _ in ALL_COMMANDS])
def test_help_describes_every_option_and_argument(path: tuple[str, ...], command: object) -> None:
    undescribed = [
        param.name
        for param in command.params  # type: ignore[attr-defined]
        if param.name != "help" and not (getattr(param, "help", None) or "").strip()
    ]
    assert undescribed == [], f"pathways {' '.join(path)}: no help for {undescribed}"
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "…" not in result.output


def test_root_help_offers_verbose_and_quiet() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "-v, --verbose" in result.output and "-q, --quiet" in result.output


def test_verbosity_level() -> None:
    assert verbosity_level(0, False, "info") == "INFO"
    assert verbosity_level(1, False, "INFO") == "DEBUG"
    assert verbosity_level(2, True, "INFO") == "WARNING"  # -q wins


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("training", "records", "alembic"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_logs_are_plain_lines_without_other_libraries_info(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("training.pipeline").info("step %s took %.1f s " + "x" * 150, "fit", 1.5)
    logging.getLogger("alembic.runtime.migration").warning("something odd")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # one line each, however long: a cron log stays greppable
    assert " INFO training.pipeline: step fit took 1.5 s x" in lines[0]
    assert "WARNING alembic.runtime.migration: something odd" in lines[1]
    assert "Context impl" not in stream.getvalue()


def test_verbose_shows_debug_and_other_libraries_info(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(verbosity_level(1, False, "INFO"), stream=stream)
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("records.frames").debug("frame detail")
    assert "Context impl SQLiteImpl." in stream.getvalue()
    assert "frame detail" in stream.getvalue()


def test_quiet_keeps_only_warnings(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(verbosity_level(0, True, "INFO"), stream=stream)
    logging.getLogger("training.pipeline").info("progress")
    logging.getLogger("training.pipeline").warning("the gate rejected it")
    assert stream.getvalue().count("\n") == 1 and "the gate rejected it" in stream.getvalue()


def test_an_unknown_log_level_is_a_clear_error(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("loud", stream=io.StringIO())


def test_print_json_is_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"ndcg": np.float32(0.5), "n": np.int64(3), "gap": float("nan"), "rows": np.arange(2)})
    out = capsys.readouterr().out
    assert json.loads(out) == {"ndcg": 0.5, "n": 3, "gap": None, "rows": [0, 1]}
    assert "NaN" not in out


def _metric_table() -> Table:
    table = Table(title="evaluation")
    for column in ("model", "ndcg@5", "recall@5", "precision@5", "hitrate@5", "map@5", "coverage"):
        table.add_column(column, justify="right" if column != "model" else "left")
    table.add_row("popularity", "0.6543", "0.6510", "0.5604", "0.9583", "0.5700", "0.9737")
    table.add_row("competency_gap", "0.3312", "0.3401", "0.2833", "0.7812", "0.2256", "1.0000")
    return table


@pytest.mark.parametrize(
    "terminal,width", [(False, None), (True, 40)], ids=["not a terminal", "narrow terminal"]
)
def test_tables_are_never_cut_short(terminal: bool, width: int | None) -> None:
    out = io.StringIO()
    console = ResultConsole(file=out, force_terminal=terminal, width=width, color_system=None)
    console.print(_metric_table())
    text = out.getvalue()
    assert "…" not in text
    for cell in ("popularity", "competency_gap", "0.6543", "precision@5", "0.9737"):
        assert cell in text
    assert console.width == (width or 80)  # the console itself is left as it was


def test_plain_lines_are_not_wrapped_in_a_pipe() -> None:
    out = io.StringIO()
    ResultConsole(file=out, color_system=None).print("note: " + "word " * 40)
    assert out.getvalue().count("\n") == 1


def test_the_notebooks_extra_brings_jupyterlab_and_jupytext() -> None:
    """README promises `make notebooks` opens them in JupyterLab: the extra and the target must exist."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {requirement.split(">")[0].split("=")[0].strip() for requirement in extras["notebooks"]}
    assert {"jupyterlab", "jupytext"} <= names
    makefile = (root / "Makefile").read_text()
    target = makefile[makefile.index("\nnotebooks:") :].split("\n\n")[0]
    assert '-e ".[dev,notebooks]"' in target and "jupyter lab notebooks/" in target


def test_the_readme_and_docs_point_only_inside_the_repository() -> None:
    """Links in README.md and docs/ resolve to files of the checkout; the design is not elsewhere."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert {page.name for page in pages} >= {"README.md", "design.md", "cli.md", "testing.md"}
    for page in pages:
        text = page.read_text()
        assert "../shared" not in text, page
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_an_unexpected_error_is_one_line_and_verbose_raises_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command registered on the app gets the one-line treatment, including ones added later."""
    from pathways import cli

    scratch = cli._App(name="scratch")

    @scratch.command()
    def boom() -> None:
        """Fail the way an unforeseen bug would."""
        raise RuntimeError("the disk is full\n  while writing var/models/v3/model.pkl")

    @scratch.command()
    def other() -> None:
        """A second command, so that Typer keeps the command names."""

    plain = CliRunner().invoke(scratch, ["boom"])
    assert plain.exit_code == 1 and plain.stdout == ""
    assert plain.stderr == ("error: RuntimeError: the disk is full (pathways -v ... shows the traceback)\n")
    monkeypatch.setitem(cli._verbosity, "verbose", 1)
    verbose = CliRunner().invoke(scratch, ["boom"])
    assert isinstance(verbose.exception, RuntimeError)
