"""Warehouse benchmark: land a `large`-scale lake, build the warehouse (full, then one night
incremental), time the dashboard's queries, render the dashboard and draw it in Chromium.

    flock /tmp/heavy.lock uv run python benchmarks/warehouse.py            # 13 months x 1M job rows
    git worktree add /tmp/base <commit>   # then, the same figures for that commit, same run:
    flock /tmp/heavy.lock uv run python benchmarks/warehouse.py --baseline /tmp/base
    uv run python benchmarks/warehouse.py --months 2 --rows-per-month 200000   # quick

The simulator's `large` preset (~200 projects, ~1M job rows a month, 13 months) is too slow
to generate through the simulator for a benchmark, so usage-export rows are synthesised
with polars/numpy at that scale, in the connectors' schema (``USAGE_JOB_RUNS_SCHEMA``);
workflow runs are derived from them. Test results are not synthesised (the test marts are
empty here); the flaky-test marts are covered by the `tiny`/`demo` truth tests.

Printed figures, each as a ratio to the same figure of `--baseline` (a source tree of an
earlier version: built from the same lake, in the same run) and, for times, to a reference
measured in the same run (a bare DuckDB group-by over the same rows as plain Parquet):

- land: rows/s of ``Lake.land`` (one window per month), and its ratio to a bare
  ``pyarrow.parquet.write_table`` of the same Arrow table in the same run (same machine,
  same data; the lake also de-duplicates, partitions by day, sorts and renames atomically);
- full rebuild of ``build_warehouse`` in a fresh process (no dbt artifacts: it parses the
  project too): seconds and peak RSS (targets <= 60 s, <= 4 GiB), slowest models and tests;
- the nightly incremental build after one more day lands, as a share of the full rebuild
  (target <= 10 %);
- p95 latency of each dashboard query (``dashboards/queries/*.sql``, fetched as the renderer
  fetches them) over the marts (target <= 200 ms each);
- the dashboard: render time and peak RSS in a fresh process (target <= 10 s), each page's
  weight when opened (HTML and its own data file; target <= 5 MB) and the seconds until its
  charts are drawn in headless Chromium with the JS heap then (target <= 3 s);
- with ``--demo-vs TREE`` instead: ``circleci-analytics demo`` (what ``make demo`` runs) of
  this tree and of TREE alternately, and the ratio of their medians (target <= 1.3x).

The current tree builds with `--teams` ownership rules (`bench_teams`: a job-level team and
teams by project-name prefix), so every mart carries several teams and each dashboard page
writes a scope file per org, team and pair; a `--baseline` tree builds without (older trees
have no rules). DuckDB's memory limit is `--memory-limit` (default 3GB). Run it at 13-month scale under
``flock /tmp/heavy.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circleci_analytics import RESOURCE_CLASSES_CSV  # noqa: E402
from circleci_analytics.connectors.schemas import JOB_TESTS, WORKFLOW_RUNS  # noqa: E402
from circleci_analytics.connectors.usage_export.schema import USAGE_JOB_RUNS_SCHEMA  # noqa: E402
from circleci_analytics.warehouse import Lake, docs_path  # noqa: E402

ORG_ID = "6f1c2d3e-4b5a-4c6d-8e7f-000000000001"
CREDIT_TYPES = ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges")
#: Workflow templates: name -> its jobs in order (a job name keeps its resource class and
#: executor within a project, as a .circleci/config.yml pins them).
WORKFLOW_JOBS = {
    "build-and-test": ("checkout", "build", "unit-tests", "integration-tests"),
    "lint": ("lint", "typecheck", "format-check", "license-scan"),
    "deploy": ("build-image", "push-image", "deploy-staging", "smoke-tests"),
    "nightly": ("build", "e2e-tests", "perf-tests", "notify"),
    "release": ("build", "package", "publish", "notify"),
    "docs": ("build-docs", "link-check", "publish-docs", "notify"),
}
WORKFLOW_NAMES = tuple(WORKFLOW_JOBS)
#: Rows of the resource-class table a job is pinned to, weighted: mostly docker small..xlarge,
#: some arm and machine, a little macOS.
CLASS_MIX = (0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16)
JOBS_PER_WORKFLOW = 4
TEST_JOBS = ("unit-tests", "integration-tests", "e2e-tests", "smoke-tests")
#: The default branch of every benchmark project; one project also uses a hostile branch name.
DEFAULT_BRANCH = "main"
HOSTILE_BRANCH = "fix/../'quoted\" ünïcode=branch"


def _month_starts(end: datetime, months: int) -> list[datetime]:
    starts = []
    y, m = end.year, end.month
    for _ in range(months):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        starts.append(datetime(y, m, 1, tzinfo=UTC))
    return sorted(starts)


def bench_teams(count: int) -> list[dict]:
    """`count` ownership rules over the synthetic projects: deploy and publish jobs to one team,
    then teams by the first digit of the project number (`project-<n>`); what is left of
    project-0 stays unassigned."""
    rules = [{"name": "release", "projects": [], "jobs": ["deploy-*", "publish*"]}] if count else []
    rules += [
        {"name": f"team-{d}", "projects": [f"gh/bench-org/project-{d}*"], "jobs": []} for d in range(1, min(count, 10))
    ]
    return rules


def synth_month(
    start: datetime,
    end: datetime,
    rows: int,
    seed: int,
    n_projects: int = 200,
    *,
    feature_branches: int = 30,
    test_job_fraction: float = 0.1,
    tests_per_job: int = 10,
) -> tuple[pa.Table, pa.Table]:
    """`rows` usage-export rows with job starts spread over [start, end), and the test
    results of a fraction of them (polars only, vectorised).

    Shape, as in a real organisation: projects have skewed activity (a few busy ones);
    each project runs a handful (2-5) of its workflow templates; a pipeline runs two
    workflows on one branch (3% of them re-run one: same name, same pipeline); the default
    branch carries ~50% of pipelines, the rest spread over `feature_branches` branches per
    project per month; a job name keeps one resource class (and executor) per project.
    Test results: jobs of a testing kind (``TEST_JOBS``) in `test_job_fraction` of the
    projects report `tests_per_job` tests; a failed job fails one of them, so a re-run that
    passes makes it flake on that commit (same pipeline).
    """
    classes = pl.read_csv(RESOURCE_CLASSES_CSV).with_row_index("cls").with_columns(pl.col("cls").cast(pl.Int64))
    span = int((end - start).total_seconds())
    month_tag = f"{start:%Y%m}"
    i = pl.int_range(0, rows, dtype=pl.Int64)

    def h(expr: pl.Expr, salt: int, mod: int) -> pl.Expr:
        return (expr.hash(seed * 1000 + salt) % mod).cast(pl.Int64)

    def unif(salt: int) -> pl.Expr:
        return h(i, salt, 1_000_000).cast(pl.Float64) / 1_000_000 + 0.5e-6

    normal = (-2 * unif(1).log()).sqrt() * (2 * 3.141592653589793 * unif(2)).cos()  # Box-Muller
    wf = i // JOBS_PER_WORKFLOW  # workflows of 4 jobs, in time order
    pipe = wf // 2  # two workflows per pipeline
    # Skewed project activity: project = floor(n * u^2) over a per-pipeline uniform.
    pipe_u = (pipe.hash(seed * 1000 + 20) % 1_000_000).cast(pl.Float64) / 1_000_000
    base = pl.select(
        i.alias("n"),
        (i * span // rows).alias("offset"),
        (wf + seed * 10_000_000).alias("wf"),
        (pipe + seed * 10_000_000).alias("pipe"),
        (i % JOBS_PER_WORKFLOW).alias("job_pos"),
        (wf % 2).alias("wf_pos"),
        (i + seed * 10_000_000).alias("seq"),
        (pipe_u * pipe_u * n_projects).floor().cast(pl.Int64).clip(0, n_projects - 1).alias("project"),
        (h(pipe, 21, 100) < 50).alias("on_default"),
        # A feature branch lives ~5 days: each 5-day slice of the month has its own
        # `feature_branches // 6` branches per project (~`feature_branches` a month).
        ((i * span // rows) // (5 * 86_400) * max(1, feature_branches // 6) + h(pipe, 22, max(1, feature_branches // 6))).alias("feature"),
        (h(pipe, 23, 100) < 3).alias("rerun_pipe"),
        (normal * 0.8 + 5.0).exp().clip(3, 36_000).cast(pl.Int64).alias("run_seconds"),
        (unif(13) * unif(14) * 120).cast(pl.Int64).alias("queue_seconds"),
        pl.when(h(i, 3, 100) < 94).then(pl.lit("success")).when(h(i, 4, 10) < 9).then(pl.lit("failed"))
        .otherwise(pl.lit("canceled")).alias("status"),
        (h(i, 6, 950) / 10 + 5).alias("cpu_raw"),
        (h(i, 7, 950) / 10 + 5).alias("ram_raw"),
        pl.when(h(i, 8, 10) == 0).then(20000).otherwise(0).alias("dlc_cents"),
        h(i, 9, 300).alias("storage_cents"),
        h(i, 10, 120).alias("network_cents"),
        pl.when(h(i, 11, 20) == 0).then(h(i, 12, 450) + 50).otherwise(0).alias("ipranges_cents"),
    )  # fmt: skip
    # Each project runs 2-5 of the workflow templates; a pipeline runs two of them (or, when
    # re-run, the same one twice).
    wf_count = 2 + pl.col("project") % 4
    first = pl.col("project") * 7 + pl.col("pipe") % wf_count
    second = (
        pl.when(pl.col("rerun_pipe")).then(first).otherwise(pl.col("project") * 7 + (pl.col("pipe") + 1) % wf_count)
    )
    wf_idx = pl.when(pl.col("wf_pos") == 0).then(first).otherwise(second) % len(WORKFLOW_NAMES)
    job_table = pl.DataFrame(
        {
            "wf_idx": [w for w in range(len(WORKFLOW_NAMES)) for _ in range(JOBS_PER_WORKFLOW)],
            "job_pos": [p for _ in WORKFLOW_NAMES for p in range(JOBS_PER_WORKFLOW)],
            "workflow_name": [w for w in WORKFLOW_NAMES for _ in range(JOBS_PER_WORKFLOW)],
            "job_name": [j for w in WORKFLOW_NAMES for j in WORKFLOW_JOBS[w]],
        },
        schema={"wf_idx": pl.Int64, "job_pos": pl.Int64, "workflow_name": pl.String, "job_name": pl.String},
    )
    df = (
        base.with_columns(wf_idx.alias("wf_idx"))
        .join(job_table, on=["wf_idx", "job_pos"], how="left")
        .with_columns(
            # One resource class per project x job name (mostly docker; a few arm/machine/macos).
            pl.lit(CLASS_MIX).list.get(pl.struct("project", "job_name").hash(77) % len(CLASS_MIX)).alias("cls"),
            pl.when(pl.col("on_default")).then(pl.lit(DEFAULT_BRANCH))
            .when((pl.col("project") == 0) & (pl.col("feature") == 0)).then(pl.lit(HOSTILE_BRANCH))
            .otherwise(pl.format("feature/p{}-{}-{}", pl.col("project"), pl.lit(month_tag), pl.col("feature")))
            .alias("vcs_branch"),
        )
        .join(classes, on="cls", how="left")
    )  # fmt: skip
    df = df.with_columns(
        (pl.col("run_seconds") / 60)
        .ceil()
        .cast(pl.Int64)
        .mul(pl.col("credits_per_minute"))
        .mul(100)
        .alias("compute_cents"),
        pl.lit(0).alias("user_cents"),
        pl.lit(0).alias("lease_cents"),
        pl.lit(0).alias("lease_overage_cents"),
        pl.when(pl.col("run_seconds") >= 15).then(pl.col("cpu_raw")).alias("cpu"),
        pl.when(pl.col("run_seconds") >= 15).then(pl.col("ram_raw")).alias("ram"),
        (pl.lit(int(start.timestamp() * 1_000_000)) + pl.col("offset") * 1_000_000).alias("started_us"),
    ).with_columns(pl.sum_horizontal([f"{t}_cents" for t in CREDIT_TYPES]).alias("total_cents"))
    # The export's workflow columns, the same on each of a workflow's rows.
    queued_us = pl.col("started_us") - pl.col("queue_seconds") * 1_000_000
    df = df.with_columns(
        queued_us.min().over("wf").alias("wf_queued_us"),
        (pl.col("started_us") + pl.col("run_seconds") * 1_000_000).max().over("wf").alias("wf_stopped_us"),
        (pl.col("status") == "success").all().over("wf").alias("wf_successful"),
        (queued_us.min().over("pipe") - 5_000_000).alias("pipe_created_us"),
    )
    ts = pl.Datetime("us", "UTC")
    out = df.select(
        pl.lit(ORG_ID).alias("organization_id"),
        pl.lit("bench-org").alias("organization_name"),
        pl.format("proj-{}", pl.col("project")).alias("project_id"),
        pl.format("project-{}", pl.col("project")).alias("project_name"),
        pl.lit("github").alias("vcs_name"),
        pl.format("https://github.com/bench-org/project-{}", pl.col("project")).alias("vcs_url"),
        pl.col("vcs_branch"),
        pl.format("pipe-{}", pl.col("pipe")).alias("pipeline_id"),
        pl.col("pipe").alias("pipeline_number"),
        pl.format("wf-{}", pl.col("wf")).alias("workflow_id"),
        pl.col("workflow_name"),
        pl.col("pipe_created_us").cast(ts).alias("pipeline_created_at"),
        pl.col("wf_queued_us").cast(ts).alias("workflow_first_job_queued_at"),
        pl.col("wf_stopped_us").cast(ts).alias("workflow_stopped_at"),
        pl.col("wf_successful").alias("is_workflow_successful"),
        pl.col("job_name"),
        pl.format("job-{}", pl.col("seq")).alias("job_id"),
        pl.col("seq").alias("job_run_number"),
        pl.col("started_us").cast(ts).dt.truncate("1d").alias("job_run_date"),
        (pl.col("started_us") - pl.col("queue_seconds") * 1_000_000).cast(ts).alias("job_run_queued_at"),
        pl.col("started_us").cast(ts).alias("job_run_started_at"),
        (pl.col("started_us") + pl.col("run_seconds") * 1_000_000).cast(ts).alias("job_run_stopped_at"),
        pl.col("status").alias("job_build_status"),
        pl.col("resource_class"),
        pl.when(pl.col("executor") == "macos")
        .then(pl.lit("macos"))
        .otherwise(pl.lit("linux"))
        .alias("operating_system"),
        pl.col("executor"),
        pl.lit(1, dtype=pl.Int64).alias("parallelism"),
        pl.col("run_seconds").cast(pl.Float64).alias("job_run_seconds"),
        (pl.col("cpu") * 0.7).round(1).alias("median_cpu_utilization_pct"),
        pl.col("cpu").alias("max_cpu_utilization_pct"),
        (pl.col("ram") * 0.7).round(1).alias("median_ram_utilization_pct"),
        pl.col("ram").alias("max_ram_utilization_pct"),
        *[pl.col(f"{t}_cents").alias(f"{t}_credits") for t in (*CREDIT_TYPES, "total")],
        pl.lit(int(start.timestamp() * 1e6)).cast(ts).alias("export_window_start"),
        pl.lit(int(end.timestamp() * 1e6) - 1).cast(ts).alias("export_window_end"),
        pl.lit(int(end.timestamp() * 1e6)).cast(ts).alias("extracted_at"),
    )
    table = out.to_arrow()
    arrays = []
    for f in USAGE_JOB_RUNS_SCHEMA:
        if f.name.endswith("_credits"):
            # hundredths of a credit -> decimal(18, 6), exactly
            col = pc.multiply(
                table.column(f.name).cast(pa.decimal128(20, 0)), pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))
            )
            arrays.append(col.cast(f.type))
        elif f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(rows, f.type))
    usage = pa.Table.from_arrays(arrays, schema=USAGE_JOB_RUNS_SCHEMA)
    tests = _synth_tests(out, seed, n_projects, test_job_fraction, tests_per_job, end)
    return usage, tests


def _synth_tests(
    usage: pl.DataFrame, seed: int, n_projects: int, fraction: float, per_job: int, extracted: datetime
) -> pa.Table:
    """Test results of the testing jobs of `fraction` of the projects (see `synth_month`)."""
    test_projects = [f"project-{p}" for p in range(n_projects) if (p * 37 + 11) % 100 < fraction * 100]
    jobs = usage.filter(
        pl.col("job_name").is_in(list(TEST_JOBS))
        & pl.col("project_name").is_in(test_projects)
        & (pl.col("job_build_status") != "canceled")
    ).select(
        pl.format("gh/bench-org/{}", pl.col("project_name")).alias("project_slug"),
        pl.col("job_run_number").alias("job_number"),
        "job_name",
        "pipeline_id",
        "workflow_id",
        pl.col("job_run_started_at").alias("job_started_at"),
        (pl.col("job_build_status") == "failed").alias("job_failed"),
        (pl.col("job_run_number").hash(seed * 1000 + 40) % per_job).cast(pl.Int64).alias("failing_test"),
    )
    t = pl.DataFrame({"t": list(range(per_job))}, schema={"t": pl.Int64})
    tests = jobs.join(t, how="cross").select(
        "project_slug",
        "job_number",
        "job_name",
        "pipeline_id",
        "workflow_id",
        "job_started_at",
        pl.format("com.bench.{}.Suite{}", pl.col("job_name").str.replace_all("-", "_"), pl.col("t") % 3).alias("classname"),
        pl.format("test_case_{}", pl.col("t")).alias("name"),
        pl.format("src/test/{}/suite_{}.py", pl.col("job_name"), pl.col("t") % 3).alias("file"),
        pl.lit("junit").alias("source"),
        pl.when(pl.col("job_failed") & (pl.col("t") == pl.col("failing_test"))).then(pl.lit("failure"))
        .when(pl.col("t") == per_job - 1).then(pl.lit("skipped"))
        .otherwise(pl.lit("success")).alias("result"),
        ((pl.col("job_number") * 31 + pl.col("t")).hash(seed) % 5000 / 1000).alias("run_time_seconds"),
        pl.when(pl.col("job_failed") & (pl.col("t") == pl.col("failing_test"))).then(pl.lit("AssertionError"))
        .alias("message"),
        pl.lit(extracted).alias("extracted_at"),
    )  # fmt: skip
    return tests.to_arrow().cast(JOB_TESTS)


def workflow_runs_from(usage: pa.Table) -> pa.Table:
    df = pl.from_arrow(usage.select(["project_name", "workflow_name", "workflow_id", "vcs_branch",
                                     "job_build_status", "job_run_queued_at", "job_run_stopped_at", "compute_credits"]))  # fmt: skip
    assert isinstance(df, pl.DataFrame)
    wf = df.group_by("workflow_id").agg(
        pl.col("project_name").first().alias("project_slug"),
        pl.col("workflow_name").first(),
        pl.col("vcs_branch").first().alias("branch"),
        pl.when((pl.col("job_build_status") == "failed").any()).then(pl.lit("failed"))
        .when((pl.col("job_build_status") == "canceled").any()).then(pl.lit("canceled"))
        .otherwise(pl.lit("success")).alias("status"),
        pl.col("job_run_queued_at").min().alias("created_at"),
        pl.col("job_run_stopped_at").max().alias("stopped_at"),
        pl.col("compute_credits").cast(pl.Float64).sum().floor().cast(pl.Int64).alias("credits_used"),
    ).with_columns(
        pl.format("gh/bench-org/{}", pl.col("project_slug")).alias("project_slug"),
        ((pl.col("stopped_at") - pl.col("created_at")).dt.total_seconds()).alias("duration_seconds"),
        pl.lit(False).alias("is_approval"),
        pl.lit("all-branches").alias("scope"),
        pl.col("stopped_at").alias("extracted_at"),
    )  # fmt: skip
    return wf.to_arrow().select(WORKFLOW_RUNS.names).cast(WORKFLOW_RUNS)


#: Insights keeps 90 days of workflow runs: the benchmark lands those, the export the rest.
INSIGHTS_DAYS = 90


def _default_branch_jobs(usage: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(usage.select(["project_name", "workflow_name", "job_name", "vcs_branch", "job_build_status",
                                     "job_run_started_at", "job_run_seconds", "compute_credits"]))  # fmt: skip
    assert isinstance(df, pl.DataFrame)
    return df.filter(pl.col("vcs_branch") == DEFAULT_BRANCH).select(
        pl.format("gh/bench-org/{}", pl.col("project_name")).alias("project_slug"),
        "workflow_name", "job_name", pl.col("job_build_status").alias("status"),
        pl.col("job_run_started_at").alias("started_at"), pl.col("job_run_seconds").alias("seconds"),
        pl.col("compute_credits").cast(pl.Float64).floor().cast(pl.Int64).alias("credits"),
    )  # fmt: skip


def _job_stats(df: pl.DataFrame) -> list[pl.Expr]:
    ok = pl.col("seconds").filter(pl.col("status") == "success")
    return [
        pl.len().cast(pl.Int64).alias("total_runs"),
        (pl.col("status") == "success").sum().cast(pl.Int64).alias("successful_runs"),
        (pl.col("status") == "failed").sum().cast(pl.Int64).alias("failed_runs"),
        pl.col("credits").sum().alias("total_credits_used"),
        ok.min().cast(pl.Int64).alias("duration_min_seconds"),
        ok.median().cast(pl.Int64).alias("duration_median_seconds"),
        ok.quantile(0.95, "linear").round().cast(pl.Int64).alias("duration_p95_seconds"),
        ok.max().cast(pl.Int64).alias("duration_max_seconds"),
    ]


def job_timeseries_from(usage: pa.Table, extracted_at: datetime) -> pa.Table:
    """Insights' daily job time series (default branch) of these job runs."""
    from circleci_analytics.warehouse.tables import table_spec

    jobs = _default_branch_jobs(usage)
    out = jobs.group_by("project_slug", "workflow_name", "job_name", pl.col("started_at").dt.truncate("1d").alias("bucket_start")).agg(
        *_job_stats(jobs), pl.col("started_at").min().alias("min_started_at"),
        (pl.col("started_at") + pl.duration(seconds=pl.col("seconds"))).max().alias("max_ended_at"),
        pl.col("credits").median().cast(pl.Int64).alias("median_credits_used"),
        pl.col("seconds").filter(pl.col("status") == "success").sum().cast(pl.Int64).alias("duration_total_seconds"),
    ).with_columns(
        pl.lit(None, pl.String).alias("branch"), pl.lit("daily").alias("granularity"),
        pl.col("total_runs").cast(pl.Float64).alias("throughput_runs_per_day"), pl.lit(extracted_at).alias("extracted_at"),
    )  # fmt: skip
    schema = table_spec("job_timeseries").schema
    return out.to_arrow().select(schema.names).cast(schema)


