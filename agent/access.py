"""Read-only access to the warehouse file, opened afresh for every tool call.

Why per call: the nightly build writes a new file and renames it over the old one. A
connection opened before the rename keeps reading the old file (its inode) for as long as
it lives, so a long-lived connection would answer with yesterday's data; a connection
opened per call sees the new file at the next call.

Why one call at a time (a process-wide lock): DuckDB's Python module shares one database
instance per path among the connections open in a process. While one is open, a second
`open_read_only` of the same path gets that instance (still the old file after a rename)
and cannot apply its settings (`open_read_only` locks the configuration), so overlapping
calls would fail or read stale data. The marts are small and every answer is bounded, so
serialising calls costs little.

The read-only guard itself is `circleci_analytics.query` (the `sql` command's): statements
are checked with `check_read_only` and the connection is `open_read_only`'s.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
from mcp.server.mcpserver.exceptions import ToolError

from circleci_analytics.query import WarehouseUnreadable, open_read_only

__all__ = ["DEFAULT_QUERY_TIMEOUT_SECONDS", "Reader", "Warehouse", "jsonable", "lake_dirs_for"]

#: A tool call's queries are interrupted after this long (the lock would otherwise let one
#: runaway `run_sql` query block every other call).
DEFAULT_QUERY_TIMEOUT_SECONDS = 30.0

_ONE_AT_A_TIME = threading.Lock()


def lake_dirs_for(warehouse: str | Path, lake_root: str) -> list[Path]:
    """Folders the warehouse's lake views may read: the configured lake (when local) and
    the `lake` folder beside the warehouse (where `demo` puts it)."""
    dirs = [Path(warehouse).expanduser().parent / "lake"]
    if "://" not in lake_root or lake_root.startswith("file://"):
        dirs.insert(0, Path(lake_root.removeprefix("file://")).expanduser())
    return dirs


def jsonable(value: Any) -> Any:
    """A DuckDB value as JSON: decimals as floats, dates and times ISO 8601 (UTC), intervals
    in seconds, NaN/inf as null; anything else unknown as its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, UUID):
        return str(value)
    return str(value)


class Reader:
    """One open read-only connection: queries with named `$parameters`, rows as JSON-ready dicts."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def raw(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows as dicts of DuckDB's Python values (dates as `date`, decimals as `Decimal`)."""
        cur = self.con.execute(sql, params or None)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (`jsonable`)."""
        return [{k: jsonable(v) for k, v in row.items()} for row in self.raw(sql, **params)]

    def one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, **params)
        return found[0] if found else None

    def column(self, sql: str, **params: Any) -> list[Any]:
        return [next(iter(r.values())) for r in self.rows(sql, **params)]


class Warehouse:
    """The warehouse file the tools read; `read()` opens it for one call."""

    def __init__(self, path: str | Path, lake_dirs: Iterable[str | Path] = (),
                 timeout_seconds: float = DEFAULT_QUERY_TIMEOUT_SECONDS):  # fmt: skip
        self.path = Path(path).expanduser()
        self.lake_dirs = list(lake_dirs)
        self.timeout_seconds = timeout_seconds

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A fresh read-only connection for one tool call; warehouse and DuckDB errors
        become tool errors (the model reads them), a query past the timeout is interrupted."""
        with _ONE_AT_A_TIME:
            try:
                con = open_read_only(self.path, self.lake_dirs)
            except WarehouseUnreadable as e:
                raise ToolError(str(e)) from None
            timer = threading.Timer(self.timeout_seconds, con.interrupt)
            timer.start()
            try:
                yield Reader(con)
            except duckdb.InterruptException:
                raise ToolError(f"the query ran longer than {self.timeout_seconds:g} s and was stopped") from None
            except duckdb.Error as e:
                raise ToolError(f"query failed: {str(e).strip().splitlines()[0]}") from None
            finally:
                timer.cancel()
                con.close()
