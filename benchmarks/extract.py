"""Benchmark: API calls and wall time of the pipeline's extraction against a slow API.

    uv run python benchmarks/extract.py [--preset tiny] [--latency 0.05] [--concurrency 8] [--page-size 20]

Serves the simulator on a real loopback server (``simulator.server.running_server``) with
``latency_seconds`` injected per call, then runs the nightly flow's extraction steps the way
``flows.nightly.run_org`` does (``steps.resolve_projects``; ``steps.extract_project_streams``
- every catalogued stream that is due - for every project concurrently; ``steps.fetch_job_tests``
for the jobs the usage export would list whose tests have not landed), with the client's bounded concurrency and no
client-side rate limits (the simulator's limits are scaled out of the way too).

Printed, each against a baseline computed in the same run:

* calls made vs the minimum needed, computed independently from the simulator backend
  (no HTTP): ``ceil(items / page_size)`` pages (at least one) per paginated list, one call
  per non-paginated endpoint (the slow snapshots only when due: never read, or read
  ``snapshot_refresh_days`` ago), and for test metadata one call per page of every job that
  has tests, one probe per job name that has none in the batch, and one call per other job
  of a tested name that has no tests (the API says so only when asked);
* wall time vs the ideal ``calls x latency / concurrency`` (target <= 1.2x);
* an incremental re-run on the next day (a simulator whose ``now`` is one day later: the
  history is keyed by calendar day, so earlier days are identical), with the watermarks and
  the test-probe state the first run left: its calls as a % of the full run (target <= 10%).

The usage export itself is not run (its polling is paced in minutes against the real API;
``benchmarks/usage_merge.py`` covers its merge); its rows come from the simulator's ground
truth, the same job runs the export would serve.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from circleci_analytics.connectors import CircleCIClient  # noqa: E402
from circleci_analytics.connectors.client import format_datetime  # noqa: E402
from circleci_analytics.connectors.ratelimit import FAMILIES  # noqa: E402
from circleci_analytics.connectors.tests_metadata import UNFINISHED_STATUSES  # noqa: E402
from circleci_analytics.flows import steps  # noqa: E402
from circleci_analytics.flows.state import PipelineState  # noqa: E402
from circleci_analytics.settings import Org, Settings  # noqa: E402
from circleci_analytics.simulator import SimConfig, Simulator  # noqa: E402
from circleci_analytics.simulator.server import running_server  # noqa: E402

NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
MAX_WINDOW = timedelta(days=90)  # the Insights runs endpoint: end-date at most 90 days after start-date


@dataclass
class RunResult:
    calls: Counter[str]
    retries: int
    seconds: float
    phases: dict[str, tuple[int, float]]  # phase -> (calls, seconds)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


#: (project slug, job number) of the jobs whose tests landed (the lake's job_tests; the benchmark keeps no lake).
Landed = set[tuple[str, int]]


def _pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def usage_rows(sim: Simulator, since: datetime) -> pa.Table:
    """The usage export's job runs (the columns ``steps.job_refs_from_usage`` reads)."""
    cols: dict[str, list] = {k: [] for k in ("project_id", "job_run_number", "job_name", "workflow_id",
                                              "pipeline_id", "job_run_started_at", "job_build_status")}  # fmt: skip
    for project, job in sim.truth().jobs():
        if job.started_at < since:
            continue
        w = job.workflow
        for key, value in zip(
            cols, (project.id, job.number, job.name, w.id, w.pipeline.id, job.started_at, job.status)
        ):
            cols[key].append(value)
    return pa.table(cols)


# -- the minimum, from the simulator backend (no HTTP) ---------------------------------------------
def _windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    while start < end:
        out.append((start, min(start + MAX_WINDOW, end)))
        start = out[-1][1]
    return out


def _since(cfg: Settings, state: PipelineState, stream: str, key: tuple[str, ...]) -> datetime:
    """Where an incremental read starts: the watermark minus the overlap, else the history start."""
    mark = state.watermarks.cursor(stream, key)
    if mark is not None:
        return min(mark - timedelta(days=cfg.overlap_days), steps.clock(cfg))
    return max(steps.history_start(state, cfg), steps.clock(cfg) - steps.INSIGHTS_RETENTION)


def _due(cfg: Settings, state: PipelineState, stream: str, key: tuple[str, ...]) -> bool:
    read = state.watermarks.read_at(stream, key)
    return read is None or (steps.clock(cfg).date() - read.date()).days >= cfg.snapshot_refresh_days