def job_metrics_from(usage: pa.Table, end: datetime) -> pa.Table:
    """Insights' last-90-days job metrics (default branch) of these job runs, one snapshot."""
    from circleci_analytics.warehouse.tables import table_spec

    start = end - timedelta(days=INSIGHTS_DAYS)
    jobs = _default_branch_jobs(usage).filter(pl.col("started_at") >= start)
    out = jobs.group_by("project_slug", "workflow_name", "job_name").agg(*_job_stats(jobs)).with_columns(
        pl.lit("default-branch").alias("scope"), pl.lit("last-90-days").alias("reporting_window"),
        pl.lit(start).alias("window_start"), pl.lit(end).alias("window_end"),
        (pl.col("successful_runs") / (pl.col("successful_runs") + pl.col("failed_runs"))).alias("success_rate"),
        (pl.col("total_runs") / INSIGHTS_DAYS).alias("throughput_runs_per_day"),
        pl.lit(None, pl.Int64).alias("duration_mean_seconds"), pl.lit(None, pl.Float64).alias("duration_stddev_seconds"),
        pl.lit(end).alias("extracted_at"), pl.lit(end.date()).alias("snapshot_date"),
    )  # fmt: skip
    schema = table_spec("workflow_job_metrics").schema
    return out.to_arrow().select(schema.names).cast(schema)


