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
