"""Land the simulator's ground truth into a lake, in the connectors' schemas.

Usage rows, test results, workflow runs and projects are converted from `GroundTruth`
tables (no HTTP), so mart tests do not depend on the connectors' extract code; the two
Insights snapshots the reconciliation marts need (workflow summaries, flaky tests) are
fetched with the real connectors from the in-process simulator.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from circleci_analytics.connectors import CATALOGUE, CircleCIClient, extract_stream
from circleci_analytics.connectors.schemas import JOB_TESTS, PROJECTS, WORKFLOW_RUNS
from circleci_analytics.connectors.usage_export.schema import USAGE_JOB_RUNS_SCHEMA
from circleci_analytics.simulator import Simulator, create_app
from circleci_analytics.warehouse import Lake

EXTRACTED_AT = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
NO_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export")}


def usage_rows(sim: Simulator, truth_jobs: pa.Table) -> pa.Table:
    """Truth job runs -> USAGE_JOB_RUNS_SCHEMA rows (what the usage export would hold)."""
    n = truth_jobs.num_rows
    h = sim.history
    org = sim.org

    def col(name: str) -> pa.ChunkedArray:
        return truth_jobs.column(name)

    def const(value, type_) -> pa.Array:
        return pa.array([value] * n, type=type_)

    ts = pa.timestamp("us", tz="UTC")
    wf_success = pc.equal(col("workflow_status"), "success")
    data = {
        "organization_id": const(org.id, pa.string()),
        "organization_name": const(org.name, pa.string()),
        "project_id": col("project_id"),
        "project_name": col("project_name"),
        "vcs_name": const("github", pa.string()),
        "vcs_branch": col("vcs_branch"),
        "pipeline_id": col("pipeline_id"),
        "pipeline_number": col("pipeline_number"),
        "workflow_id": col("workflow_id"),
        "workflow_name": col("workflow_name"),
        "pipeline_created_at": col("pipeline_created_at"),
        "workflow_first_job_queued_at": col("workflow_first_job_queued_at"),
        "workflow_stopped_at": col("workflow_stopped_at"),
        "is_workflow_successful": wf_success,
        "job_name": col("job_name"),
        "job_id": col("job_id"),
        "job_run_number": col("job_number"),
        "job_run_date": pc.cast(pc.cast(col("job_run_date"), pa.timestamp("us")), pa.timestamp("us", tz="UTC")),
        "job_run_queued_at": col("queued_at"),
        "job_run_started_at": col("started_at"),
        "job_run_stopped_at": col("stopped_at"),
        "job_build_status": col("job_status"),
        "resource_class": col("resource_class"),
        "operating_system": col("operating_system"),
        "executor": col("executor"),
        "parallelism": col("parallelism"),
        "job_run_seconds": pc.cast(col("run_seconds"), pa.float64()),
        "median_cpu_utilization_pct": col("median_cpu_pct"),
        "max_cpu_utilization_pct": col("max_cpu_pct"),
        "median_ram_utilization_pct": col("median_ram_pct"),
        "max_ram_utilization_pct": col("max_ram_pct"),
        "export_window_start": const(h.start, ts),
        "export_window_end": const(h.end, ts),
        "extracted_at": const(EXTRACTED_AT, ts),
    }
    for name in ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges", "total"):
        data[f"{name}_credits"] = col(f"{name}_credits")
    return pa.table(data).cast(pa.schema([USAGE_JOB_RUNS_SCHEMA.field(c) for c in data]))


def test_rows(truth_tests: pa.Table) -> pa.Table:
    n = truth_tests.num_rows
    t = truth_tests
    data = {
        "project_slug": t.column("project_slug"),
        "job_number": t.column("job_number"),
        "job_name": t.column("job_name"),
        "pipeline_id": t.column("pipeline_id"),
        "workflow_id": t.column("workflow_id"),
        "job_started_at": t.column("job_started_at"),
        "classname": t.column("classname"),
        "name": t.column("name"),
        "file": t.column("file"),
        "source": pa.array(["junit"] * n),
        "result": t.column("result"),
        "run_time_seconds": t.column("run_time"),
        "message": t.column("message"),
        "extracted_at": pa.array([EXTRACTED_AT] * n, type=pa.timestamp("us", tz="UTC")),
    }
    return pa.table(data).cast(JOB_TESTS)


def workflow_run_rows(truth_runs: pa.Table) -> pa.Table:
    n = truth_runs.num_rows
    t = truth_runs
    data = {
        "project_slug": t.column("project_slug"),
        "workflow_name": t.column("workflow_name"),
        "workflow_id": t.column("id"),
        "branch": t.column("branch"),
        "status": t.column("status"),
        "is_approval": t.column("is_approval"),
        "created_at": t.column("created_at"),
        "stopped_at": t.column("stopped_at"),
        "duration_seconds": t.column("duration_seconds"),
        "credits_used": t.column("credits_used"),
        "scope": pa.array(["all-branches"] * n),
        "extracted_at": pa.array([EXTRACTED_AT] * n, type=pa.timestamp("us", tz="UTC")),
    }
    return pa.table(data).cast(WORKFLOW_RUNS)


def project_rows(sim: Simulator) -> pa.Table:
    rows = [
        {
            "project_id": p.id, "project_slug": p.slug, "project_name": p.name, "org_id": sim.org.id,
            "org_name": sim.org.name, "org_slug": sim.org.slug, "vcs_provider": "GitHub", "vcs_url": p.vcs_url,
            "default_branch": p.default_branch, "extracted_at": EXTRACTED_AT,
        }
        for p in sim.projects
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=PROJECTS)


def sim_client(sim: Simulator) -> CircleCIClient:
    transport = httpx.ASGITransport(app=create_app(sim))
    return CircleCIClient(sim.token, "http://sim/api/v2", transport=transport, rate_limits=NO_LIMITS)


#: The job time series are pulled for these days before the simulator's now (its whole tiny history).
TIMESERIES_DAYS = 60


async def _insights(sim: Simulator) -> dict[str, list]:
    out: dict[str, list] = {t: [] for t in ("workflow_summary", "flaky_tests", "workflow_job_metrics", "job_timeseries",
                                            "test_metrics")}  # fmt: skip
    now = sim.history.now
    async with sim_client(sim) as client:
        for p in sim.projects:
            out["flaky_tests"].append(await extract_stream(client, CATALOGUE["flaky_tests"], {"project_slug": p.slug}))
            for wf in p.workflows:
                context = {"project_slug": p.slug, "workflow_name": wf}
                for table in ("workflow_summary", "workflow_job_metrics", "test_metrics"):  # every scope
                    out[table].append(await extract_stream(client, CATALOGUE[table], context))
                out["job_timeseries"].append(await extract_stream(
                    client, CATALOGUE["job_timeseries"], context, since=now - timedelta(days=TIMESERIES_DAYS), now=now))  # fmt: skip
    return out


def land_truth(
    lake: Lake, sim: Simulator, *, insights: bool = True, insights_from: datetime | None = None
) -> dict[str, int]:
    """Land truth-derived tables (and, with `insights`, connector snapshots); return row counts.
    With `insights_from`, Insights workflow runs cover only the runs created from then on
    (the usage export still covers every day)."""
    truth = sim.truth()
    usage = usage_rows(sim, truth.job_runs())
    h = sim.history
    lake.land("usage_job_runs", usage, window=(h.start, h.end + timedelta(days=1)))
    lake.land("job_tests", test_rows(truth.test_runs()))
    runs = truth.workflow_runs()
    if insights_from is not None:
        runs = runs.filter(
            pc.greater_equal(runs.column("created_at"), pa.scalar(insights_from, runs.schema.field("created_at").type))
        )
    lake.land("workflow_runs", workflow_run_rows(runs))
    lake.land("projects", project_rows(sim))
    counts = {"usage_job_runs": usage.num_rows}
    if insights:
        for table, extracts in asyncio.run(_insights(sim)).items():
            lake.land(table, pa.concat_tables([e.table for e in extracts]))
            counts[table] = sum(e.num_rows for e in extracts)
    return counts


def dec(value) -> Decimal:
    return Decimal(value) if not isinstance(value, Decimal) else value


#: Team ownership rules for test builds (first match wins): deploy jobs everywhere, the web
#: app's other jobs, and the test jobs of acme-robotics' other projects (so api-gateway's
#: build, lint and notify jobs, its workflows and the GitHub-App org stay unassigned).
TEAMS = [
    {"name": "release", "projects": [], "jobs": ["deploy*"]},
    {"name": "web", "projects": ["gh/acme-robotics/web-*"], "jobs": []},
    {"name": "quality", "projects": ["gh/acme-robotics/*"], "jobs": ["*test*", "e2e"]},
]


def team_of(project: str, job: str | None = None) -> str:
    """The team `TEAMS` give a project's job (or the project as a whole, job None), computed
    here with `fnmatch` as the independent check of the SQL rules: first match wins, an empty
    list matches anything, a rule naming jobs never matches a whole project."""
    for rule in TEAMS:
        if rule["projects"] and not any(fnmatchcase(project, g) for g in rule["projects"]):
            continue
        if rule["jobs"] and (job is None or not any(fnmatchcase(job, g) for g in rule["jobs"])):
            continue
        return rule["name"]
    return "unassigned"