def minimum_calls(sim: Simulator, cfg: Settings, state: PipelineState, landed: Landed) -> Counter[str]:
    """Calls the extraction needs at least, per endpoint family, for this state."""
    b, c = sim.backend, sim.config
    ps, now = c.page_size, steps.clock(cfg)
    (org,) = cfg.orgs
    need: Counter[str] = Counter()
    need["core"] += len(org.projects)  # GET /project/{slug}
    for slug in org.projects:
        all_wf = b.workflow_metrics(slug, None, True, None)
        need["insights"] += _pages(len(b.workflow_metrics(slug, None, False, None)), ps) + _pages(len(all_wf), ps)
        need["insights"] += 1  # flaky tests
        for wf in sorted({w["name"] for w in all_wf}):
            key = (slug, wf)
            if _due(cfg, state, "workflow_summary", key):
                need["insights"] += 2  # 2 scopes
            if _due(cfg, state, "test_metrics", key):
                need["insights"] += 1
            if _due(cfg, state, "workflow_job_metrics", key):
                need["insights"] += _pages(len(b.workflow_job_metrics(slug, wf, None, False, None, None)), ps)
            if _due(cfg, state, "job_timeseries", key):
                for lo, hi in _windows(_since(cfg, state, "job_timeseries", key), now):
                    ts = b.job_timeseries(slug, wf, None, "daily", format_datetime(lo), format_datetime(hi))
                    need["insights"] += _pages(len(ts), ps)
            need["insights"] += incremental_run_pages(sim, cfg, state, slug, wf)
    need["tests"] += minimum_test_calls(sim, cfg, state, landed)
    return need


def incremental_run_pages(sim: Simulator, cfg: Settings, state: PipelineState, slug: str, wf: str) -> int:
    """Pages of a workflow's runs needed from its watermark (the incremental Insights stream)."""
    pages = 0
    for lo, hi in _windows(_since(cfg, state, "workflow_runs", (slug, wf)), steps.clock(cfg)):
        pages += _pages(len(sim.backend.workflow_runs(slug, wf, None, True, format_datetime(lo), format_datetime(hi))),
                        sim.config.page_size)  # fmt: skip
    return pages


def minimum_test_calls(sim: Simulator, cfg: Settings, state: PipelineState, landed: Landed) -> int:
    """Test-metadata calls needed for the jobs of the look-back not landed (or known without
    tests) before."""
    answered = landed | set(state.jobs_without_tests)
    now = steps.clock(cfg)
    since = now - timedelta(days=cfg.tests_lookback_days)
    by_name: dict[tuple[str, str], list] = {}
    numbers: set[tuple[str, int]] = set()
    for project, job in sim.truth().jobs():
        key = (project.slug, job.number)
        if job.started_at < since or job.number is None or job.type == "approval" or key in numbers:
            continue
        numbers.add(key)
        if key in answered or job.status in UNFINISHED_STATUSES:
            continue
        when = state.names_without_tests.get((project.slug, job.name))
        if when is not None and now - when < timedelta(days=7):
            continue
        by_name.setdefault((project.slug, job.name), []).append(job)
    calls = 0
    tests_page = sim.config.tests_page_size
    for jobs in by_name.values():
        tested = [j for j in jobs if j.has_tests]
        if not tested:
            calls += 1  # one probe learns that this job name has no tests
            continue
        calls += sum(_pages(len(j.test_results()), tests_page) for j in tested)
        calls += len(jobs) - len(tested)
    return calls


# -- one run of the extraction steps -------------------------------------------------------------
async def extract(base_url: str, sim: Simulator, cfg: Settings, state: PipelineState,
                  landed: Landed) -> RunResult:  # fmt: skip
    """The nightly flow's extraction (``flows.nightly.run_org`` without landing and export)."""
    limits: dict[str, float | None] = {f: None for f in FAMILIES}
    phases: dict[str, tuple[int, float]] = {}
    async with CircleCIClient(sim.token, base_url, max_concurrency=cfg.max_concurrency, rate_limits=limits) as client:
        t0 = time.perf_counter()

        async def phase(name: str, coro):  # type: ignore[no-untyped-def]
            before, t = client.stats.total_calls, time.perf_counter()
            result = await coro
            phases[name] = (client.stats.total_calls - before, time.perf_counter() - t)
            return result

        projects, _ = await phase("projects", steps.resolve_projects(client, cfg.orgs[0].projects))
        slugs = projects.table.column("project_slug").to_pylist()

        async def insights():  # type: ignore[no-untyped-def]
            return await asyncio.gather(*(steps.extract_project_streams(client, s, state, cfg) for s in slugs))

        for res in await phase("insights", insights()):
            state.watermarks.update(res.watermarks)
        since = steps.clock(cfg) - timedelta(days=cfg.tests_lookback_days)
        refs = steps.job_refs_from_usage(usage_rows(sim, since), projects, since)
        refs = [r for r in refs if (r.project_slug, r.job_number) not in landed]
        tests = await phase("tests", steps.fetch_job_tests(client, refs, state, cfg))
        landed.update(zip(tests.extract.table.column("project_slug").to_pylist(),
                          tests.extract.table.column("job_number").to_pylist()))  # fmt: skip
        steps.remember_probes(state, refs, tests)
        seconds = time.perf_counter() - t0
        retries = sum(client.stats.retries.values())
        return RunResult(Counter(client.stats.calls), retries, seconds, phases)