def test_metrics_from(usage: pa.Table, end: datetime) -> pa.Table:
    """Insights' test metrics: 10 most failed and 10 slowest tests per project x workflow."""
    from circleci_analytics.warehouse.tables import table_spec

    pairs = _default_branch_jobs(usage).select("project_slug", "workflow_name", "job_name").unique()
    k = pl.int_range(0, 20, dtype=pl.Int64)
    out = pairs.group_by("project_slug", "workflow_name").agg(pl.col("job_name").first()).join(
        pl.select(k.alias("k")), how="cross"
    ).with_columns(
        pl.when(pl.col("k") < 10).then(pl.lit("most_failed")).otherwise(pl.lit("slowest")).alias("category"),
        pl.format("test_case_{}", pl.col("k")).alias("test_name"),
        pl.format("tests.{}.Suite", pl.col("job_name")).alias("classname"),
        pl.format("tests/{}.py", pl.col("job_name")).alias("file"), pl.lit("junit").alias("source"),
        (10 - pl.col("k") % 10).alias("failed_runs"), pl.lit(10, pl.Int64).alias("total_runs"),
        (pl.col("k") * 1.5 + 0.25).alias("p95_duration_seconds"), (pl.col("k") % 7 == 0).alias("flaky"),
        pl.lit("default-branch").alias("scope"), pl.lit(end).alias("extracted_at"), pl.lit(end.date()).alias("snapshot_date"),
    )  # fmt: skip
    schema = table_spec("test_metrics").schema
    return out.to_arrow().select(schema.names).cast(schema)


