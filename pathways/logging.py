"""Logging set-up for the command line and the service: one line per event, ids only, no personal data."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(level: str = "INFO", rich: bool = True) -> None:
    handler: logging.Handler
    if rich:
        # Standard error: without a console of its own, RichHandler writes to standard output, which
        # would mix log lines into results (`pathways evaluate --json | jq` broke at the INFO level).
        handler = RichHandler(
            console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
        )
        fmt = "%(name)s: %(message)s"
    else:
        handler = logging.StreamHandler()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
