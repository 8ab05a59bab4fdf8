"""`circleci-analytics demo` end to end in a subprocess (its own simulator and Prefect server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from circleci_analytics.cli import DEMO_APP_ORG
from circleci_analytics.simulator import OrgSpec, SimConfig, Simulator

pytestmark = pytest.mark.slow


def console_script() -> list[str]:
    """The installed `circleci-analytics` script (what `uv run circleci-analytics` runs)."""
    script = Path(sys.executable).parent / "circleci-analytics"
    if script.exists():
        return [str(script)]
    found = shutil.which("circleci-analytics")
    return [found] if found else [sys.executable, "-m", "circleci_analytics.cli"]


def test_demo_tiny_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run([*console_script(), "demo", "--scale", "tiny", "--out", str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=480)  # fmt: skip
    wall = time.perf_counter() - started
    print(f"\n`circleci-analytics demo --scale tiny`: {wall:.1f} s wall time")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nightly: success" in proc.stdout
    assert (out / "dashboard" / "index.html").is_file()
    assert any((out / "lake").rglob("*.parquet"))
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from fct_job_runs").fetchone()[0] > 500
        # two orgs, no project listed: a GitHub org and a GitHub-App org (opaque slugs), both discovered
        assert con.execute("select count(distinct org_id) from fct_job_runs").fetchone()[0] == 2
        assert (
            con.execute("select count(*) from dim_projects where project_slug like 'circleci/%/%'").fetchone()[0] >= 3
        )
        assert con.execute("select count(*) from fct_flaky_tests").fetchone()[0] > 0
        (as_of,) = con.execute("select as_of_date from warehouse_meta").fetchone()
        current = set(con.execute(
            "select project_slug, job_name, classname, test_name from fct_flaky_tests where currently_flaky"
        ).fetchall())  # fmt: skip
    finally:
        con.close()
    # Every currently flaky test of the simulated history is shown (the same days: now is in the day after as_of).
    truth = Simulator(
        SimConfig(
            seed=42,
            preset="tiny",
            now=datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=UTC) + timedelta(days=1),
            extra_orgs=(OrgSpec(DEMO_APP_ORG),),  # the demo's two orgs
        )
    )
    expected = {k for org in truth.orgs for k, v in truth.truth(org=org).flaky_tests().items() if v["currently_flaky"]}
    assert current == expected and expected
    assert "simulator_personal_token" not in proc.stdout + proc.stderr  # the simulator's token is not echoed