def projects_from(usage: pa.Table, end: datetime) -> pa.Table:
    from circleci_analytics.connectors.schemas import PROJECTS

    df = pl.from_arrow(usage.select(["project_id", "project_name"])).unique()
    assert isinstance(df, pl.DataFrame)
    out = df.with_columns(
        pl.format("gh/bench-org/{}", pl.col("project_name")).alias("project_slug"), pl.lit(ORG_ID).alias("org_id"),
        pl.lit("bench-org").alias("org_name"), pl.lit("gh/bench-org").alias("org_slug"),
        pl.lit("GitHub").alias("vcs_provider"),
        pl.format("https://github.com/bench-org/{}", pl.col("project_name")).alias("vcs_url"),
        pl.lit(DEFAULT_BRANCH).alias("default_branch"), pl.lit(end).alias("extracted_at"),
    )  # fmt: skip
    return out.to_arrow().select(PROJECTS.names).cast(PROJECTS)


ROOT = Path(__file__).resolve().parents[1]
#: Python of this environment, run with a source tree first on the path (this one or --baseline's).
_IN_TREE = "import sys; sys.path.insert(0, sys.argv[1]); "
#: A build in a fresh process (so its peak RSS is its own), timed by /usr/bin/time -v.
_BUILD = (
    _IN_TREE
    + """
import json, time
from circleci_analytics.warehouse import build_warehouse
t0 = time.perf_counter()
r = build_warehouse(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4]))
seconds = time.perf_counter() - t0
models = sorted(((m.name, m.seconds) for m in r.models), key=lambda kv: -kv[1])[:10]
tests = sorted(((t.name, t.seconds) for t in r.tests), key=lambda kv: -kv[1])[:5]
print("RESULT " + json.dumps({"seconds": seconds, "summary": r.summary(), "timings": r.timings,
                              "slowest_models": models, "slowest_tests": tests}))
"""
)
#: A dashboard render in a fresh process.
_RENDER = (
    _IN_TREE
    + """
import json, time
from circleci_analytics.dashboards import render_dashboard
t0 = time.perf_counter()
r = render_dashboard(sys.argv[2], sys.argv[3])
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "page_bytes": r.page_bytes,
                              "data_files": getattr(r, "data_files", 0), "data_bytes": getattr(r, "data_bytes", 0)}))
"""
)
#: Headless Chromium as tests/dashboards/test_browser.py launches it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-precise-memory-info"]  # fmt: skip


