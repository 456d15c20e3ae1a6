"""Logging set-up for the command line and the service: one line per event, ids only, no personal data.

Logs always go to standard error, so standard output carries only a command's result. The project's own
loggers log at the chosen level; other libraries' (Alembic's "Context impl SQLiteImpl." and the like) only
warnings, unless the level is DEBUG (``pathways -v``).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler

PROJECT_LOGGERS = ("pathways", "records", "features", "recommender", "training", "service")


def verbosity_level(verbose: int, quiet: bool, default: str) -> str:
    """The log level for ``-v`` (DEBUG), ``-q`` (WARNING) or neither (``default``); ``-q`` wins."""
    if quiet:
        return "WARNING"
    if verbose > 0:
        return "DEBUG"
    return default.upper()


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing to ``sys.stderr`` as it is when a record is emitted, not as it was when
    logging was configured: a caller that swaps standard error for a while (a test runner capturing a
    command's output) leaves no handler behind on its closed stream for other threads' records."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO", rich: bool | None = None, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default: standard error).

    ``rich`` (default: when the stream is a terminal) gives coloured, aligned lines; otherwise each record
    is one plain line with a timestamp, whatever its length, so a cron log stays greppable.
    """
    if rich is None:
        rich = (stream if stream is not None else sys.stderr).isatty()
    handler: logging.Handler
    if rich:
        # Without a stream, the console writes to sys.stderr as it is at each record.
        console = Console(stderr=True) if stream is None else Console(file=stream)
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
        fmt = "%(name)s: %(message)s"
    else:
        handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    level = level.upper()
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Other libraries speak only of problems unless asked for everything.
    root.setLevel(logging.INFO if numeric <= logging.DEBUG else max(logging.WARNING, numeric))
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(level)
