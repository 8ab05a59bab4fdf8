"""Shared fixtures for mart tests: the `tiny` simulator's truth landed and built once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from sql_helpers import rows
from truth_lake import TEAMS, land_truth

from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.warehouse import Lake, build_warehouse

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="session")
def tiny_sim() -> Simulator:
    return Simulator(SimConfig(seed=7, preset="tiny", now=NOW))


@pytest.fixture(scope="session")
def tiny_truth(tiny_sim: Simulator):
    return tiny_sim.truth()


@pytest.fixture(scope="session")
def tiny_build(tiny_sim: Simulator, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny")
    lake = Lake(root / "lake")
    land_truth(lake, tiny_sim)
    result = build_warehouse(lake, root / "warehouse.duckdb", teams=TEAMS)
    return result


@pytest.fixture(scope="session")
def tiny_db(tiny_build) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tiny_build.db_path), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.fixture(scope="session")
def q(tiny_db):
    return lambda sql: rows(tiny_db, sql)


SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