def _fresh_process(code: str, tree: Path, *args: str) -> dict:
    """Run `code` with `tree` first on the path in a new process; its RESULT and peak RSS (GiB)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code, str(tree), *args],
                          capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"failed ({tree}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    out["peak_rss_gib"] = rss_kib / 2**20
    return out


def _timed_build(tree: Path, lake_dir: Path, db: Path, kwargs: dict) -> dict:
    """`build_warehouse` of source tree `tree` in a fresh process; its figures and peak RSS."""
    out = _fresh_process(_BUILD, tree, str(lake_dir), str(db), json.dumps(kwargs))
    for key in ("timings", "slowest_models", "slowest_tests"):
        out.setdefault(key, {} if key == "timings" else [])
    return out


def _timed_render(tree: Path, db: Path, out_dir: Path) -> dict:
    """`render_dashboard` of source tree `tree` in a fresh process; seconds, page weights, peak RSS."""
    shutil.rmtree(out_dir, ignore_errors=True)
    return _fresh_process(_RENDER, tree, str(db), str(out_dir))


def _time_to_charts(out_dir: Path, slugs: list[str], timeout_s: float = 300) -> dict[str, dict[str, float]]:
    """Per page: seconds from navigation until its charts are drawn (``body[data-drawn]``) in
    headless Chromium, and the JS heap then (MiB); each page in a new browser context."""
    from playwright.sync_api import sync_playwright

    figures: dict[str, dict[str, float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for slug in slugs:
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
                t0 = time.perf_counter()
                page.goto((out_dir / f"{slug}.html").resolve().as_uri(), timeout=timeout_s * 1000)
                page.wait_for_selector("body[data-drawn]", timeout=timeout_s * 1000)
                seconds = time.perf_counter() - t0
                heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
                figures[slug] = {"seconds": seconds, "heap_mib": heap / 2**20, "errors": len(errors)}
                ctx.close()
        finally:
            browser.close()
    return figures


#: Each dashboard query of a source tree, run and fetched as that tree's renderer does.
_QUERIES = (
    _IN_TREE
    + """
