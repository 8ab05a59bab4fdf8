"""The pipeline's plain step functions (no Prefect): the catalogued streams of a project and
their cadence, windows, job refs, landing, projects."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import httpx
import pyarrow as pa
import pytest
from flow_helpers import NO_LIMITS, NOW, TOKEN, make_sim

from circleci_analytics.connectors import (
    CATALOGUE,
    CircleCIClient,
    Extract,
    JobRef,
    JobTestsResult,
    NotFound,
    ProbeState,
    extract_projects,
)
from circleci_analytics.flows import backfill_windows
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.steps import (
    due,
    extract_project_streams,
    history_start,
    job_refs_from_usage,
    land_extracts,
    read_recent,
    record_history_start,
    remember_probes,
    resolve_projects,
    unprobed_job_refs,
    usage_window,
)
from circleci_analytics.settings import Settings
from circleci_analytics.simulator import Simulator, create_app
from circleci_analytics.warehouse import Lake

UNKNOWN = "gh/acme-robotics/no-such-project"


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return make_sim()


def call(sim: Simulator, fn, *args, calls: list | None = None):
    """Run `fn(client, *args)` against the in-process simulator (the API calls it made are
    appended to `calls`)."""

    async def go():
        transport = httpx.ASGITransport(app=create_app(sim))
        async with CircleCIClient(TOKEN, "http://sim/api/v2", transport=transport, rate_limits=NO_LIMITS) as client:
            try:
                return await fn(client, *args)
            finally:
                if calls is not None:
                    calls.append(client.stats.total_calls)

    return asyncio.run(go())


def cfg(**changes) -> Settings:
    return Settings(**{"now": datetime(2026, 6, 1, 12, 30, tzinfo=UTC), **changes})


# -- the catalogued streams of a project, on their cadence -------------------------------------
def _night(now: datetime, state: PipelineState, **settings) -> tuple[dict[str, Extract], int]:
    """One night's streams of the first project (as the flow does: watermarks saved once landed)."""
    sim = make_sim(now)
    calls: list[int] = []
    out = call(sim, extract_project_streams, sim.projects[0].slug, state, cfg(now=now, initial_lookback_days=30,
                                                                              **settings), calls=calls)  # fmt: skip
    state.watermarks.update(out.watermarks)
    by_stream: dict[str, list[Extract]] = {}
    for e in out.extracts:
        by_stream.setdefault(e.stream, []).append(e)
    return by_stream, calls[0]


EVERY_RUN = {name for name, s in CATALOGUE.items() if s.handler is None and s.refresh == "every run"}
SLOW = {name for name, s in CATALOGUE.items() if s.refresh == "slow snapshot"}


def test_slow_snapshots_are_read_on_their_cadence_and_the_rest_every_night() -> None:
    state = PipelineState("org")
    first, first_calls = _night(NOW, state)
    assert set(first) == EVERY_RUN | SLOW and SLOW
    workflows = {(e.context["project_slug"], e.context["workflow_name"]) for e in first["workflow_runs"]}
    assert (
        workflows
        and {(e.context["project_slug"], e.context["workflow_name"]) for e in first["workflow_summary"]} == workflows
    )
    # The next night: the slow snapshots are not due; workflow runs start at the watermark minus the overlap.
    second, second_calls = _night(NOW + timedelta(days=1), state)
    assert set(second) == EVERY_RUN and second_calls < first_calls / 3
    for e in second["workflow_runs"]:
        mark = max(
            r["created_at"] for x in first["workflow_runs"] if x.context == e.context for r in x.table.to_pylist()
        )
        assert e.start == mark - timedelta(days=2)
    # A week after the first read (calendar days: earlier in the day than that read), all again.
    third, _ = _night(NOW + timedelta(days=7, hours=-6), state)
    assert set(third) == EVERY_RUN | SLOW
    # The time series goes on from its watermark: no gap between the reads.
    (ts_key, *_) = {e.context["workflow_name"] for e in third["job_timeseries"]}
    old = max(r["bucket_start"] for e in first["job_timeseries"] if e.context["workflow_name"] == ts_key
              for r in e.table.to_pylist())  # fmt: skip
    assert next(e.start for e in third["job_timeseries"] if e.context["workflow_name"] == ts_key) == old - timedelta(
        days=2
    )


def test_a_setting_reads_every_snapshot_every_night() -> None:
    state = PipelineState("org")
    _night(NOW, state, snapshot_refresh_days=1)
    second, _ = _night(NOW + timedelta(days=1), state, snapshot_refresh_days=1)
    assert set(second) == EVERY_RUN | SLOW


