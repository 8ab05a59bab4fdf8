"""Dashboard fixtures: a tiny warehouse built once per session, an empty one, the rendered pages."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from mart_fixture import build_test_warehouse

from circleci_analytics.dashboards import DashboardResult, render_dashboard


@pytest.fixture(scope="session")
def warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset's warehouse (real lake + real build), built once per session."""
    return build_test_warehouse(tmp_path_factory.mktemp("dash-warehouse"))


@pytest.fixture(scope="session")
def empty_warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose marts exist but hold no rows (nothing landed yet)."""
    return build_test_warehouse(tmp_path_factory.mktemp("dash-empty"), empty=True)


@pytest.fixture(scope="session")
def week_of_tests_warehouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny warehouse with test results of the last 7 days only (a first demo's)."""
    return build_test_warehouse(tmp_path_factory.mktemp("dash-week-of-tests"), test_days=7)


@pytest.fixture(scope="session")
def rendered(warehouse_path: Path, tmp_path_factory: pytest.TempPathFactory) -> DashboardResult:
    return render_dashboard(warehouse_path, tmp_path_factory.mktemp("dash-out"))


@pytest.fixture
def con(warehouse_path: Path):
    with duckdb.connect(str(warehouse_path), read_only=True) as c:
        c.execute("set TimeZone = 'UTC'")
        yield c