import json, time
import duckdb
from circleci_analytics.dashboards.queries import load_queries, run_query
out = {"p95": {}, "rows": {}, "errors": {}}
with duckdb.connect(sys.argv[2], read_only=True) as con:
    con.execute("set TimeZone = 'UTC'")
    for name, query in sorted(load_queries().items()):
        times = []
        for _ in range(int(sys.argv[3])):
            t0 = time.perf_counter()
            result = run_query(con, query)
            times.append(time.perf_counter() - t0)
        if result.error:
            out["errors"][name] = result.error
            continue
        times.sort()
        out["p95"][name] = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        out["rows"][name] = result.row_count
print("RESULT " + json.dumps(out))
"""
)


def _query_latencies(tree: Path, db: Path, repeats: int) -> tuple[dict[str, float], dict[str, int], dict[str, str]]:
    """p95 seconds of each of `tree`'s dashboard queries over `db`, rows returned, errors."""
    out = _fresh_process(_QUERIES, tree, str(db), str(repeats))
    return out["p95"], out["rows"], out["errors"]


def p95(values: list[float]) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _reference_seconds(files: list[Path], repeats: int = 3) -> float:
    """Machine-speed reference for this run: DuckDB group-by over the bare Parquet files
    (best of `repeats`), so build and query times can be given as ratios to it."""
    import duckdb

    file_list = ", ".join("'" + str(f) + "'" for f in files)
    best = float("inf")
    with duckdb.connect() as con:
        for _ in range(repeats):
            t0 = time.perf_counter()
            con.execute(
                f"select project_id, job_name, cast(job_run_started_at as date) as d, count(*), sum(total_credits), "
                f"quantile_cont(job_run_seconds, 0.95) from read_parquet([{file_list}]) group by all"
            ).fetchall()
            best = min(best, time.perf_counter() - t0)
    return best


def _shape(lake: Lake) -> dict[str, int]:
    """Distinct counts that make the data realistic (or not), straight from the lake."""
    import duckdb

    def files(name: str) -> str:
        return "[" + ", ".join("'" + f + "'" for f in lake.files(name)) + "]"

    with duckdb.connect() as con:
        usage = con.execute(
            f"""select count(*), count(distinct project_id), count(distinct workflow_name),
                count(distinct job_name), count(distinct vcs_branch),
                count(distinct (project_id, workflow_name)), count(distinct (project_id, job_name)),
                count(distinct (project_id, job_name, resource_class, executor)),
                avg((vcs_branch = 'main')::int), count(distinct pipeline_id), count(distinct workflow_id),
                count(distinct (cast(job_run_started_at as date), project_id, workflow_name, job_name,
                                resource_class, executor, vcs_branch))
            from read_parquet({files("usage_job_runs")})"""
        ).fetchone()
        tests = (
            con.execute(f"select count(*) from read_parquet({files('job_tests')})").fetchone()
            if lake.files("job_tests")
            else (0,)
        )
    keys = ("usage_rows", "projects", "workflow_names", "job_names", "branches", "project_workflows",
            "project_jobs", "project_job_classes", "default_branch_share_pct", "pipelines", "workflows",
            "spend_daily_grain_rows")  # fmt: skip
    out = dict(zip(keys, usage))  # type: ignore[arg-type]
    out["default_branch_share_pct"] = round(100 * float(out["default_branch_share_pct"]))
    out["test_results"] = tests[0]  # type: ignore[index]
    return out


def _ratio(new: float, old: float | None) -> str:
    return f" ({new / old:.2f}x baseline {old:.1f})" if old else ""


def _print_build(label: str, run: dict, reference_s: float, baseline: dict | None, target: str) -> None:
    print(f"{label}: {run['seconds']:.1f}s = {run['seconds'] / reference_s:.1f}x reference{_ratio(run['seconds'], baseline and baseline['seconds'])}; "
          f"peak RSS {run['peak_rss_gib']:.2f} GiB{_ratio(run['peak_rss_gib'], baseline and baseline['peak_rss_gib'])}; "
          f"{target}: {run['summary']}")  # fmt: skip
    print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in run["timings"].items()))
    print("  slowest models: " + ", ".join(f"{k} {v:.1f}s" for k, v in run["slowest_models"]))
    if run["slowest_tests"]:
        print("  slowest tests: " + ", ".join(f"{k} {v:.1f}s" for k, v in run["slowest_tests"]))


def _land_night(lake: Lake, day: datetime, args: argparse.Namespace) -> int:
    """Land one more day (the nightly's usage export, workflow runs and test results)."""
    usage, tests = synth_month(day, day + timedelta(days=1), args.rows_per_month // 30, seed=99 + args.nights_landed,
                               n_projects=args.projects, feature_branches=args.feature_branches,
                               test_job_fraction=args.test_job_fraction)  # fmt: skip
    lake.land("usage_job_runs", usage, window=(day, day + timedelta(days=1) - timedelta(microseconds=1)))
    lake.land("workflow_runs", workflow_runs_from(usage))
    lake.land("job_timeseries", job_timeseries_from(usage, day + timedelta(days=1)))
    if tests.num_rows:
        lake.land("job_tests", tests)
    return usage.num_rows


