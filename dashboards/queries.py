"""The dashboard's SQL: one file per chart in `dashboards/queries/`, loaded and run read-only.

Each file starts with a comment block: the first line is the chart's title, the rest
says what it shows (grain, units, which mart it reads). BI tools reuse these files
as-is; the renderer only loads and runs them, it never writes SQL of its own.

Results are fetched as Arrow into polars (no value-by-value conversion in Python) and
made JSON-ready column by column: decimals become floats, dates ISO days, timestamps
UTC ISO seconds, non-finite floats null.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

__all__ = ["QUERY_DIR", "QueryFile", "QueryResult", "dumps", "frame_json", "jsonable", "load_queries", "run_query"]

QUERY_DIR = Path(__file__).parent / "queries"
#: Text columns with at most this share of distinct values are dictionary-encoded in JSON.
_DICT_SHARE = 0.5
#: Columns shorter than this are encoded in Python.
_SMALL = 5000


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
    """The JSON-ready rows of one query (a polars frame), or the reason it could not run."""

    name: str
    frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    error: str | None = None

    @property
    def row_count(self) -> int:
        return self.frame.height

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Column name -> Python values (for callers that want lists)."""
        return {name: self.frame.get_column(name).to_list() for name in self.frame.columns}

    def as_json(self) -> dict[str, Any]:
        """JSON payload; repetitive text columns are dictionary-encoded (`{dict, codes}`)."""
        return frame_json(self.frame, error=self.error)


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


def jsonable(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every column in a JSON type: decimals as floats, dates as ``YYYY-MM-DD``,
    timestamps as UTC ``YYYY-MM-DDTHH:MM:SS``, durations as seconds, NaN and infinities null."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_decimal() or dtype in (pl.Int128, pl.UInt128):
            col = col.cast(pl.Float64)
        elif dtype == pl.Date:
            col = col.dt.strftime("%Y-%m-%d")
        elif isinstance(dtype, pl.Datetime):
            if dtype.time_zone:
                col = col.dt.convert_time_zone("UTC")
            col = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(dtype, pl.Duration):
            col = col.dt.total_microseconds() / 1e6
        if frame.schema[name].is_float() or dtype.is_decimal() or isinstance(dtype, pl.Duration):
            col = pl.when(col.is_finite()).then(col)
        exprs.append(col.alias(name))
    return frame.select(exprs) if exprs else frame


def encode_column(series: pl.Series) -> Any:
    """One column as JSON-ready values, or `{dict, codes}` for a repetitive text column."""
    if series.dtype != pl.String or len(series) < 16:
        return series.to_list()
    if len(series) < _SMALL:  # a few Python steps cost less than a few polars calls
        values = series.to_list()
        index: dict[str, int] = {}
        codes = [None if v is None else index.setdefault(v, len(index)) for v in values]
        return {"dict": list(index), "codes": codes} if len(index) <= _DICT_SHARE * len(values) else values
    distinct = series.drop_nulls().unique(maintain_order=True)
    if len(distinct) > _DICT_SHARE * len(series):
        return series.to_list()
    return {"dict": distinct.to_list(), "codes": series.cast(pl.Enum(distinct.to_list())).to_physical().to_list()}


def frame_json(frame: pl.DataFrame, *, error: str | None = None) -> dict[str, Any]:
    """The dashboard's dataset payload: ``{"columns": {name: values}, "n": rows, "error": ...}``."""
    return {"columns": {name: encode_column(frame.get_column(name)) for name in frame.columns}, "n": frame.height,
            "error": error}  # fmt: skip


def dumps(payload: Any) -> str:
    """Compact JSON that is safe inside a ``<script>`` element."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False).replace("</", "<\\/")


def run_query(con: duckdb.DuckDBPyConnection, query: QueryFile) -> QueryResult:
    """Run one query; a missing mart or column becomes `error` (the page explains it)."""
    try:
        with warnings.catch_warnings():  # execute() (not sql()) also works after a caller's unfinished result
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
            table = con.execute(query.sql).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return QueryResult(query.name, error=f"{type(exc).__name__}: {first}")
    frame = pl.DataFrame(table)
    return QueryResult(query.name, jsonable(frame))
