"""Land the connectors' real output (in-process simulator) and check the marts against truth."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from circleci_analytics.connectors import (
    CATALOGUE,
    CircleCIClient,
    JobRef,
    extract_job_tests,
    extract_projects,
    extract_stream,
)
from circleci_analytics.simulator import SimConfig, Simulator, create_app
from circleci_analytics.warehouse import Lake, build_warehouse

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
NO_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export")}


async def _extract_all(sim: Simulator, workdir) -> dict[str, list]:
    from circleci_analytics.connectors.usage_export import MemoryStateStore, export_usage

    app = create_app(sim)
    out: dict[str, list] = {k: [] for k in ("projects", "workflow_runs", "job_tests", "workflow_summary",
                                            "flaky_tests", "usage")}  # fmt: skip
    async with CircleCIClient(
        sim.token, "http://sim/api/v2", transport=httpx.ASGITransport(app=app), rate_limits=NO_LIMITS
    ) as client:
        slugs = [p.slug for p in sim.projects]
        out["projects"].append(await extract_projects(client, slugs))
        for p in sim.projects:
            for wf in p.workflows:
                context = {"project_slug": p.slug, "workflow_name": wf}
                out["workflow_runs"].append(await extract_stream(client, CATALOGUE["workflow_runs"], context,
                                                                 since=NOW - timedelta(days=90), now=NOW))  # fmt: skip
                out["workflow_summary"].append(await extract_stream(client, CATALOGUE["workflow_summary"], context))
            out["flaky_tests"].append(await extract_stream(client, CATALOGUE["flaky_tests"], {"project_slug": p.slug}))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as dl:

            async def fast_sleep(seconds: float) -> None:
                sim.backend.advance_clock(max(seconds, 1.0))
                await asyncio.sleep(0)

            result = await export_usage(
                client, sim.org.id, sim.history.start, NOW, workdir=workdir, state_store=MemoryStateStore(),
                poll_interval=0.01, download_client=dl, now=lambda: NOW, sleep=fast_sleep,
            )  # fmt: skip
            out["usage"].append(result)
        # Tests of every job run the usage export lists (what the flows probe).
        slug_of = dict(zip(*(out["projects"][0].table.column(c).to_pylist() for c in ("project_id", "project_slug"))))
        runs = pq.read_table(result.output).to_pylist()
        refs = [JobRef(slug_of[r["project_id"]], r["job_run_number"], r["job_name"], workflow_id=r["workflow_id"],
                       pipeline_id=r["pipeline_id"], job_started_at=r["job_run_started_at"], job_status=r["job_build_status"])
                for r in runs]  # fmt: skip
        out["job_tests"].append((await extract_job_tests(client, refs)).extract)
    return out


@pytest.fixture(scope="module")
def connector_build(tmp_path_factory):
    # time_scale: the simulator's rate limits refill 3600x faster (no 429 waits in a test).
    sim = Simulator(
        SimConfig(seed=7, preset="tiny", now=NOW, page_size=100, export_processing_seconds=0.0, time_scale=3600.0)
    )
    root = tmp_path_factory.mktemp("connectors")
    extracted = asyncio.run(_extract_all(sim, root / "usage"))
    lake = Lake(root / "lake")
    usage = extracted.pop("usage")[0]
    lake.land("usage_job_runs", pq.read_table(usage.output), window=(sim.history.start, NOW))
    for name, extracts in extracted.items():
        for e in extracts:
            lake.land(name, e)
    result = build_warehouse(lake, root / "warehouse.duckdb")
    return sim, result


def test_connector_output_builds_and_matches_truth(connector_build):
    sim, result = connector_build
    truth = sim.truth()
    assert result.failed_tests == []
    con = duckdb.connect(str(result.db_path), read_only=True)
    try:
        # Export window ends "now" (clamped): job runs started before then.
        jobs = [j for j in truth.job_runs().to_pylist() if j["started_at"] <= NOW - timedelta(seconds=60)]
        n, credits = con.execute("select count(*), sum(total_credits) from fct_job_runs").fetchone()
        assert n == len(jobs)
        assert credits == sum((j["total_credits"] for j in jobs), Decimal(0))
        got = {r[0] for r in con.execute("select first_failed_run_id from fct_recoveries").fetchall()}
        assert got == {r.first_failed_run_id for r in truth.recoveries()}
        mism = con.execute("select count(*) from fct_mttr_reconciliation where not matches").fetchone()[0]
        assert mism == 0
        flaky = {tuple(r) for r in con.execute(
            "select project_slug, job_name, classname, test_name from fct_flaky_tests").fetchall()}  # fmt: skip
        assert flaky == set(truth.flaky_tests())
    finally:
        con.close()
