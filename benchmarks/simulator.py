"""Benchmark: a 31-day usage export of the `large` preset over a real loopback server.

    uv run python benchmarks/simulator.py [--days 31] [--rows-per-part 100000] [--seed 42]

Creates the export over HTTP (time_scale high, export_processing_seconds small), polls it,
then downloads and streams every part (gunzip + line count while streaming; nothing is
held), and prints rows, wall time, rows/s, parts, compressed bytes and the peak RSS of the
process (server thread and client share it). As a baseline in the same run it times a bare
loop that only formats and gzips the same number of CSV-like lines, so the simulator's
figures can be read as a ratio (generation + HTTP overhead over the cost of the bytes).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circleci_analytics.simulator import SimConfig, Simulator  # noqa: E402
from circleci_analytics.simulator.server import running_server  # noqa: E402

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
RSS_TARGET_GIB = 1.5


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def stream_part(client: httpx.Client, url: str) -> tuple[int, int]:
    """(data rows, compressed bytes) of one part, decompressed and counted while streaming."""
    d = zlib.decompressobj(31)
    lines = 0
    compressed = 0
    tail = b""
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 16):
            compressed += len(chunk)
            data = d.decompress(chunk)
            lines += data.count(b"\n")
            tail = data[-1:] if data else tail
    data = d.flush()
    lines += data.count(b"\n")
    if not d.eof:
        raise RuntimeError(f"part ended before the gzip trailer: {url.split('?')[0]}")
    return lines - 1, compressed  # minus the header


def baseline(rows: int, width: int = 48) -> float:
    """Seconds to format and gzip `rows` CSV-like lines of `width` short fields (no HTTP, no model)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    t0 = time.perf_counter()
    buf: list[str] = []
    base = [f"value-{i:02d}" for i in range(width - 4)]
    for n in range(rows):
        buf.append(",".join([*base, str(n), f"{n % 997}.{n % 100:02d}", "2026-05-01 12:00:00", "\\N"]))
        if len(buf) >= 2000:
            comp.compress(("\n".join(buf) + "\n").encode())
            buf.clear()
    comp.compress(("\n".join(buf) + "\n").encode())
    comp.flush()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="large")
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--rows-per-part", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    t_build = time.perf_counter()
    sim = Simulator(SimConfig(
        seed=args.seed, preset=args.preset, now=NOW, export_rows_per_part=args.rows_per_part,
        export_processing_seconds=0.2, time_scale=3600.0, url_ttl_seconds=3600.0,
    ))  # fmt: skip
    build_s = time.perf_counter() - t_build
    end = NOW - timedelta(minutes=5)
    start = end - timedelta(days=args.days)

    with (
        running_server(sim) as base_url,
        httpx.Client(base_url=base_url, headers={"Circle-Token": sim.token}, timeout=600) as client,
    ):
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        r = client.post(f"/organizations/{sim.org.id}/usage_export_job",
                        json={"start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
        r.raise_for_status()
        job_id = r.json()["usage_export_job_id"]
        while True:
            status = client.get(f"/organizations/{sim.org.id}/usage_export_job/{job_id}").json()
            if status["state"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        if status["state"] != "completed":
            print(f"export failed: {status.get('error_reason')}", file=sys.stderr)
            return 1
        t_ready = time.perf_counter()
        urls = status["download_urls"]
        rows = compressed = 0
        with httpx.Client(timeout=600) as anon:  # pre-signed URLs: no token
            for url in urls:
                n, size = stream_part(anon, url)
                rows += n
                compressed += size
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0  # server thread + client: the whole process

    peak = peak_rss_bytes()
    base_cpu0 = time.process_time()
    base_s = baseline(rows)
    base_cpu = time.process_time() - base_cpu0
    gib = peak / 2**30
    print(f"preset={args.preset} seed={args.seed} window={args.days} days ({start:%Y-%m-%d} .. {end:%Y-%m-%d})")
    print(f"simulator built in        {build_s:8.2f} s")
    print(f"export created+polled in  {t_ready - t0:8.2f} s")
    print(f"rows generated            {rows:>12,}")
    print(f"parts                     {len(urls):>12}")
    print(f"compressed bytes          {compressed:>12,}  ({compressed / max(rows, 1):.0f} B/row)")
    print(f"wall time (POST..last row){wall:8.2f} s")
    print(f"rows/s                    {rows / wall:>12,.0f}")
    print(f"process CPU time          {cpu:8.2f} s  ({rows / cpu:,.0f} rows per CPU-second; wall/CPU shows contention)")
    print(
        f"peak RSS                  {gib:8.2f} GiB  (target <= {RSS_TARGET_GIB} GiB: {'ok' if gib <= RSS_TARGET_GIB else 'OVER'})"
    )
    print(f"baseline: format+gzip {rows:,} CSV-like lines in {base_s:.2f} s wall, {base_cpu:.2f} s CPU "
          f"({rows / base_s:,.0f} rows/s); simulator/baseline = {wall / base_s:.1f}x wall, {cpu / base_cpu:.1f}x CPU")  # fmt: skip
    return 0 if gib <= RSS_TARGET_GIB else 2


if __name__ == "__main__":
    raise SystemExit(main())
