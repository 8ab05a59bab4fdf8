"""Warehouse: land connector output in a Parquet lake and build the DuckDB marts from ``sql/``.

Public surface::

    lake = Lake("./data/lake")  # or "s3://bucket/prefix?endpoint_override=..."
    lake.land("usage_job_runs", table, window=(start, end))  # -> LandResult
    result = build_warehouse(
        lake, "./data/warehouse.duckdb", price_per_credit=Decimal("0.0006"), headroom=0.8
    )  # -> BuildResult

Lake tables (name -> schema, natural key, partitions) are registered in `TABLES`
(``warehouse.tables``); the marts are the dbt project in ``sql/`` (``sql/README.md``).
"""

from circleci_analytics.warehouse.build import (
    DEFAULT_DB_PATH,
    DEFAULT_HEADROOM,
    DEFAULT_PRICE_PER_CREDIT,
    DEFAULT_STORAGE_VERSION,
    BuildError,
    BuildResult,
    DataTestError,
    LakeFileError,
    ModelError,
    build_warehouse,
    docs_path,
)
from circleci_analytics.warehouse.lake import DEFAULT_LAKE_ROOT, Lake, LakeError, LandResult
from circleci_analytics.warehouse.tables import TABLES, TableSpec

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_HEADROOM",
    "DEFAULT_LAKE_ROOT",
    "DEFAULT_PRICE_PER_CREDIT",
    "DEFAULT_STORAGE_VERSION",
    "TABLES",
    "BuildError",
    "BuildResult",
    "DataTestError",
    "Lake",
    "LakeError",
    "LakeFileError",
    "LandResult",
    "ModelError",
    "TableSpec",
    "build_warehouse",
    "docs_path",
]
