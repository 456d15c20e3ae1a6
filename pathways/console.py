"""Where the command line prints: results on standard output, never cut short.

Rich sizes tables to the terminal, or to 80 columns when the output is a pipe, a file or a cron log,
and then cuts cells short ("popula…", "0.65…"). :class:`ResultConsole` prints every table at its
natural width instead (a narrow terminal wraps the long lines rather than losing their ends), and does
not wrap plain lines when the output is not a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

# Wider than any table this project prints; only used to measure a table's natural width.
_MEASURE_WIDTH = 10_000


class ResultConsole(Console):
    """A rich console that never truncates a table's cells and never wraps lines in a pipe."""

    def natural_width(self, table: Table) -> int:
        """The width ``table`` needs to show every cell in full, in characters."""
        options = self.options.update(width=_MEASURE_WIDTH)
        return Measurement.get(self, options, table).maximum

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        tables = [item for item in objects if isinstance(item, Table)]
        if not tables:
            if not self.is_terminal:
                kwargs.setdefault("soft_wrap", True)
            super().print(*objects, **kwargs)
            return
        needed = max(self.natural_width(table) for table in tables)
        if needed <= self.width:
            super().print(*objects, **kwargs)
            return
        saved = self._width
        self.width = needed
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = saved
