"""Every command of docs/design.md exists, and errors exit non-zero with a one-line reason."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pathways.cli import app
from records.settings import get_settings

COMMANDS = [
    ["demo"],
    ["db", "upgrade"],
    ["generate"],
    ["import"],
    ["import-onet"],
    ["train"],
    ["evaluate"],
    ["recommend"],
    ["export-recommendations"],
    ["models", "list"],
    ["models", "promote"],
    ["models", "rollback"],
    ["users", "add"],
    ["users", "token"],
    ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_settings_read_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("PATHWAYS_PORT", "9001")
    settings = get_settings()
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert settings.port == 9001
    assert get_settings(port=8123).port == 8123