def test_due_counts_calendar_days() -> None:
    slow, every = CATALOGUE["workflow_summary"], CATALOGUE["workflow_runs"]
    read = datetime(2026, 6, 1, 3, 5, tzinfo=UTC)
    s = cfg(snapshot_refresh_days=7)
    assert due(slow, None, read, s) and due(every, read, read, s)
    assert not due(slow, read, read + timedelta(days=6, hours=20), s)
    assert due(slow, read, read + timedelta(days=6, hours=23, minutes=59), s)  # 03:04 a week later: the 7th day


# -- usage_window ----------------------------------------------------------------------------


def test_usage_window_first_run_uses_the_initial_lookback_from_midnight() -> None:
    c = cfg(initial_lookback_days=30)
    assert usage_window(PipelineState("org"), c) == (datetime(2026, 5, 2, tzinfo=UTC), c.now)


def test_usage_window_later_runs_start_at_the_cursor_minus_the_overlap() -> None:
    state = PipelineState("org")
    state.usage_exported_until = datetime(2026, 5, 31, 3, 15, tzinfo=UTC)
    c = cfg(overlap_days=2, initial_lookback_days=30)
    assert usage_window(state, c) == (datetime(2026, 5, 29, tzinfo=UTC), c.now)


def test_usage_window_without_a_cursor_starts_at_the_recorded_history_start() -> None:
    # The first run's export failed: the next one still starts where the history does.
    state = PipelineState("org", history_start=datetime(2026, 5, 1, tzinfo=UTC))
    c = cfg(initial_lookback_days=30)
    assert history_start(state, c) == datetime(2026, 5, 1, tzinfo=UTC)
    assert usage_window(state, c) == (datetime(2026, 5, 1, tzinfo=UTC), c.now)
    assert history_start(PipelineState("org"), c) == datetime(2026, 5, 2, tzinfo=UTC)


def test_the_history_start_is_recorded_by_the_first_run_only() -> None:
    first, later = datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 29, tzinfo=UTC)
    state = PipelineState("org")
    record_history_start(state, first)
    record_history_start(state, later)
    assert state.history_start == first
    # A state written before history starts were recorded: none is invented from a later window.
    legacy = PipelineState("org")
    legacy.usage_exported_until = datetime(2026, 5, 31, tzinfo=UTC)
    record_history_start(legacy, later)
    assert legacy.history_start is None
    assert history_start(legacy, cfg(initial_lookback_days=30)) == datetime(2026, 5, 2, tzinfo=UTC)


def test_usage_window_explicit_start_wins() -> None:
    state = PipelineState("org")
    state.usage_exported_until = datetime(2026, 5, 31, tzinfo=UTC)
    c = cfg()
    assert usage_window(state, c, datetime(2026, 5, 10, 15, tzinfo=UTC)) == (datetime(2026, 5, 10, tzinfo=UTC), c.now)


# -- job_refs_from_usage ---------------------------------------------------------------------
def _projects(rows: dict[str, str]) -> Extract:
    table = pa.table({"project_id": list(rows), "project_slug": list(rows.values())})
    return Extract("projects", table, extracted_at=NOW)


def test_job_refs_from_usage_maps_ids_to_slugs_and_keeps_recent_jobs() -> None:
    ts = pa.timestamp("us", tz="UTC")
    since = datetime(2026, 5, 25, tzinfo=UTC)
    usage = pa.table({
        "project_id": ["p1", "p1", "p2", "p-other"],
        "job_run_number": [10, 11, 12, 13],
        "job_name": ["test", "lint", "build", "test"],
        "workflow_id": ["w1", "w2", "w3", "w4"],
        "pipeline_id": ["pl1", "pl2", "pl3", "pl4"],
        "job_run_started_at": pa.array([since - timedelta(seconds=1), since, since + timedelta(days=1), since], ts),
        "job_build_status": ["failed", "success", "success", "success"],
    })  # fmt: skip
    refs = job_refs_from_usage(usage, _projects({"p1": "gh/acme/web", "p2": "circleci/O/P"}), since)
    # Too old (10) and from a project not configured for this run (13) are left out.
    got = [(r.project_slug, r.job_number, r.job_name) for r in refs]
    assert got == [("gh/acme/web", 11, "lint"), ("circleci/O/P", 12, "build")]
    assert refs[0].workflow_id == "w2" and refs[0].pipeline_id == "pl2" and refs[0].job_status == "success"
    assert refs[0].job_started_at == since


# -- work derived from the lake --------------------------------------------------------------
TS = pa.timestamp("us", tz="UTC")
DAY = datetime(2026, 5, 20, 9, tzinfo=UTC)


