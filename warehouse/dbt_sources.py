"""The dbt sources file (``sql/models/staging/__sources.yml``), generated from `TABLES`.

The lake's tables, their columns and types are declared once (the stream catalogue,
``connectors.catalogue``, from which ``warehouse.tables`` derives the lake's specs); dbt
needs them too (to document the sources and to create an empty, typed relation for a table
with no files yet, see ``sql/macros/stage_lake_sources.sql``). This module renders the
YAML; ``tests/warehouse/test_dbt_sources.py`` checks the committed file equals it.

    python -m circleci_analytics.warehouse.dbt_sources   # rewrite the file
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.warehouse.tables import TABLES

__all__ = ["SOURCES_YML", "duckdb_types", "render_sources_yml"]

SOURCES_YML = Path(__file__).resolve().parent.parent / "sql" / "models" / "staging" / "__sources.yml"
#: Freshness of every lake table, on its extraction time: the nightly lands every day, except the
#: slow snapshots (read every `snapshot_refresh_days`, a setting): they have none.
FRESHNESS = {"warn_after": {"count": 2, "period": "day"}, "error_after": {"count": 7, "period": "day"}}
HEADER = (
    "# Generated from the stream catalogue (connectors/catalogue.py) by\n"
    "# `python -m circleci_analytics.warehouse.dbt_sources`; do not edit by hand.\n"
)


def duckdb_types(schema: pa.Schema) -> dict[str, str]:
    """Column -> DuckDB type name of an Arrow schema (as DuckDB itself maps it)."""
    rel = duckdb.connect().from_arrow(schema.empty_table())
    return {name: str(t) for name, t in zip(rel.columns, rel.dtypes)}


def render_sources_yml() -> str:
    tables = []
    for spec in TABLES.values():
        types = duckdb_types(spec.schema)
        table: dict = {"name": spec.name}
        if spec.description:
            table["description"] = spec.description
        table["meta"] = {"natural_key": list(spec.natural_key), "write_mode": spec.mode}
        if spec.name in CATALOGUE and CATALOGUE[spec.name].refresh == "slow snapshot":
            table["freshness"] = None
        table["columns"] = [{"name": c, "data_type": t} for c, t in types.items()]
        tables.append(table)
    doc = {
        "version": 2,
        "sources": [{
            "name": "lake",
            "description": (
                "The Parquet lake (warehouse.Lake): one relation per lake table in schema `lake`, staged by "
                "the on-run-start hook `stage_lake_sources` (a view over the table's files, or an empty typed "
                "table when none has landed) or, for an object-store lake, by warehouse.build_warehouse."
            ),
            "schema": "lake",
            "loaded_at_field": "extracted_at",
            "freshness": FRESHNESS,
            "tables": tables,
        }],
    }  # fmt: skip
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=120)


if __name__ == "__main__":
    SOURCES_YML.write_text(render_sources_yml())
    print(f"wrote {SOURCES_YML}")
