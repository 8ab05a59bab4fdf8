"""Warehouse benchmark: land a `large`-scale lake, rebuild the warehouse, time dashboard queries.

    uv run python benchmarks/warehouse.py                       # 13 months x 1M job rows
    uv run python benchmarks/warehouse.py --months 2 --rows-per-month 200000   # quick

The simulator's `large` preset (~200 projects, ~1M job rows a month, 13 months) is too slow
to generate through the simulator for a benchmark, so usage-export rows are synthesised
with polars/numpy at that scale, in the connectors' schema (``USAGE_JOB_RUNS_SCHEMA``);
workflow runs are derived from them. Test results are not synthesised (the test marts are
empty here); the flaky-test marts are covered by the `tiny`/`demo` truth tests.

Printed figures:

- land: rows/s of ``Lake.land`` (one window per month), and its ratio to a bare
  ``pyarrow.parquet.write_table`` of the same Arrow table in the same run (same machine,
  same data; the lake also de-duplicates, partitions by day, sorts and renames atomically);
- full rebuild time of ``build_warehouse`` (target <= 60 s);
- p95 latency of the dashboard's queries (``dashboards/queries/*.sql``) over the marts
  (target <= 200 ms each).
"""

from __future__ import annotations

import argparse
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
from connectors.schemas import WORKFLOW_RUNS  # noqa: E402
from connectors.usage_export.schema import USAGE_JOB_RUNS_SCHEMA  # noqa: E402
from warehouse import Lake, build_warehouse  # noqa: E402

ORG_ID = "6f1c2d3e-4b5a-4c6d-8e7f-000000000001"
CREDIT_TYPES = ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges")
JOBS = ("build", "unit-tests", "integration-tests", "lint", "deploy", "notify")
WORKFLOWS = ("build-and-test", "nightly", "deploy", "lint")
BRANCHES = ("main", "develop", "feature/a", "feature/b", "fix/../'quoted\" ünïcode=branch")


def _month_starts(end: datetime, months: int) -> list[datetime]:
    starts = []
    y, m = end.year, end.month
    for _ in range(months):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        starts.append(datetime(y, m, 1, tzinfo=UTC))
    return sorted(starts)


