"""The dbt sources file is generated from warehouse/tables.py and agrees with it."""

from __future__ import annotations

import yaml

from circleci_analytics.warehouse.dbt_sources import SOURCES_YML, duckdb_types, render_sources_yml
from circleci_analytics.warehouse.tables import TABLES


def test_committed_sources_yml_is_the_generated_one():
    assert SOURCES_YML.read_text() == render_sources_yml(), (
        "sql/models/staging/__sources.yml is stale: run `python -m circleci_analytics.warehouse.dbt_sources`"
    )


def test_every_lake_table_is_a_source_with_its_columns_types_and_freshness():
    (source,) = yaml.safe_load(SOURCES_YML.read_text())["sources"]
    assert source["schema"] == "lake" and source["freshness"]["error_after"]
    tables = {t["name"]: t for t in source["tables"]}
    assert sorted(tables) == sorted(TABLES)
    for name, spec in TABLES.items():
        declared = {c["name"]: c["data_type"] for c in tables[name]["columns"]}
        assert declared == duckdb_types(spec.schema), name
        assert "extracted_at" in declared  # the freshness field
    assert (
        tables["usage_job_runs"]["columns"][
            [c["name"] for c in tables["usage_job_runs"]["columns"]].index("total_credits")
        ]["data_type"]
        == "DECIMAL(18,6)"
    )
