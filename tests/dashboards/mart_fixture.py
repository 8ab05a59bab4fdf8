"""Warehouses for dashboard tests, built with the real `warehouse.build_warehouse`.

The lake is the simulator's ground truth landed by the SQL tests' helper
(`tests/sql/truth_lake.py`: usage rows, test results, workflow runs, projects, and the
Insights snapshots fetched with the real connectors from the in-process simulator).
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TRUTH_LAKE = Path(__file__).resolve().parents[1] / "sql" / "truth_lake.py"


def _truth_lake():
    spec = importlib.util.spec_from_file_location("dash_truth_lake", TRUTH_LAKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_test_warehouse(workdir: Path, *, preset: str = "tiny", empty: bool = False,
                         test_days: int | None = None) -> Path:  # fmt: skip
    """Land the simulator's truth for `preset` (seed 7) and build the warehouse; with
    `empty`, build from an empty lake (every mart exists, none has rows); with `test_days`,
    keep only the test results of the last `test_days` days before NOW (as a first nightly
    that probed one week of test metadata would have)."""
    from circleci_analytics.simulator import SimConfig, Simulator
    from circleci_analytics.warehouse import Lake, build_warehouse

    lake = Lake(workdir / "lake")
    truth_lake = _truth_lake()
    if not empty:
        truth_lake.land_truth(lake, Simulator(SimConfig(seed=7, preset=preset, now=NOW)))
    if test_days is not None:
        first = (NOW - timedelta(days=test_days)).date()
        for partition in (workdir / "lake" / "job_tests").glob("date=*"):
            if date.fromisoformat(partition.name.removeprefix("date=")) < first:
                shutil.rmtree(partition)
    db = workdir / "warehouse.duckdb"
    build_warehouse(lake, db, teams=truth_lake.TEAMS)
    return db
