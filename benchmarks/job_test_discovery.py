"""Benchmark: finding the jobs whose test metadata the nightly fetches, from the lake.

    uv run python benchmarks/warehouse.py --months 3 --land-only --out benchmarks/out/warehouse
    uv run python benchmarks/job_test_discovery.py --lake benchmarks/out/warehouse/lake [--days 14]

`steps.unprobed_job_refs` lists every job run of the tests look-back (`usage_job_runs`) whose
tests have not landed (`job_tests`), reading only the partitions of the look-back, 7 columns
and the matching row groups. Each measurement runs in a fresh process; printed: wall time and
peak RSS (``wait4``), against a baseline measured in the same run - the same columns of the
whole tables read into memory (what discovery would cost without the partition pruning and
the date filter), as ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circleci_analytics.connectors import Extract  # noqa: E402
from circleci_analytics.flows import steps  # noqa: E402
from circleci_analytics.flows.state import PipelineState  # noqa: E402
from circleci_analytics.warehouse import Lake  # noqa: E402

ORG_ID = "6f1c2d3e-4b5a-4c6d-8e7f-000000000001"  # benchmarks/warehouse.py's org


def _projects(lake: Lake) -> Extract:
    """The benchmark org's 200 projects (benchmarks/warehouse.py: proj-N is gh/bench-org/project-N),
    as of the newest day in the lake."""
    newest = max(datetime.fromisoformat(p.rsplit("date=", 1)[1]) for p in lake.partitions("usage_job_runs"))
    ids = [f"proj-{n}" for n in range(200)]
    table = pa.table({"project_id": ids, "project_slug": [f"gh/bench-org/project-{n}" for n in range(200)]})
    return Extract("projects", table, extracted_at=newest.replace(tzinfo=UTC) + timedelta(days=1))


def _names_without_tests(lake: Lake, projects: Extract, since: datetime) -> dict[tuple[str, str], datetime]:
    """(project, job name) of every project without test results in the look-back, with every
    job name benchmarks/warehouse.py gives a project (cheap: not read from the usage rows)."""
    spec = importlib.util.spec_from_file_location("bench_warehouse", ROOT / "benchmarks" / "warehouse.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    names = {name for jobs in bench.WORKFLOW_JOBS.values() for name in jobs}
    tested = set(steps.read_recent(lake, "job_tests", ["project_slug"], "job_started_at", since).column(0).to_pylist())
    untested = [p for p in projects.table.column("project_slug").to_pylist() if p not in tested]
    return {(p, name): since for p in untested for name in names}


def child(mode: str, lake_root: str, days: int) -> None:
    lake = Lake(lake_root)
    projects = _projects(lake)
    since = projects.extracted_at - timedelta(days=days)
    t0 = time.perf_counter()
    if mode.startswith("discovery"):
        state = PipelineState(ORG_ID)
        if mode == "discovery-steady":  # a later night: the job names without tests are known
            state.names_without_tests = _names_without_tests(lake, projects, since)
            t0 = time.perf_counter()
        refs, left_out = steps.unprobed_job_refs(lake, ORG_ID, projects, since, state)
        found = f"{len(refs):,} jobs to probe; left out: " + ", ".join(f"{k} {v:,}" for k, v in left_out.items())
    else:  # the baseline: the same columns of the whole tables
        usage = lake.dataset("usage_job_runs").to_table(columns=steps.JOB_REF_COLUMNS)
        tests = lake.dataset("job_tests").to_table(columns=["project_slug", "job_number"])
        found = f"{usage.num_rows:,} usage rows, {tests.num_rows:,} test rows read"
    print(f"{time.perf_counter() - t0:.3f}\t{found}")


def measure(mode: str, lake: str, days: int) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, what was found) of one fresh process."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, "--lake", lake, "--days", str(days)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{mode} failed")
    seconds, found = out.strip().split("\t")
    return float(seconds), usage.ru_maxrss / 1024, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", default="benchmarks/out/warehouse/lake")
    ap.add_argument("--days", type=int, default=14, help="the tests look-back")
    ap.add_argument("--child", choices=("discovery", "discovery-steady", "baseline"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.lake, args.days)
    files = len(Lake(args.lake).files("usage_job_runs"))
    print(f"lake {args.lake}: {files} usage partitions; tests look-back {args.days} days")
    base_s, base_mb, base_found = measure("baseline", args.lake, args.days)
    print(f"baseline (whole tables, same columns): {base_s:.2f} s, peak RSS {base_mb:,.0f} MiB ({base_found})")
    for mode, label in (
        ("discovery", "first night (nothing known)"),
        ("discovery-steady", "later night (names without tests known)"),
    ):
        s, mb, found = measure(mode, args.lake, args.days)
        print(f"discovery, {label}: {s:.2f} s, peak RSS {mb:,.0f} MiB ({found})")
        print(f"    ratio to the baseline: time {s / base_s:.2f}, peak RSS {mb / base_mb:.2f}")


if __name__ == "__main__":
    main()
