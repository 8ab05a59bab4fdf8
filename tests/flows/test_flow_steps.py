"""The pipeline's plain step functions (no Prefect): windows, job refs, landing, projects."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import httpx
import pyarrow as pa
import pytest
from flow_helpers import NO_LIMITS, NOW, TOKEN, make_sim

from circleci_analytics.connectors import CircleCIClient, Extract, NotFound, extract_projects
from circleci_analytics.flows import backfill_windows
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.steps import (
    PipelineConfig,
    discover_project_slugs,
    job_refs_from_usage,
    land_extracts,
    resolve_projects,
    usage_window,
)
from circleci_analytics.simulator import Simulator, create_app
from circleci_analytics.warehouse import Lake

UNKNOWN = "gh/acme-robotics/no-such-project"


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return make_sim()


def call(sim: Simulator, fn, *args):
    """Run `fn(client, *args)` against the in-process simulator."""

    async def go():
        transport = httpx.ASGITransport(app=create_app(sim))
        async with CircleCIClient(TOKEN, "http://sim/api/v2", transport=transport, rate_limits=NO_LIMITS) as client:
            return await fn(client, *args)

    return asyncio.run(go())


# -- usage_window ----------------------------------------------------------------------------
def cfg(**changes) -> PipelineConfig:
    return PipelineConfig(org_id="org", org_slug="gh/acme", now=datetime(2026, 6, 1, 12, 30, tzinfo=UTC), **changes)


def test_usage_window_first_run_uses_the_initial_lookback_from_midnight() -> None:
    c = cfg(initial_lookback_days=30)
    assert usage_window(PipelineState("org"), c) == (datetime(2026, 5, 2, tzinfo=UTC), c.now)


def test_usage_window_later_runs_start_at_the_cursor_minus_the_overlap() -> None:
    state = PipelineState("org", usage_exported_until=datetime(2026, 5, 31, 3, 15, tzinfo=UTC))
    c = cfg(overlap_days=2, initial_lookback_days=30)
    assert usage_window(state, c) == (datetime(2026, 5, 29, tzinfo=UTC), c.now)


def test_usage_window_explicit_start_wins() -> None:
    state = PipelineState("org", usage_exported_until=datetime(2026, 5, 31, tzinfo=UTC))
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


def test_discover_project_slugs_finds_the_orgs_vcs_projects(sim: Simulator) -> None:
    found = call(sim, discover_project_slugs, sim.org.slug)
    vcs = {p.slug for p in sim.projects if p.slug.startswith(sim.org.slug + "/")}
    assert vcs and set(found) >= vcs
    assert found == sorted(found)


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


def test_backfill_windows_refuses_more_than_13_months() -> None:
    with pytest.raises(ValueError, match="13 months"):
        backfill_windows(date(2025, 1, 1), date(2026, 5, 31), NOW)
