"""Fast bulk writes of pandas frames into tables, inside the caller's transaction.

PostgreSQL gets ``COPY ... FROM STDIN`` through psycopg 3; SQLite (and anything else) gets one
``executemany`` per chunk. Neither commits: the caller's transaction decides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Boolean, Connection, Date, DateTime, Float, Integer, Table
from sqlalchemy.sql.type_api import TypeEngine

from records.schema import Base

log = logging.getLogger(__name__)


class BulkWriteError(ValueError):
    """The frame does not fit the table (unknown columns)."""


def table_of(table: Table | type[Base]) -> Table:
    """The :class:`Table` behind an ORM class, or the table itself."""
    if isinstance(table, Table):
        return table
    found = table.__table__
    assert isinstance(found, Table)
    return found


def bulk_insert(
    connection: Connection,
    table: Table | type[Base],
    rows: pd.DataFrame,
    chunk_size: int = 50_000,
) -> int:
    """Insert every row of ``rows`` into ``table``; return the number of rows written.

    ``rows`` has one column per table column it fills (names as in the table; columns left out
    take NULL, so give every NOT NULL column). NaN, NaT and ``pd.NA`` become NULL; numpy scalars
    become Python values; float columns bound for integer columns are cast (``3.0`` → ``3``).
    Runs in the caller's transaction and never commits.
    """
    target = table_of(table)
    unknown = [name for name in rows.columns if name not in target.columns]
    if unknown:
        raise BulkWriteError(f"table {target.name} has no column(s) {', '.join(map(str, unknown))}")
    if rows.empty:
        return 0
    names = [str(name) for name in rows.columns]
    dialect = connection.dialect.name
    written = 0
    for start in range(0, len(rows), chunk_size):
        chunk = rows.iloc[start : start + chunk_size]
        tuples = _row_tuples(chunk, target, for_copy=dialect == "postgresql", connection=connection)
        if dialect == "postgresql":
            _copy_rows(connection, target, names, tuples)
        else:
            _executemany_rows(connection, target, names, tuples)
        written += len(chunk)
    log.debug("bulk-inserted %d rows into %s", written, target.name)
    return written


def _row_tuples(
    chunk: pd.DataFrame, target: Table, for_copy: bool, connection: Connection
) -> list[tuple[Any, ...]]:
    columns = [
        _python_values(chunk[name], target.columns[str(name)].type, for_copy, connection)
        for name in chunk.columns
    ]
    return list(zip(*columns, strict=True))


def _python_values(
    series: pd.Series, column_type: TypeEngine[Any], for_copy: bool, connection: Connection
) -> list[Any]:
    """One column as a list of Python values with None for missing ones."""
    missing = series.isna().to_numpy()
    values: np.ndarray
    if isinstance(column_type, Boolean):
        values = series.to_numpy(dtype=object)
        values = np.array([bool(v) if v is not None else None for v in values], dtype=object)
    elif isinstance(column_type, Integer):
        numbers = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
        values = np.where(missing, 0, numbers).astype(np.int64).astype(object)
    elif isinstance(column_type, Float):
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
        values = values.astype(object)
    elif isinstance(column_type, DateTime):
        values = np.asarray(pd.to_datetime(series).dt.to_pydatetime(), dtype=object)
    elif isinstance(column_type, Date):
        values = pd.to_datetime(series).dt.date.to_numpy(dtype=object)
    else:
        values = series.to_numpy(dtype=object)
    values = np.array(values, dtype=object)  # a copy we may write None into
    values[missing] = None
    converter = _converter(column_type, for_copy, connection)
    if converter is not None:
        return [None if value is None else converter(value) for value in values.tolist()]
    return values.tolist()


def _converter(
    column_type: TypeEngine[Any], for_copy: bool, connection: Connection
) -> Callable[[Any], Any] | None:
    """How a value must be turned into what the driver takes, beyond plain Python scalars."""
    if isinstance(column_type, JSON):
        return _json_text()
    if for_copy:
        return None  # psycopg's COPY adapts str, int, float, bool, date and datetime itself
    if isinstance(column_type, Date | DateTime):
        # SQLite stores dates as strings in SQLAlchemy's own format; use its processor to match.
        return column_type.bind_processor(connection.dialect)
    return None


def _json_text() -> Callable[[Any], str]:
    """``json.dumps`` with its default arguments, for the values of one column: the same C encoder that
    ``json.dumps`` builds for every value (so the same text), built once for the column."""
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return json.dumps
    defaults = json.JSONEncoder()
    encoder = make_encoder(
        {},  # markers: circular references raise, as with json.dumps
        defaults.default,
        json.encoder.encode_basestring_ascii,
        defaults.indent,
        defaults.key_separator,
        defaults.item_separator,
        defaults.sort_keys,
        defaults.skipkeys,
        defaults.allow_nan,
    )

    def text(value: Any) -> str:
        return "".join(encoder(value, 0))

    return text


def _copy_rows(connection: Connection, target: Table, names: list[str], rows: list[tuple[Any, ...]]) -> None:
    preparer = connection.dialect.identifier_preparer
    column_list = ", ".join(preparer.quote(name) for name in names)
    statement = f"COPY {preparer.format_table(target)} ({column_list}) FROM STDIN"
    driver_connection: Any = connection.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _executemany_rows(
    connection: Connection, target: Table, names: list[str], rows: list[tuple[Any, ...]]
) -> None:
    preparer = connection.dialect.identifier_preparer
    column_list = ", ".join(preparer.quote(name) for name in names)
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    placeholders = ", ".join([marker] * len(names))
    statement = f"INSERT INTO {preparer.format_table(target)} ({column_list}) VALUES ({placeholders})"
    connection.exec_driver_sql(statement, rows)
