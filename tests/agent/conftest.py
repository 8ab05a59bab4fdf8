"""Agent fixtures: the `tiny` simulator's warehouse built once (real lake, real
`build_warehouse`), its ground truth, and `circleci-analytics mcp` over stdio on it.
Helpers and the token canary: mcp_session.py."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from mcp_session import TOKEN_CANARY, McpSession, mcp_session, stdio_server

from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.warehouse import Lake, build_warehouse

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TRUTH_LAKE = Path(__file__).resolve().parents[1] / "sql" / "truth_lake.py"


def _truth_lake():
    """The SQL tests' helper (tests/sql/truth_lake.py): the simulator's truth in the connectors'
    schemas, the test team rules (`TEAMS`) and their independent reading (`team_of`)."""
    spec = importlib.util.spec_from_file_location("agent_truth_lake", TRUTH_LAKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_sim() -> Simulator:
    return Simulator(SimConfig(seed=7, preset="tiny", now=NOW))


@pytest.fixture(scope="session")
def truth(tiny_sim: Simulator):
    return tiny_sim.truth()


@pytest.fixture(scope="session")
def warehouse(tiny_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/warehouse.duckdb with its lake in data/lake, as `demo` lays them out."""
    root = tmp_path_factory.mktemp("agent") / "data"
    lake = Lake(root / "lake")
    truth_lake = _truth_lake()
    truth_lake.land_truth(lake, tiny_sim)
    return build_warehouse(lake, root / "warehouse.duckdb", teams=truth_lake.TEAMS).db_path


@pytest.fixture(scope="session")
def team_of():
    """`team_of(project, job=None)`: the test team rules applied in Python (tests/sql/truth_lake.py)."""
    return _truth_lake().team_of


@pytest.fixture(scope="session")
def q(warehouse: Path):
    """`q(sql, *params)` -> rows as dicts, straight from the marts with DuckDB."""
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")

    def rows(sql: str, *params) -> list[dict]:
        cur = con.execute(sql, list(params) or None)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    yield rows
    con.close()


@pytest.fixture(scope="session")
def mcp(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpSession]:
    """`circleci-analytics mcp --warehouse <warehouse>` over stdio, with a CircleCI token in its environment."""
    cwd = tmp_path_factory.mktemp("mcp-cwd")  # no circleci-analytics.toml here
    with mcp_session(stdio_server("mcp", "--warehouse", str(warehouse), cwd=cwd,
                                  env={"CIRCLECI_TOKEN": TOKEN_CANARY})) as session:  # fmt: skip
        yield session