def _usage(org: str, rows: list[tuple[str, int, str, datetime]]) -> pa.Table:
    """usage_job_runs rows: (project_id, job number, job name, started)."""
    n = len(rows)
    return pa.table({
        "job_id": [f"{org}-{p}-{num}" for p, num, _, _ in rows], "organization_id": [org] * n,
        "project_id": [p for p, _, _, _ in rows], "job_run_number": [num for _, num, _, _ in rows],
        "job_name": [name for _, _, name, _ in rows], "workflow_id": ["w"] * n, "pipeline_id": ["pl"] * n,
        "job_run_started_at": pa.array([t for _, _, _, t in rows], TS), "job_build_status": ["success"] * n,
        "export_window_start": pa.array([DAY] * n, TS), "export_window_end": pa.array([DAY] * n, TS),
        "extracted_at": pa.array([DAY] * n, TS),
    })  # fmt: skip


def _tests(rows: list[tuple[str, int, datetime]]) -> pa.Table:
    """job_tests rows: (project slug, job number, job started)."""
    n = len(rows)
    return pa.table({
        "project_slug": [p for p, _, _ in rows], "job_number": [num for _, num, _ in rows],
        "job_started_at": pa.array([t for _, _, t in rows], TS), "classname": ["A"] * n, "name": ["t"] * n,
        "file": ["a.py"] * n, "extracted_at": pa.array([DAY] * n, TS),
    })  # fmt: skip


def _spoil(lake: Lake, table: str, day: date) -> None:
    """Overwrite the partition files of `day` with bytes no Parquet reader accepts."""
    spoiled = [f for f in lake.files(table) if f"date={day.isoformat()}" in f]
    assert spoiled
    for path in spoiled:
        with lake.fs.open_output_stream(path) as out:
            out.write(b"not parquet")


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake")) if request.param == "local" else request.getfixturevalue("s3_lake")


def test_read_recent_reads_only_the_partitions_and_rows_since(any_lake: Lake) -> None:
    old, recent = DAY - timedelta(days=5), DAY + timedelta(hours=3)
    any_lake.land("usage_job_runs", _usage("org-1", [("p1", 1, "test", old), ("p1", 2, "test", DAY - timedelta(hours=1)),
                                                      ("p1", 3, "lint", recent)]))  # fmt: skip
    any_lake.land("usage_job_runs", _usage("org-2", [("p9", 9, "test", recent)]))
    _spoil(any_lake, "usage_job_runs", old.date())  # an old partition is never opened
    got = read_recent(any_lake, "usage_job_runs", ["project_id", "job_run_number"], "job_run_started_at", DAY,
                      {"org_id": "org-1"})  # fmt: skip
    assert got.column_names == ["project_id", "job_run_number"]
    assert got.to_pylist() == [{"project_id": "p1", "job_run_number": 3}]  # same day, earlier row filtered out
    assert read_recent(any_lake, "job_tests", ["project_slug"], "job_started_at", DAY).num_rows == 0  # no table yet