def synth_month(start: datetime, end: datetime, rows: int, seed: int, n_projects: int = 200) -> pa.Table:
    """`rows` usage-export rows with job starts spread over [start, end) (polars only)."""
    classes = pl.read_csv(RESOURCE_CLASSES_CSV).with_row_index("cls").with_columns(pl.col("cls").cast(pl.Int64))
    span = int((end - start).total_seconds())
    i = pl.int_range(0, rows, dtype=pl.Int64)

    def rnd(salt: int, mod: int) -> pl.Expr:
        return (i.hash(seed * 1000 + salt) % mod).cast(pl.Int64)

    def unif(salt: int) -> pl.Expr:
        return rnd(salt, 1_000_000).cast(pl.Float64) / 1_000_000 + 0.5e-6

    normal = (-2 * unif(1).log()).sqrt() * (2 * 3.141592653589793 * unif(2)).cos()  # Box-Muller
    base = pl.select(
        i.alias("n"),
        # Jobs come in workflows of 4, in time order, so a workflow's jobs are close together.
        (i * span // rows).alias("offset"),
        (i // 4 + seed * 10_000_000).alias("wf"),
        (i + seed * 10_000_000).alias("seq"),
        ((i // 4 * 7919 + seed) % n_projects).alias("project"),
        (normal * 0.8 + 5.0).exp().clip(3, 36_000).cast(pl.Int64).alias("run_seconds"),
        pl.when(rnd(3, 100) < 94).then(pl.lit("success")).when(rnd(4, 10) < 9).then(pl.lit("failed"))
        .otherwise(pl.lit("canceled")).alias("status"),
        rnd(5, classes.height).alias("cls"),
        (rnd(6, 950) / 10 + 5).alias("cpu_raw"),
        (rnd(7, 950) / 10 + 5).alias("ram_raw"),
        pl.when(rnd(8, 10) == 0).then(20000).otherwise(0).alias("dlc_cents"),
        rnd(9, 300).alias("storage_cents"),
        rnd(10, 120).alias("network_cents"),
        pl.when(rnd(11, 20) == 0).then(rnd(12, 450) + 50).otherwise(0).alias("ipranges_cents"),
    ).join(classes, on="cls", how="left")  # fmt: skip
    df = base.with_columns(
        (pl.col("run_seconds") / 60).ceil().cast(pl.Int64).mul(pl.col("credits_per_minute")).mul(100).alias("compute_cents"),
        pl.lit(0).alias("user_cents"),
        pl.lit(0).alias("lease_cents"),
        pl.lit(0).alias("lease_overage_cents"),
        pl.when(pl.col("run_seconds") >= 15).then(pl.col("cpu_raw")).alias("cpu"),
        pl.when(pl.col("run_seconds") >= 15).then(pl.col("ram_raw")).alias("ram"),
        (pl.lit(int(start.timestamp() * 1_000_000)) + pl.col("offset") * 1_000_000).alias("started_us"),
    ).with_columns(pl.sum_horizontal([f"{t}_cents" for t in CREDIT_TYPES]).alias("total_cents"))
    ts = pl.Datetime("us", "UTC")
    out = df.select(
        pl.lit(ORG_ID).alias("organization_id"),
        pl.lit("bench-org").alias("organization_name"),
        pl.format("proj-{}", pl.col("project")).alias("project_id"),
        pl.format("project-{}", pl.col("project")).alias("project_name"),
        pl.lit("github").alias("vcs_name"),
        pl.format("https://github.com/bench-org/project-{}", pl.col("project")).alias("vcs_url"),
        pl.lit(list(BRANCHES)).list.get(pl.col("wf") % len(BRANCHES)).alias("vcs_branch"),
        pl.format("pipe-{}", pl.col("wf") // 2).alias("pipeline_id"),
        (pl.col("wf") // 2).alias("pipeline_number"),
        pl.format("wf-{}", pl.col("wf")).alias("workflow_id"),
        pl.lit(list(WORKFLOWS)).list.get(pl.col("wf") % len(WORKFLOWS)).alias("workflow_name"),
        pl.lit(list(JOBS)).list.get(pl.col("seq") % len(JOBS)).alias("job_name"),
        pl.format("job-{}", pl.col("seq")).alias("job_id"),
        pl.col("seq").alias("job_run_number"),
        pl.col("started_us").cast(ts).dt.truncate("1d").alias("job_run_date"),
        (pl.col("started_us") - 10_000_000).cast(ts).alias("job_run_queued_at"),
        pl.col("started_us").cast(ts).alias("job_run_started_at"),
        (pl.col("started_us") + pl.col("run_seconds") * 1_000_000).cast(ts).alias("job_run_stopped_at"),
        pl.col("status").alias("job_build_status"),
        pl.col("resource_class"),
        pl.lit("linux").alias("operating_system"),
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
            col = pc.multiply(table.column(f.name).cast(pa.decimal128(20, 0)), pa.scalar(Decimal("0.01"), pa.decimal128(3, 2)))
            arrays.append(col.cast(f.type))
        elif f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(rows, f.type))
    return pa.Table.from_arrays(arrays, schema=USAGE_JOB_RUNS_SCHEMA)


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


def p95(values: list[float]) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--months", type=int, default=13)
    ap.add_argument("--rows-per-month", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/warehouse"))
    ap.add_argument("--query-repeats", type=int, default=20)
    args = ap.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    lake = Lake(args.out / "lake")
    bare_dir = args.out / "bare"
    bare_dir.mkdir()
    end = datetime(2026, 6, 1, tzinfo=UTC)
    land_s = bare_s = gen_s = 0.0
    total_rows = 0
    wf_tables = []
    for i, start in enumerate(_month_starts(end, args.months)):
        month_end = (start + timedelta(days=32)).replace(day=1)
        t0 = time.perf_counter()
        table = synth_month(start, month_end, args.rows_per_month, seed=i + 1)
        gen_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        pq.write_table(table, bare_dir / f"month-{i:02d}.parquet", compression="zstd")
        bare_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        lake.land("usage_job_runs", table, window=(start, month_end - timedelta(microseconds=1)))
        land_s += time.perf_counter() - t0
        total_rows += table.num_rows
        wf_tables.append(workflow_runs_from(table))
        print(f"month {start:%Y-%m}: {table.num_rows:,} rows landed", flush=True)
    t0 = time.perf_counter()
    wf = pa.concat_tables(wf_tables)
    wf_res = lake.land("workflow_runs", wf)
    wf_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = build_warehouse(lake, args.out / "warehouse.duckdb")
    build_s = time.perf_counter() - t0

    import duckdb

    queries: dict[str, str] = {}
    try:
        from dashboards.queries import load_queries

        queries = {name: q.sql for name, q in load_queries().items()}
    except Exception as exc:  # pragma: no cover - the dashboard is optional here
        print(f"(dashboard queries unavailable: {exc}); using built-in ones")
    queries.setdefault("bench_spend_by_project_30d", (
        "select project_slug, sum(total_credits) as credits, sum(total_usd) as usd from fct_credit_spend_daily "
        "where spend_date > (select as_of_date from warehouse_meta) - 30 group by 1 order by 2 desc limit 20"))  # fmt: skip
    queries.setdefault("bench_top_movers", (
        "select * from fct_credit_movers_weekly where is_complete_week and week_start = "
        "(select max(week_start) from fct_credit_movers_weekly where is_complete_week) order by mover_rank limit 10"))  # fmt: skip
    con = duckdb.connect(str(result.db_path), read_only=True)
    latencies: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name, sql in sorted(queries.items()):
        times = []
        try:
            for _ in range(args.query_repeats):
                t0 = time.perf_counter()
                con.execute(sql).fetchall()
                times.append(time.perf_counter() - t0)
        except duckdb.Error as exc:
            errors[name] = str(exc).splitlines()[0]
            continue
        latencies[name] = p95(times)
    con.close()

    land_rate = total_rows / land_s
    bare_rate = total_rows / bare_s
    print()
    print(f"rows: {total_rows:,} usage rows over {args.months} months (synthesised in {gen_s:.1f}s); "
          f"{wf.num_rows:,} workflow runs")  # fmt: skip
    print(f"land: {land_rate:,.0f} rows/s vs bare pyarrow write {bare_rate:,.0f} rows/s "
          f"-> ratio {land_rate / bare_rate:.2f} (lake/bare); workflow runs landed in {wf_s:.1f}s "
          f"({len(wf_res.partitions_written)} partitions)")  # fmt: skip
    print(f"build: full rebuild {build_s:.1f}s (target <= 60 s): {result.summary()}")
    slow = sorted(result.models, key=lambda m: -m.seconds)[:5]
    print("  slowest models: " + ", ".join(f"{m.name} {m.seconds:.1f}s" for m in slow))
    print(f"  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"queries: p95 over {args.query_repeats} runs each (target <= 200 ms):")
    for name, value in sorted(latencies.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {value * 1000:8.1f} ms{'  (over target)' if value > 0.2 else ''}")
    for name, err in errors.items():
        print(f"  {name:32s} ERROR {err}")
    if latencies:
        print(f"  worst p95 {max(latencies.values()) * 1000:.1f} ms, median of p95s "
              f"{statistics.median(latencies.values()) * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