def _dashboard(label: str, tree: Path, db: Path, out_dir: Path, baseline: dict | None) -> dict:
    """Render in a fresh process, then time each page in headless Chromium; print and return."""
    render = _timed_render(tree, db, out_dir)
    pages = _time_to_charts(out_dir, list(render["page_bytes"]))
    old = baseline or {}
    print(f"{label} dashboard: render {render['seconds']:.1f}s{_ratio(render['seconds'], old.get('render', {}).get('seconds'))} "
          f"(target <= 10 s), peak RSS {render['peak_rss_gib']:.2f} GiB"
          f"{_ratio(render['peak_rss_gib'], old.get('render', {}).get('peak_rss_gib'))}; "
          f"{render['data_files']:,} data files, {render['data_bytes'] / 1e6:.1f} MB in all (most loaded on demand)")  # fmt: skip
    print(
        f"  {'page':12s} {'weight MB':>10s} {'charts drawn s':>15s} {'JS heap MiB':>12s}   (targets: <= 5 MB, <= 3 s)"
    )
    for slug, weight in render["page_bytes"].items():
        page, before = pages[slug], old.get("pages", {}).get(slug)
        was = (f"   baseline {old['render']['page_bytes'][slug] / 1e6:.1f} MB, {before['seconds']:.1f} s, "
               f"{before['heap_mib']:.0f} MiB" if before else "")  # fmt: skip
        print(f"  {slug:12s} {weight / 1e6:10.2f} {page['seconds']:15.2f} {page['heap_mib']:12.1f}{was}"
              f"{'  page errors: ' + str(page['errors']) if page['errors'] else ''}")  # fmt: skip
    return {"render": render, "pages": pages}


#: `circleci-analytics demo` of a source tree, into a folder of its own.
_DEMO = (
    _IN_TREE
    + """
import time
from circleci_analytics.cli import main
sys.argv = ["circleci-analytics", "demo", "--out", sys.argv[2]]
t0 = time.perf_counter()
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
print("RESULT {\\"seconds\\": %f}" % (time.perf_counter() - t0))
"""
)


