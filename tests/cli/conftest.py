"""Fixtures for the CLI tests (helpers: cli_helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import SQL_ROWS

# The CLI sets these itself; set them before anything imports prefect.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No token, no CIRCLECI_ANALYTICS_* settings, and a working directory without a TOML file."""
    for key in list(os.environ):
        if key.startswith("CIRCLECI_ANALYTICS_") or key in ("CIRCLECI_TOKEN", "_CIRCLECI_ANALYTICS_TOML"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file with one small table (what `sql` reads is any warehouse file)."""
    import duckdb

    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table fct_demo (project_slug varchar, credits decimal(18, 2), day date)")
    con.executemany("insert into fct_demo values (?, ?, ?)", SQL_ROWS)
    con.close()
    return path
