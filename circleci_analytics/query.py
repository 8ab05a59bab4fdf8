"""Read-only SQL over the warehouse (`circleci-analytics sql`).

Two independent guards, so neither alone has to be perfect:

1. Each statement is classified by DuckDB's own parser (`duckdb.extract_statements`) and
   only reads run: SELECT (also WITH, VALUES, TABLE, FROM-first, DESCRIBE, SHOW,
   SUMMARIZE, PIVOT), EXPLAIN of one of those, and the PRAGMAs that only report.
2. The connection is opened read-only, with file access limited to the lake folders the
   warehouse's views read (`allowed_directories`), external access, extension loading and
   autoloading off, and the configuration locked, so a statement that got past (1) still
   cannot write a file, attach a database, load code or change those settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

__all__ = ["QueryRefused", "WarehouseUnreadable", "check_read_only", "open_read_only", "run_read_only"]

_READS = {duckdb.StatementType.SELECT}
# PIVOT is parsed as MULTI (a CREATE TYPE ENUM + SELECT pair) but only reads.
_PIVOT = re.compile(r"\s*(pivot|unpivot)\b", re.IGNORECASE)
_EXPLAIN = re.compile(r"\s*explain(\s+analyze)?\s", re.IGNORECASE)
_PRAGMA_NAME = re.compile(r"\s*pragma\s+(\w+)", re.IGNORECASE)
#: PRAGMAs that only report (the others change settings, write or import).
READ_PRAGMAS = frozenset({"collations", "database_list", "database_size", "functions", "metadata_info", "platform", "show",
                          "show_databases", "show_tables", "show_tables_expanded", "storage_info", "table_info",
                          "user_agent", "version"})  # fmt: skip


class QueryRefused(ValueError):
    """A statement that could write or reach outside the warehouse."""


class WarehouseUnreadable(ValueError):
    """The warehouse file is missing, a folder, or not a DuckDB database."""


def check_read_only(query: str) -> list[str]:
    """The statements of `query`, if every one only reads; else `QueryRefused` naming the first that does not."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as e:
        raise QueryRefused(f"cannot parse the query: {str(e).splitlines()[0]}") from None
    if not statements:
        raise QueryRefused("the query is empty")
    out = []
    for st in statements:
        text = st.query
        try:
            kind = st.type
        except ValueError:  # a statement type the Python enum does not know (e.g. UPDATE EXTENSIONS)
            raise QueryRefused(f"refused: `{' '.join(text.split()[:3])} ...` is not a read") from None
        if kind in _READS or (kind == duckdb.StatementType.MULTI and _PIVOT.match(text)):
            out.append(text)
            continue
        if kind == duckdb.StatementType.EXPLAIN:
            explained = _EXPLAIN.sub("", text, count=1)
            check_read_only(explained)
            out.append(text)
            continue
        if kind == duckdb.StatementType.PRAGMA:
            m = _PRAGMA_NAME.match(text)
            if m and m.group(1).lower() in READ_PRAGMAS:
                out.append(text)
                continue
        raise QueryRefused(f"refused: {kind.name.replace('_', ' ')} statements do not run here "
                           f"(`{' '.join(text.split()[:3])} ...`); `sql` is read-only: SELECT, WITH, VALUES, TABLE, "
                           "DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and reporting PRAGMAs")  # fmt: skip
    return out


def open_read_only(warehouse: str | Path, lake_dirs: Iterable[str | Path] = ()) -> duckdb.DuckDBPyConnection:
    """The warehouse, read-only; files readable only under `lake_dirs` (what its views read)."""
    path = Path(warehouse).expanduser()
    if not path.exists():
        raise WarehouseUnreadable(f"warehouse not found: {warehouse}")
    if path.is_dir():
        raise WarehouseUnreadable(f"warehouse {warehouse} is a folder, not a DuckDB file")
    try:
        con = duckdb.connect(str(path), read_only=True,
                             config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})  # fmt: skip
    except duckdb.Error as e:
        raise WarehouseUnreadable(f"cannot open the warehouse {warehouse}: {str(e).splitlines()[0]}") from None
    allowed = sorted({str(Path(d).expanduser().resolve()) + "/" for d in lake_dirs if Path(d).expanduser().is_dir()})
    con.execute("set allowed_directories = $dirs", {"dirs": allowed})
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def run_read_only(warehouse: str | Path, query: str, lake_dirs: Iterable[str | Path] = ()):
    """Run a read-only query; returns a polars DataFrame (None if the last statement returns no rows)."""
    statements = check_read_only(query)
    con = open_read_only(warehouse, lake_dirs)
    try:
        for text in statements[:-1]:
            con.execute(text).fetchall()
        rel = con.sql(statements[-1])
        return None if rel is None else rel.pl()
    finally:
        con.close()
