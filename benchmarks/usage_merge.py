"""Benchmark: usage-export merge vs bare polars, on ~2M rows in ~10 gzipped CSV parts.

    uv run python benchmarks/usage_merge.py [--rows 2000000] [--parts 10] [--dir DIR]

Generates the parts once (vectorised with polars, realistic layout: UUIDs, microsecond
timestamps, decimals, \\N nulls) unless DIR already holds them, then times in separate
subprocesses, in the same run:

(a) ``polars.scan_csv(parts).sink_parquet(...)`` (types inferred, no checks), and
(b) ``connectors.usage_export.merge_parts`` (typed schema, checks, quarantine, dedupe),

and prints rows/s for both, the ratio (target >= 0.8) and the peak RSS of (b)
(target <= 1 GiB). Each child is a fresh process run under ``/usr/bin/time -v``, whose
"Maximum resident set size" is that process's own (a forked child's ``ru_maxrss`` would
include the parent's, which generated the parts).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINE = """
import glob, json, sys, time
import polars as pl
parts = sorted(glob.glob(sys.argv[1] + "/*.csv.gz"))
t = time.perf_counter()
pl.scan_csv(parts).sink_parquet(sys.argv[2])
dt = time.perf_counter() - t
rows = pl.scan_parquet(sys.argv[2]).select(pl.len()).collect().item()
print(json.dumps({"seconds": dt, "rows": rows}))
"""

MERGE = """
import glob, json, sys, time
from datetime import UTC, datetime
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from circleci_analytics.connectors.usage_export import PartInput, merge_parts
start, end = datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)
parts = [PartInput(Path(p), Path(p).name, start, end) for p in sorted(glob.glob(sys.argv[1] + "/*.csv.gz"))]
t = time.perf_counter()
stats = merge_parts(parts, Path(sys.argv[2]), Path(sys.argv[2] + ".quarantine"), extracted_at=datetime.now(UTC))
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "rows": stats.rows, "quarantined": stats.quarantined}))
"""


def generate(out: Path, rows: int, parts: int) -> None:
    import polars as pl

    from circleci_analytics.connectors.usage_export.schema import CSV_COLUMNS, column_kind

    out.mkdir(parents=True, exist_ok=True)
    per = rows // parts
    for p in range(parts):
        i = pl.int_range(p * per, (p + 1) * per, dtype=pl.UInt64)

        def rnd(salt: int, mod: int, i: pl.Expr = i) -> pl.Expr:
            return i.hash(salt) % mod

        def uuidish(x: pl.Expr, tag: str) -> pl.Expr:
            return pl.concat_str(pl.lit(f"3f2a9c1e-0b7d-4e21-{tag}-"), x.cast(pl.String).str.zfill(12))

        exprs = []
        for j, c in enumerate(CSV_COLUMNS):
            kind = column_kind(c)
            if c == "JOB_ID":
                e = uuidish(i, "9a55")
            elif kind == "flag":
                e = pl.when(rnd(j, 10) < 8).then(pl.lit("true")).otherwise(pl.lit("false"))
            elif kind == "credit":
                e = (rnd(j, 100000).cast(pl.Float64) / 100).round(2).cast(pl.String)
            elif kind == "int":
                e = (rnd(j, 500) + 1).cast(pl.String)
            elif kind == "float":
                num = (rnd(j, 10000).cast(pl.Float64) / 100).cast(pl.String)
                e = pl.when(rnd(j + 100, 10) == 0).then(pl.lit("\\N")).otherwise(num)
            elif c.endswith("_DATE"):
                e = (
                    (pl.lit(1777593600_000_000) + rnd(j, 30) * 86_400_000_000)
                    .cast(pl.Datetime("us"))
                    .dt.strftime("%Y-%m-%d")
                )
            elif kind == "timestamp":
                us = pl.lit(1777593600_000_000) + rnd(j, 30 * 86400) * 1_000_000 + rnd(j + 7, 1_000_000)
                e = us.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
            elif c.endswith("_ID"):
                e = uuidish(rnd(j, 5000), f"{j:04d}")
            else:
                e = pl.concat_str(pl.lit(c.lower().replace("_", "-") + "-"), rnd(j, 60).cast(pl.String))
            exprs.append(e.alias(c))
        df = pl.select(exprs)
        data = df.write_csv(quote_style="never").encode()
        tmp = out / f".part-{p:04d}.csv.gz"
        with gzip.open(tmp, "wb", compresslevel=1) as fh:
            fh.write(data)
        tmp.rename(out / f"part-{p:04d}.csv.gz")


def child(code: str, *args: str) -> dict:
    """Run `code` in a fresh process; its JSON line, with its peak RSS (bytes) from GNU time."""
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code, *args], check=True,
                          capture_output=True, text=True)  # fmt: skip
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if peak is None:
        raise RuntimeError(f"/usr/bin/time -v printed no peak RSS: {done.stderr[-500:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "rss": int(peak.group(1)) * 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--parts", type=int, default=10)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "usage_merge_bench")
    ap.add_argument("--repeat", type=int, default=1, help="alternate (a) and (b) this many times; best kept")
    args = ap.parse_args()

    src = args.dir / f"{args.rows}x{args.parts}"
    if len(list(src.glob("part-*.csv.gz"))) != args.parts:
        t = time.perf_counter()
        generate(src, args.rows, args.parts)
        print(f"generated {args.parts} parts in {time.perf_counter() - t:.1f}s -> {src}")
    size = sum(p.stat().st_size for p in src.glob("part-*.csv.gz"))
    print(f"input: {args.parts} parts, {size / 2**20:.0f} MiB gzipped")

    with tempfile.TemporaryDirectory() as tmp:
        base, mine = [], []
        for _ in range(args.repeat):
            base.append(child(BASELINE, str(src), f"{tmp}/baseline.parquet"))
            mine.append(child(MERGE, str(src), f"{tmp}/merged.parquet", str(ROOT)))
    b = min(base, key=lambda r: r["seconds"])
    m = min(mine, key=lambda r: r["seconds"])
    b_rate, m_rate = b["rows"] / b["seconds"], m["rows"] / m["seconds"]
    print(f"(a) bare scan_csv -> sink_parquet: {b['rows']:,} rows in {b['seconds']:.2f}s = {b_rate:,.0f} rows/s"
          f" (peak RSS {b['rss'] / 2**20:,.0f} MiB)")  # fmt: skip
    print(f"(b) usage_export merge:            {m['rows']:,} rows in {m['seconds']:.2f}s = {m_rate:,.0f} rows/s"
          f" (quarantined {m['quarantined']})")  # fmt: skip
    print(f"ratio (b)/(a): {m_rate / b_rate:.2f}x (target >= 0.8)")
    print(f"peak RSS of (b): {m['rss'] / 2**20:,.0f} MiB (target <= 1024 MiB)")


if __name__ == "__main__":
    main()
