"""Helpers the SQL tests import (a conftest is not importable by name: with several test
folders on the command line, `conftest` is whichever folder's was loaded last)."""

from __future__ import annotations

import duckdb


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    """The result of `sql` as dicts."""
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
