"""The alert history: lake table ``alert_history``, one row per rule x incident x destination.

It lives in the lake, not the warehouse, because the warehouse is rebuilt into a new file each
night; the warehouse shows it as `fct_alert_history`. Landing merges on the key, so a row is
rewritten when its delivery is retried.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from circleci_analytics.warehouse import TABLES, Lake

__all__ = ["TABLE", "HistoryKey", "load_history", "save_history"]

TABLE = "alert_history"
HistoryKey = tuple[str, str, str]  # rule, incident key, destination id


def load_history(lake: Lake) -> dict[HistoryKey, dict[str, Any]]:
    """Every row of the history, by (rule, incident_key, destination)."""
    return {(r["rule"], r["incident_key"], r["destination"]): r for r in lake.read(TABLE).to_pylist()}


def save_history(lake: Lake, rows: list[dict[str, Any]]) -> None:
    """Merge `rows` into the history (the caller holds, or `land` takes, the lake's lease)."""
    if rows:
        lake.land(TABLE, pa.Table.from_pylist(rows, schema=TABLES[TABLE].schema))
