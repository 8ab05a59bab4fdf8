"""Warehouse: land connector output in a Parquet lake and build the DuckDB marts from ``sql/``.

Public surface::

    lake = Lake("./data/lake")                     # or "s3://bucket/prefix?endpoint_override=..."
    lake.land("usage_job_runs", table, window=(start, end))   # -> LandResult
    result = build_warehouse(lake, "./data/warehouse.duckdb",
                             price_per_credit=Decimal("0.0006"), headroom=0.8)  # -> BuildResult

Lake tables (name -> schema, natural key, partitions) are registered in `TABLES`
(``warehouse.tables``); marts are documented in ``sql/marts/README.md`` and ``schema.yml``.
"""

from circleci_analytics.warehouse.build import (
    DEFAULT_DB_PATH,
    DEFAULT_HEADROOM,
    DEFAULT_PRICE_PER_CREDIT,
    BuildError,
    BuildResult,
    DataTestError,
    ModelError,
    build_warehouse,
    load_models,
)
from circleci_analytics.warehouse.lake import DEFAULT_LAKE_ROOT, Lake, LakeError, LandResult
from circleci_analytics.warehouse.tables import TABLES, TableSpec

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_HEADROOM",
    "DEFAULT_LAKE_ROOT",
    "DEFAULT_PRICE_PER_CREDIT",
    "TABLES",
    "BuildError",
    "BuildResult",
    "DataTestError",
    "Lake",
    "LakeError",
    "LandResult",
    "ModelError",
    "TableSpec",
    "build_warehouse",
    "load_models",
]