def test_unprobed_job_refs_are_every_recent_job_whose_tests_are_not_known(tmp_path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    since = DAY - timedelta(days=7)
    # Three nights' exports: whichever night exported a job, it is a candidate while recent.
    for night in range(3):
        lake.land("usage_job_runs", _usage("org-1", [("p1", 10 + night, "test", DAY + timedelta(days=night)),
                                                      ("p2", 20 + night, "test", DAY + timedelta(days=night)),
                                                      ("p2", 30 + night, "lint", DAY + timedelta(days=night))]))  # fmt: skip
    lake.land("usage_job_runs", _usage("org-1", [("p1", 1, "test", since - timedelta(hours=1))]))  # too old
    lake.land("usage_job_runs", _usage("org-1", [("p-other", 5, "test", DAY)]))  # a project not configured
    lake.land("job_tests", _tests([("gh/a/one", 11, DAY + timedelta(days=1))]))  # landed before
    state = PipelineState("org-1", jobs_without_tests={("gh/a/two", 21): DAY},  # answered "no tests" before
                          names_without_tests={("gh/a/two", "lint"): DAY})  # fmt: skip
    projects = _projects({"p1": "gh/a/one", "p2": "gh/a/two"})
    refs, left_out = unprobed_job_refs(lake, "org-1", projects, since, state)
    assert sorted((r.project_slug, r.job_number, r.job_name) for r in refs) == [
        ("gh/a/one", 10, "test"),
        ("gh/a/one", 12, "test"),
        ("gh/a/two", 20, "test"),
        ("gh/a/two", 22, "test"),
    ]
    ref = next(r for r in refs if r.job_number == 12)
    assert (ref.job_started_at, ref.workflow_id, ref.pipeline_id, ref.job_status) == (
        DAY + timedelta(days=2), "w", "pl", "success")  # fmt: skip
    assert left_out == {"landed_before": 1, "known_without_tests": 4}
    assert unprobed_job_refs(Lake(str(tmp_path / "empty")), "org-1", projects, since, PipelineState("org-1")) == (
        [], {"landed_before": 0, "known_without_tests": 0})  # fmt: skip


def test_remember_probes_keeps_only_what_the_lake_cannot_show() -> None:
    state = PipelineState("org", jobs_without_tests={("p", 1): DAY})
    refs = [JobRef("p", n, "unit", job_started_at=DAY + timedelta(hours=n)) for n in (2, 3, 4)]
    landed = Extract("job_tests", _tests([("p", 2, DAY)]), extracted_at=DAY)
    # Job 2 answered with tests (landed), 3 answered with none, 4 failed (not answered).
    answered = ProbeState(seen={("p", 1), ("p", 2), ("p", 3)}, no_test_jobs={("p", "lint"): DAY})
    remember_probes(state, refs, JobTestsResult(landed, answered, {}, 2, [("p", 4, "NotFound")]))
    assert state.jobs_without_tests == {("p", 1): DAY, ("p", 3): DAY + timedelta(hours=3)}
    assert state.names_without_tests == {("p", "lint"): DAY}


# -- land_extracts ---------------------------------------------------------------------------
def test_land_extracts_counts_rows_per_table_and_is_idempotent(sim: Simulator, tmp_path) -> None:
    slugs = [p.slug for p in sim.projects]
    first = call(sim, extract_projects, slugs[:2])
    second = call(sim, extract_projects, slugs[2:])
    lake = Lake(str(tmp_path / "lake"))
    assert land_extracts(lake, [first, second]) == {"projects": len(slugs)}
    assert land_extracts(lake, [first, second]) == {"projects": len(slugs)}
    table = lake.read("projects")
    assert sorted(table.column("project_slug").to_pylist()) == sorted(slugs)
    assert land_extracts(lake, []) == {}


# -- projects --------------------------------------------------------------------------------
def test_resolve_projects_reports_an_unknown_slug_and_keeps_the_others(sim: Simulator) -> None:
    slugs = [p.slug for p in sim.projects]
    extract, unknown = call(sim, resolve_projects, [*slugs[:1], UNKNOWN, *slugs[1:]])
    assert unknown == [UNKNOWN]
    assert extract.table.column("project_slug").to_pylist() == slugs
    assert set(extract.table.column("project_id").to_pylist()) == {p.id for p in sim.projects}


def test_resolve_projects_all_known_reports_nothing(sim: Simulator) -> None:
    extract, unknown = call(sim, resolve_projects, [p.slug for p in sim.projects])
    assert unknown == [] and extract.num_rows == len(sim.projects)


def test_resolve_projects_all_unknown_is_an_error_naming_them(sim: Simulator) -> None:
    with pytest.raises(NotFound) as e:
        call(sim, resolve_projects, [UNKNOWN, "gh/acme-robotics/also-missing"])
    assert UNKNOWN in str(e.value) and "also-missing" in str(e.value)
    assert TOKEN not in str(e.value)


# -- backfill windows ------------------------------------------------------------------------
def test_backfill_windows_are_at_most_31_days_and_cover_the_range() -> None:
    windows = backfill_windows(date(2026, 3, 1), date(2026, 5, 31), NOW)
    assert windows[0][0] == datetime(2026, 3, 1, tzinfo=UTC)
    assert windows[-1][1] == datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)
    assert all(end - start <= timedelta(days=31) for start, end in windows)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))  # no gap between windows
    assert len(windows) == 3


def test_backfill_windows_end_is_clamped_to_now() -> None:
    windows = backfill_windows(date(2026, 5, 20), date(2026, 6, 30), NOW)
    assert windows[-1][1] <= NOW


def test_backfill_windows_start_is_clamped_to_what_the_usage_export_keeps() -> None:
    from circleci_analytics.connectors.usage_export import plan_windows
    from circleci_analytics.connectors.usage_export.windows import MAX_LOOKBACK

    windows = backfill_windows(date(2025, 1, 1), date(2026, 5, 31), NOW)
    assert windows[0][0] == datetime(2025, 6, 2, tzinfo=UTC)  # the midnight after NOW - 365 days
    assert NOW - MAX_LOOKBACK < windows[0][0] <= NOW - MAX_LOOKBACK + timedelta(days=1)
    # what the export itself accepts, an hour after planning
    assert plan_windows(windows[0][0], windows[-1][1], now=NOW + timedelta(hours=1))


def test_backfill_windows_entirely_before_what_the_api_keeps_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="window is empty"):
        backfill_windows(date(2024, 1, 1), date(2024, 12, 31), NOW)
