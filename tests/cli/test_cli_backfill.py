"""The README's backfill example, exactly as written, in a subprocess against the simulator:
the start is clamped to what the usage export keeps (one line says so), every window lands,
Insights' workflow runs and test metadata are backfilled too, and a terminal shows a progress
bar."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest

from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = "circleci-analytics backfill --start 2025-11-01 --end 2026-11-26"
#: The simulated world's now: 2026-11-26 midday, so the example's end is today and its start
#: (2025-11-01) lies beyond the 365 days the usage export keeps.
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
CLAMPED = "2025-11-27"  # the midnight after NOW - 365 days
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def console_script() -> str:
    script = Path(sys.executable).parent / "circleci-analytics"
    return str(script) if script.exists() else shutil.which("circleci-analytics") or "circleci-analytics"


def test_readme_backfill_example_runs_on_the_simulator(tmp_path: Path) -> None:
    assert EXAMPLE in README.read_text(encoding="utf-8")  # the test runs what the README says
    sim = Simulator(SimConfig(seed=7, preset="tiny", now=NOW, time_scale=3600.0, export_processing_seconds=0.2,
                              page_size=100))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    with running_server(sim) as url:
        env.update(
            PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", CIRCLECI_TOKEN=sim.token,
            CIRCLECI_ANALYTICS_ORG_ID=sim.org.id, CIRCLECI_ANALYTICS_ORG_SLUG=sim.org.slug,
            CIRCLECI_ANALYTICS_API_BASE_URL=url, CIRCLECI_ANALYTICS_NOW=NOW.isoformat(),
            CIRCLECI_ANALYTICS_EXPORT_POLL_SECONDS="0.2", CIRCLECI_ANALYTICS_TESTS_LOOKBACK_DAYS="7",
            CIRCLECI_ANALYTICS_RATE_LIMITS=json.dumps(dict.fromkeys(("core", "insights", "tests", "usage_export"), 0)),
            CIRCLECI_ANALYTICS_RENDER_DASHBOARD="false",
            FORCE_COLOR="1", COLUMNS="160",  # a terminal, as far as rich is concerned
        )  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run([console_script(), *EXAMPLE.split()[1:]], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        wall = time.perf_counter() - started
    print(f"\n`{EXAMPLE}` on the tiny simulator: {wall:.1f} s wall time")
    out, err = ANSI.sub("", proc.stdout), ANSI.sub("", proc.stderr)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    clamp = [line for line in (out + err).splitlines() if "clamped" in line]
    assert len(clamp) == 1 and f"2025-11-01 clamped to {CLAMPED}" in clamp[0] and "365 days" in clamp[0]
    assert "Traceback" not in out + err

    posts = sorted(start for _, start, _, _ in sim.backend.export_posts)
    assert posts[0] == datetime.fromisoformat(CLAMPED).replace(tzinfo=UTC) and len(posts) == 12  # 365 days / 31
    assert "usage export windows" in err and "12/12" in err  # the progress bar

    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        truth = sim.truth()
        jobs = truth.job_runs()
        assert con.execute("select count(*) from fct_job_runs").fetchone()[0] == jobs.num_rows > 500
        runs = truth.workflow_runs()
        runs = runs.filter(pc.greater_equal(runs.column("created_at"), NOW - timedelta(days=90)))
        got = {r for (r,) in con.execute("select workflow_id from fct_workflow_runs").fetchall()}
        assert got == set(runs.column("id").to_pylist())  # Insights' workflow runs, all of its 90 days
        tests = truth.test_runs()
        tests = tests.filter(pc.greater_equal(tests.column("job_started_at"), NOW - timedelta(days=7)))
        assert con.execute("select count(*) from fct_test_runs").fetchone()[0] == tests.num_rows > 0
    finally:
        con.close()
