"""Logs go to standard error, so that standard output carries only results (``--json`` pipes into jq)."""

from __future__ import annotations

import logging

import pytest

from pathways.logging import configure_logging


@pytest.mark.parametrize("rich", [True, False])
def test_log_lines_go_to_standard_error_only(rich: bool, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("INFO", rich=rich)
        logging.getLogger("pathways.test").info("frames as of 2025-2")
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "frames as of 2025-2" in captured.err
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize("rich", [True, False])
def test_logs_follow_standard_error_when_a_caller_swaps_it(
    rich: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured while standard error was a buffer that is then closed (a command run by a test runner),
    a later record (another thread's) goes to standard error as it is now, not to the closed buffer."""
    import io

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    during, after = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr("sys.stderr", during)
        configure_logging("INFO", rich=rich)
        logging.getLogger("pathways.test").info("while the command ran")
        during.close()
        monkeypatch.setattr("sys.stderr", after)
        logging.getLogger("pathways.test").error("model holder: loading v1 failed")
        written = after.getvalue()
        assert "model holder: loading v1 failed" in written and "Logging error" not in written, written
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
