"""Benchmark: peak memory of landing a merged usage export, by window size.

    flock /tmp/heavy.lock uv run --frozen python benchmarks/landing.py

Inputs: the merged usage-export Parquet file of the simulator's `large` preset for a 31-day
window and for the 62-day window ending at the same day (twice the rows). Each is produced
once the way a run produces it - the simulator renders the export's gzipped CSV parts, the
connectors' ``merge_parts`` merges them - and cached under ``benchmarks/out/landing/``
(git-ignored; delete it to regenerate).

Every figure is the peak RSS of a fresh Python process measured by ``/usr/bin/time -v``,
landing into an empty lake, all in the same run:

- baseline:  import the libraries and read the file's row count (what any step costs);
- read_table: the old landing, ``pq.read_table`` + ``Lake.land`` (the whole window in memory);
- land_file: ``Lake.land_file`` (partition by partition).

Printed: each figure in MiB (and the wall time), ``land_file`` against the old landing and against the baseline,
and the 62-day/31-day ratio of each path (flat = about 1.0). Target: land_file <= 1 GiB for
both windows, and flat.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "out" / "landing"
#: The simulated "now": windows end at its midnight.
NOW = datetime(2026, 6, 1, tzinfo=UTC)
WINDOWS = {"31d": 31, "62d": 62}
SEED = 42
ROWS_PER_PART = 100_000
TARGET_MIB = 1024

STEPS = {
    "baseline": """
import sys
import polars, pyarrow.parquet as pq
from circleci_analytics.warehouse import Lake
print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)
""",
    "read_table": """
import sys
from datetime import datetime
import pyarrow.parquet as pq
from circleci_analytics.warehouse import Lake
window = (datetime.fromisoformat(sys.argv[3]), datetime.fromisoformat(sys.argv[4]))
usage = pq.read_table(sys.argv[1])
print(Lake(sys.argv[2]).land("usage_job_runs", usage, window=window).rows_in)
""",
    "land_file": """
import sys
from datetime import datetime
from circleci_analytics.warehouse import Lake
window = (datetime.fromisoformat(sys.argv[3]), datetime.fromisoformat(sys.argv[4]))
print(Lake(sys.argv[2]).land_file("usage_job_runs", sys.argv[1], window=window).rows_in)
""",
}


def window(days: int) -> tuple[datetime, datetime]:
    return NOW - timedelta(days=days), NOW - timedelta(microseconds=1)


def generate(days: int, dest: Path) -> int:
    """Render the export parts of a `days` window with the simulator and merge them to `dest`."""
    from circleci_analytics.connectors.usage_export import PartInput, merge_parts
    from circleci_analytics.simulator import SimConfig
    from circleci_analytics.simulator.history import History
    from circleci_analytics.simulator.usage_export import ExportJob, plan_parts, render_part

    start, end = window(days)
    config = SimConfig(seed=SEED, preset="large", now=NOW)
    history = History(config)
    parts = plan_parts(history, list(history.catalog.projects), start, end, ROWS_PER_PART)
    job = ExportJob(f"bench-{days}d", history.catalog.org.id, start, end, 0.0, parts)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        inputs = []
        for part in parts:
            path = Path(tmp) / f"part-{part.index:04d}.csv.gz"
            with gzip.open(path, "wt", compresslevel=1) as fh:
                for chunk in render_part(history, config, job, part):
                    fh.write(chunk)
            inputs.append(PartInput(path, path.name, start, end))
        stats = merge_parts(inputs, dest.with_suffix(".tmp"), Path(tmp) / "quarantine.parquet", extracted_at=NOW)
    dest.with_suffix(".tmp").rename(dest)
    return stats.rows


def measure(step: str, *args: str) -> tuple[int, float, str]:
    """(peak RSS in bytes, wall seconds, stdout) of a fresh process running STEPS[step]."""
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", STEPS[step], *args], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    kib = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    assert kib and wall, done.stderr
    h, m, sec = wall.groups()
    return int(kib.group(1)) * 1024, int(h or 0) * 3600 + int(m) * 60 + float(sec), done.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    files = {}
    for name, days in WINDOWS.items():
        path = args.out / f"usage-large-{days}d.parquet"
        if not path.exists():
            t = time.perf_counter()
            rows = generate(days, path)
            print(f"generated {path.name}: {rows:,} rows in {time.perf_counter() - t:.0f}s")
        files[name] = path

    mib: dict[tuple[str, str], float] = {}
    secs: dict[tuple[str, str], float] = {}
    for name, path in files.items():
        start, end = window(WINDOWS[name])
        rows = None
        for step in STEPS:
            lake = args.out / f"lake-{step}-{name}"
            shutil.rmtree(lake, ignore_errors=True)
            rss, secs[step, name], out = measure(step, str(path), str(lake), start.isoformat(), end.isoformat())
            shutil.rmtree(lake, ignore_errors=True)
            mib[step, name] = rss / 2**20
            rows = rows or int(out)
        print(f"{name} window, {rows:,} rows ({path.stat().st_size / 2**20:,.0f} MiB Parquet):")
        for step in STEPS:
            print(f"  {step:<10} peak RSS {mib[step, name]:6,.0f} MiB, {secs[step, name]:5.1f} s")
        new, old, base = mib["land_file", name], mib["read_table", name], mib["baseline", name]
        print(f"  land_file / read_table = {new / old:.2f}x; land_file / baseline = {new / base:.2f}x; "
              f"land_file {'<=' if new <= TARGET_MIB else '>'} {TARGET_MIB} MiB target")  # fmt: skip
    a, b = WINDOWS
    for step in ("read_table", "land_file"):
        print(f"{step}: {b}/{a} = {mib[step, b] / mib[step, a]:.2f}x (flat = 1.0)")


if __name__ == "__main__":
    main()