def _serve(config: SimConfig, cfg: Settings, state: PipelineState, landed: Landed, conn: Connection) -> None:
    """Child process: serve a simulator on loopback until told to stop. Its history and
    Insights caches are warmed first (what the run will ask), so the run measures the
    client and the injected latency, not the simulator generating its world."""
    sim = Simulator(config)
    minimum_calls(sim, cfg, state, landed)
    with running_server(sim) as base_url:
        conn.send(base_url)
        conn.recv()


@contextlib.contextmanager
def served(sim: Simulator, cfg: Settings, state: PipelineState, landed: Landed) -> Iterator[str]:
    """``running_server`` for a simulator with ``sim``'s config, in its own process, so its
    request handling does not compete with the client for this process's GIL."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(sim.config, cfg, state, landed, theirs), daemon=True
    )
    child.start()
    try:
        yield ours.recv()
    finally:
        ours.send("stop")
        child.join(timeout=15)


def run(sim: Simulator, cfg: Settings, state: PipelineState, landed: Landed) -> RunResult:
    with served(sim, cfg, state, landed) as base_url:
        return asyncio.run(extract(base_url, sim, cfg, state, landed))


def report(label: str, got: RunResult, need: Counter[str], latency: float, concurrency: int) -> None:
    ideal = got.total * latency / concurrency
    print(f"{label}: {got.total} calls vs {sum(need.values())} needed = {got.total / sum(need.values()):.2f}x"
          f" (retries {got.retries})")  # fmt: skip
    for family in sorted(set(got.calls) | set(need)):
        print(f"    {family:<10} {got.calls[family]:>6} made {need[family]:>6} needed")
    print(f"  wall {got.seconds:.2f}s vs ideal {ideal:.2f}s ({got.total} x {latency}s / {concurrency})"
          f" = {got.seconds / ideal:.2f}x (target <= 1.2)")  # fmt: skip
    for name, (calls, seconds) in got.phases.items():
        print(f"    {name:<10} {calls:>6} calls {seconds:7.2f}s  ideal {calls * latency / concurrency:6.2f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", choices=("tiny", "demo"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--page-size", type=int, default=20)
    args = ap.parse_args()

    def simulator(now: datetime, latency: float = args.latency) -> Simulator:
        # time_scale: the simulator's own per-minute limits refill at once (no 429s to wait out).
        return Simulator(SimConfig(seed=args.seed, preset=args.preset, now=now, latency_seconds=latency,
                                   page_size=args.page_size, time_scale=1e6))  # fmt: skip

    day1 = simulator(NOW)
    org = Org(id=day1.org.id, slug=day1.org.slug, projects=[p.slug for p in day1.projects])
    cfg = Settings(orgs=[org], max_concurrency=args.concurrency, rate_limits=dict.fromkeys(FAMILIES, 0), now=NOW)
    state, landed = PipelineState(day1.org.id), set()
    need_full = minimum_calls(day1, cfg, state, landed)  # also warms the simulator's history caches
    full = run(day1, cfg, state, landed)
    print(f"preset {args.preset}, {len(org.projects)} projects, latency {args.latency}s, "
          f"concurrency {args.concurrency}, page size {args.page_size}")  # fmt: skip
    report("full run", full, need_full, args.latency, args.concurrency)
    # Baseline for the compute the ideal leaves out: the same run with no injected latency.
    zero = run(simulator(NOW, 0.0), cfg, PipelineState(day1.org.id), set())
    ideal = full.total * args.latency / args.concurrency
    print(f"  same run without latency: {zero.seconds:.2f}s of client+server compute;"
          f" wall minus that = {(full.seconds - zero.seconds) / ideal:.2f}x the ideal")  # fmt: skip

    day2 = simulator(NOW + timedelta(days=1))
    cfg2 = cfg.model_copy(update={"now": NOW + timedelta(days=1)})
    need_incr = minimum_calls(day2, cfg2, state, landed)
    runs_incr = sum(incremental_run_pages(day2, cfg2, state, slug, w["name"]) for slug in org.projects
                    for w in day2.backend.workflow_metrics(slug, None, True, None))  # fmt: skip
    incr = run(day2, cfg2, state, landed)
    report("incremental run (next day)", incr, need_incr, args.latency, args.concurrency)
    print(f"incremental calls: {incr.total} = {100 * incr.total / full.total:.1f}% of the full run's {full.total}"
          f" (target <= 10%)")  # fmt: skip
    snapshots = sum(need_incr.values()) - need_incr["tests"] - runs_incr
    print(f"  of which {snapshots} are snapshot endpoints read every run (projects, workflow metrics - the"
          f" parent of the per-workflow streams - and flaky tests): alone {100 * snapshots / full.total:.1f}% of the full run")  # fmt: skip


if __name__ == "__main__":
    main()