def demo_ratio(baseline: Path, runs: int, out: Path) -> dict:
    """`make demo`'s command from this tree and from `baseline`, alternately, `runs` times each
    (same session, fresh processes and folders); prints the median of each and their ratio."""
    seconds: dict[str, list[float]] = {"current": [], "baseline": []}
    for i in range(runs):
        for label, tree in (("current", ROOT), ("baseline", baseline)):
            folder = out / f"demo-{label}-{i}"
            shutil.rmtree(folder, ignore_errors=True)
            result = _fresh_process(_DEMO, tree, str(folder))
            seconds[label].append(result["seconds"])
            shutil.rmtree(folder, ignore_errors=True)
            print(
                f"demo {label} run {i + 1}: {result['seconds']:.1f}s, peak RSS {result['peak_rss_gib']:.2f} GiB",
                flush=True,
            )
    current, base = statistics.median(seconds["current"]), statistics.median(seconds["baseline"])
    print(f"demo: median {current:.1f}s vs baseline ({baseline}) {base:.1f}s = {current / base:.2f}x (target <= 1.3x)")
    return {"seconds": seconds, "ratio": current / base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--months", type=int, default=13)
    ap.add_argument("--rows-per-month", type=int, default=1_000_000)
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--feature-branches", type=int, default=36, help="feature branches per project per month")
    ap.add_argument("--test-job-fraction", type=float, default=0.1,
                    help="share of projects whose testing jobs report test results (0 = no tests)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/warehouse"))
    ap.add_argument("--query-repeats", type=int, default=20)
    ap.add_argument("--reuse-lake", action="store_true",
                    help="keep the lake of a previous run in --out (skip synthesis and landing)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--land-only", action="store_true", help="stop after landing (and the dataset shape)")
    ap.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit of the builds (spills beyond it)")
    ap.add_argument("--baseline", type=Path,
                    help="a source tree of an earlier version (e.g. `git worktree add /tmp/base <commit>`): its full "
                         "and nightly builds and its dashboard, same lake, same run")  # fmt: skip
    ap.add_argument("--no-dashboard", action="store_true", help="skip rendering and timing the dashboard")
    ap.add_argument("--nights-landed", type=int, default=0,
                    help="nights already landed in a reused lake (the next night lands the day after)")  # fmt: skip
    ap.add_argument("--demo-vs", type=Path, metavar="TREE",
                    help="only compare `circleci-analytics demo` (make demo) of this tree with TREE's, same session")  # fmt: skip
    ap.add_argument("--demo-runs", type=int, default=3, help="runs of each demo for --demo-vs")
    ap.add_argument("--teams", type=int, default=10, help="team ownership rules of the current tree's builds (0: none)")
    args = ap.parse_args()
    if args.demo_vs:
        args.out.mkdir(parents=True, exist_ok=True)
        figures = demo_ratio(args.demo_vs, args.demo_runs, args.out)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return

    lake_dir, bare_dir = args.out / "lake", args.out / "bare"
    figures: dict[str, object] = {}
    if not args.reuse_lake:
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.mkdir(parents=True)
        bare_dir.mkdir()
    lake = Lake(lake_dir)
    end = datetime(2026, 6, 1, tzinfo=UTC)
    if not args.reuse_lake:
        land_s = bare_s = gen_s = 0.0
        total_rows = 0
        wf_tables, test_tables, recent = [], [], []
        insights_tables: dict[str, list[pa.Table]] = {"job_timeseries": []}
        for i, start in enumerate(_month_starts(end, args.months)):
            month_end = (start + timedelta(days=32)).replace(day=1)
            t0 = time.perf_counter()
            table, tests = synth_month(start, month_end, args.rows_per_month, seed=i + 1, n_projects=args.projects,
                                       feature_branches=args.feature_branches,
                                       test_job_fraction=args.test_job_fraction)  # fmt: skip
            gen_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            pq.write_table(table, bare_dir / f"month-{i:02d}.parquet", compression="zstd")
            bare_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            lake.land("usage_job_runs", table, window=(start, month_end - timedelta(microseconds=1)))
            land_s += time.perf_counter() - t0
            total_rows += table.num_rows
            wf_tables.append(workflow_runs_from(table))
            insights_tables["job_timeseries"].append(job_timeseries_from(table, month_end))
            if month_end > end - timedelta(days=INSIGHTS_DAYS):
                recent.append(table)
            test_tables.append(tests)
            print(f"month {start:%Y-%m}: {table.num_rows:,} rows landed, {tests.num_rows:,} test results", flush=True)
        t0 = time.perf_counter()
        wf = pa.concat_tables(wf_tables)
        # Insights' 90 days of workflow runs; the usage export carries the older ones.
        wf = wf.filter(
            pc.greater_equal(
                wf.column("created_at"),
                pa.scalar(end - timedelta(days=INSIGHTS_DAYS), wf.schema.field("created_at").type),
            )
        )
        wf_res = lake.land("workflow_runs", wf)
        recent_usage = pa.concat_tables(recent)
        insights_tables.update(
            workflow_job_metrics=[job_metrics_from(recent_usage, end)],
            test_metrics=[test_metrics_from(recent_usage, end)],
            projects=[projects_from(recent_usage, end)],
        )
        for name, tables in insights_tables.items():
            lake.land(name, pa.concat_tables(tables))
        wf_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tests_all = pa.concat_tables(test_tables)
        if tests_all.num_rows:
            lake.land("job_tests", tests_all)
        tests_s = time.perf_counter() - t0
        land_rate, bare_rate = total_rows / land_s, total_rows / bare_s
        figures.update(land_rows_per_s=land_rate, bare_rows_per_s=bare_rate, land_ratio=land_rate / bare_rate)
        print(f"\nland: {land_rate:,.0f} rows/s vs bare pyarrow write {bare_rate:,.0f} rows/s "
              f"-> ratio {land_rate / bare_rate:.2f} (lake/bare, same run); synthesis {gen_s:.1f}s; "
              f"{wf.num_rows:,} workflow runs landed in {wf_s:.1f}s ({len(wf_res.partitions_written)} partitions); "
              f"{tests_all.num_rows:,} test results in {tests_s:.1f}s")  # fmt: skip

    shape = _shape(lake)
    figures["shape"] = shape
    print("dataset shape: " + ", ".join(f"{k} {v:,}" for k, v in shape.items()))
    if shape["project_job_classes"] != shape["project_jobs"]:
        print("  warning: a job name runs on several resource classes within a project")
    if args.land_only:
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        return

    bare = sorted(bare_dir.glob("*.parquet"))
    reference_s = _reference_seconds(bare)
    db, base_db = args.out / "warehouse.duckdb", args.out / "baseline.duckdb"
    for stale in (db, docs_path(db), base_db, docs_path(base_db)):
        stale.unlink(missing_ok=True)
    for artifacts in (db.with_name(db.name + ".dbt"), base_db.with_name(base_db.name + ".dbt")):
        shutil.rmtree(artifacts, ignore_errors=True)  # a full rebuild parses the project from scratch too
    kwargs = {"memory_limit": args.memory_limit}
    base: dict[str, dict] = {}
    if args.baseline:
        base["full"] = _timed_build(args.baseline, lake_dir, base_db, kwargs)
    current = {**kwargs, "teams": bench_teams(args.teams)}
    full = _timed_build(ROOT, lake_dir, db, current)
    reference_s = min(reference_s, _reference_seconds(bare))
    figures.update(reference_s=reference_s, full_build=full, warehouse_gib=db.stat().st_size / 2**30, baseline=base)
    print(f"\nreference (DuckDB group-by over the bare files, best of 6, same run): {reference_s:.2f}s; "
          f"memory_limit {args.memory_limit}; warehouse {db.stat().st_size / 2**30:.2f} GiB")  # fmt: skip
    _print_build("full rebuild", full, reference_s, base.get("full"), "target <= 60 s and <= 4 GiB")

    # One night: the next day's usage export, workflow runs and test results land, then an
    # incremental build on a copy of the warehouse (the baseline's first, on its own copy).
    rows = _land_night(lake, end + timedelta(days=args.nights_landed), args)
    if args.baseline:
        base["nightly"] = _timed_build(args.baseline, lake_dir, base_db, kwargs)
    nightly = _timed_build(ROOT, lake_dir, db, current)
    figures["nightly_build"] = nightly
    print(f"\nnightly incremental build (one new day, {rows:,} job rows): {nightly['seconds'] / full['seconds']:.1%} "
          f"of the full rebuild (target <= 10 %)"
          + (f"; baseline {base['nightly']['seconds'] / base['full']['seconds']:.1%} of its own" if args.baseline else ""))  # fmt: skip
    _print_build("nightly", nightly, reference_s, base.get("nightly"), "target <= 10 % of full")

    latencies, rows_out, errors = _query_latencies(ROOT, db, args.query_repeats)
    figures.update(query_p95_s=latencies, query_rows=rows_out)
    old_latencies = _query_latencies(args.baseline, base_db, args.query_repeats)[0] if args.baseline else {}
    print(f"\nqueries: p95 over {args.query_repeats} runs each, fetched as Arrow (target <= 200 ms), rows returned:")
    for name, value in sorted(latencies.items(), key=lambda kv: -kv[1]):
        old = old_latencies.get(name)
        print(f"  {name:28s} {value * 1000:8.1f} ms {rows_out[name]:>9,} rows{'  (over target)' if value > 0.2 else ''}"
              f"{f'   baseline {old * 1000:.1f} ms' if old else ''}")  # fmt: skip
    for name, err in errors.items():
        print(f"  {name:28s} ERROR {err}")
    if latencies:
        print(f"  worst p95 {max(latencies.values()) * 1000:.1f} ms = {max(latencies.values()) / reference_s:.2f}x reference, "
              f"median of p95s {statistics.median(latencies.values()) * 1000:.1f} ms")  # fmt: skip

    if not args.no_dashboard:
        print()
        if args.baseline:
            base["dashboard"] = _dashboard("baseline", args.baseline, base_db, args.out / "dashboard-baseline", None)
        figures["dashboard"] = _dashboard("current", ROOT, db, args.out / "dashboard", base.get("dashboard"))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
