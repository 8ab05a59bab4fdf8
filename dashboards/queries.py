"""The dashboard's SQL: one file per chart in `dashboards/queries/`, loaded and run read-only.

Each file starts with a comment block: the first line is the chart's title, the rest
says what it shows (grain, units, which mart it reads). BI tools reuse these files
as-is; the renderer only loads and runs them, it never writes SQL of its own.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["QUERY_DIR", "QueryFile", "QueryResult", "load_queries", "run_query"]

QUERY_DIR = Path(__file__).parent / "queries"


@dataclass(frozen=True, slots=True)
class QueryFile:
    """One `queries/<name>.sql` file and its header comment."""

    name: str
    path: Path
    title: str
    description: str
    sql: str


@dataclass(slots=True)
class QueryResult:
    """Column-oriented rows of one query (JSON-ready), or the reason it could not run."""

    name: str
    columns: dict[str, list[Any]] = field(default_factory=dict)
    row_count: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON payload; repetitive text columns are dictionary-encoded (`{dict, codes}`)."""
        return {"columns": {k: _encode(v) for k, v in self.columns.items()}, "n": self.row_count, "error": self.error}


def _encode(values: list[Any]) -> Any:
    if len(values) < 16 or not all(v is None or isinstance(v, str) for v in values):
        return values
    index: dict[str, int] = {}
    codes = [None if v is None else index.setdefault(v, len(index)) for v in values]
    if len(index) * 2 > len(values):
        return values
    return {"dict": list(index), "codes": codes}


def _parse(path: Path) -> QueryFile:
    text = path.read_text(encoding="utf-8")
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    if not header or not header[0]:
        raise ValueError(f"{path}: a query file must start with a '-- <title>' comment")
    return QueryFile(path.stem, path, header[0], " ".join(h for h in header[1:] if h), text)


def load_queries(query_dir: Path = QUERY_DIR) -> dict[str, QueryFile]:
    """Every `*.sql` file in `query_dir`, keyed by file stem."""
    return {p.stem: _parse(p) for p in sorted(query_dir.glob("*.sql"))}


def _jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def run_query(con: duckdb.DuckDBPyConnection, query: QueryFile) -> QueryResult:
    """Run one query; a missing mart or column becomes `error` (the page explains it)."""
    try:
        cur = con.execute(query.sql)
        names = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return QueryResult(query.name, error=f"{type(exc).__name__}: {first}")
    columns = {n: [_jsonable(r[i]) for r in rows] for i, n in enumerate(names)}
    return QueryResult(query.name, columns, len(rows))
