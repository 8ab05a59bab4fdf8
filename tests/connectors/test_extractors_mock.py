"""Extractors against canned responses (httpx.MockTransport): parsing, params, schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa
import pytest
from connector_helpers import run

from circleci_analytics.connectors import (
    SCHEMAS,
    STREAMS,
    DataError,
    JobRef,
    ProbeState,
    extract_flaky_tests,
    extract_job_tests,
    extract_org_summary,
    extract_projects,
    extract_test_metrics,
    extract_workflow_metrics,
    extract_workflow_runs,
)
from circleci_analytics.connectors.insights import run_windows
from circleci_analytics.connectors.streams import build_table

SLUG = "gh/acme/api"
DM = {"min": 1, "mean": 2, "median": 2, "p95": 4, "max": 5, "standard_deviation": 1.5}


def _go(make_client, handler, fn, *args, **kwargs):
    async def go():
        async with make_client(handler) as client:
            return await fn(client, *args, **kwargs)

    return run(go())


def test_every_stream_has_a_schema_with_extracted_at_and_utc_timestamps():
    assert set(STREAMS) == set(SCHEMAS)
    for name, spec in STREAMS.items():
        assert spec.schema.field("extracted_at").type == pa.timestamp("us", tz="UTC"), name
        for col in spec.primary_key:
            assert col in spec.schema.names, (name, col)
        for fld in spec.schema:
            assert fld.name == fld.name.lower() and "-" not in fld.name
            if pa.types.is_timestamp(fld.type):
                assert fld.type.tz == "UTC" and fld.type.unit == "us"


@pytest.mark.parametrize("style", ["snake", "kebab"])
def test_flaky_tests_both_key_styles(make_client, style):
    item = {
        "test_name": "test_login",
        "classname": "auth.LoginTest",
        "file": "",
        "source": None,
        "job_name": "unit",
        "job_number": 42,
        "workflow_name": "build",
        "workflow_id": "wf-1",
        "workflow_created_at": "2026-05-01T10:00:00Z",
        "pipeline_number": 7,
        "times_flaked": 3,
    }
    body = {"flaky_tests": [item], "total_flaky_tests": 1}
    if style == "kebab":
        body = {
            "flaky-tests": [{k.replace("_", "-"): v for k, v in item.items()} | {"time-wasted": 90}],
            "total-flaky-tests": 1.0,
        }
    ext = _go(make_client, lambda r: httpx.Response(200, json=body), extract_flaky_tests, SLUG)
    row = ext.table.to_pylist()[0]
    assert row["test_name"] == "test_login" and row["job_number"] == 42 and row["times_flaked"] == 3
    assert row["file"] is None and row["source"] is None  # "" and null both land as null
    assert row["workflow_created_at"] == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert row["time_wasted_seconds"] == (90 if style == "kebab" else None)
    assert ext.table.schema == SCHEMAS["flaky_tests"]


def test_workflow_metrics_scope_params_and_nullables(make_client):
    seen: list[httpx.QueryParams] = []

    def handler(request):
        seen.append(request.url.params)
        item = {
            "name": "build",
            "project_id": "p1",
            "window_start": "2026-03-01T00:00:00.123Z",
            "window_end": "2026-06-01T00:00:00Z",
            "metrics": {
                "total_runs": 10,
                "successful_runs": 8,
                "failed_runs": 2,
                "mttr": None,
                "total_credits_used": None,
                "total_recoveries": None,
                "success_rate": 0.8,
                "throughput": 0.1,
                "duration_metrics": DM | {"max": None},
            },
        }
        return httpx.Response(200, json={"items": [item], "next_page_token": None})

    ext = _go(make_client, handler, extract_workflow_metrics, SLUG, scope="all-branches", reporting_window="last-30-days")
    assert seen[0]["all-branches"] == "true" and seen[0]["reporting-window"] == "last-30-days"
    assert "branch" not in seen[0]
    row = ext.table.to_pylist()[0]
    assert row["mttr_seconds"] is None and row["duration_max_seconds"] is None
    assert row["duration_p95_seconds"] == 4 and row["success_rate"] == 0.8
    assert ext.scope == "all-branches" and ext.reporting_window == "last-30-days"

    seen.clear()
    _go(make_client, handler, extract_workflow_metrics, SLUG, scope="default-branch")
    assert "branch" not in seen[0] and "all-branches" not in seen[0]
    seen.clear()
    _go(make_client, handler, extract_workflow_metrics, SLUG, scope="release/1.0")
    assert seen[0]["branch"] == "release/1.0"


def test_workflow_runs_incremental_windows(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        start = request.url.params["start-date"]
        run_id = f"run-{start}"
        item = {
            "id": run_id,
            "branch": "main",
            "duration": 100,
            "created_at": start,
            "stopped_at": None,
            "credits_used": 5,
            "status": "success",
            "is_approval": False,
        }
        return httpx.Response(200, json={"items": [item], "next_page_token": None})

    watermark = now - timedelta(days=200)
    ext = _go(
        make_client, handler, extract_workflow_runs, SLUG, "deploy/prod", watermark=watermark, now=now
    )
    starts = [datetime.fromisoformat(r.url.params["start-date"]) for r in seen]
    ends = [datetime.fromisoformat(r.url.params["end-date"]) for r in seen]
    assert starts[0] == watermark - timedelta(days=2)
    assert ends[-1] == now
    assert all(e - s <= timedelta(days=90) for s, e in zip(starts, ends, strict=True))
    assert all(starts[i + 1] == ends[i] for i in range(len(seen) - 1))
    assert len(seen) == 3  # 202 days -> 90 + 90 + 22
    assert b"/workflows/deploy%2Fprod" in seen[0].url.raw_path
    assert seen[0].url.params["all-branches"] == "true"
    assert ext.watermark == max(starts)
    assert ext.num_rows == 3


def test_run_windows_empty_when_start_not_before_end():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert run_windows(t, t) == []


def test_org_summary_repeats_project_names(make_client):
    seen = []
    body = {
        "org_data": {
            "metrics": {"total_runs": 5, "total_duration_secs": 50, "total_credits_used": 9, "success_rate": 1.0, "throughput": 2.0},
            "trends": {"total_runs": 1.0, "total_duration_secs": 1.0, "total_credits_used": 1.0, "success_rate": 1.0, "throughput": 1.0},
        },
        "org_project_data": [
            {
                "project_name": "api",
                "metrics": {"total_runs": 5, "total_duration_secs": 50, "total_credits_used": 9, "success_rate": 1.0},
                "trends": {"total_runs": 1.0, "total_duration_secs": 1.0, "total_credits_used": 1.0, "success_rate": 1.0},
            }
        ],
        "all_projects": ["api", "web"],
    }

    def handler(request):
        seen.append(request.url)
        return httpx.Response(200, json=body)

    out = _go(make_client, handler, extract_org_summary, "gh/acme", "last-7-days", project_names=["api", "web"])
    assert seen[0].params.get_list("project-names") == ["api", "web"]
    assert seen[0].raw_path.startswith(b"/api/v2/insights/gh/acme/summary")
    assert out.org.table.to_pylist()[0]["total_credits_used"] == 9
    assert out.org.table.to_pylist()[0]["all_projects"] == ["api", "web"]
    assert out.projects.table.column("project_name").to_pylist() == ["api"]


def test_test_metrics_optional_fields(make_client):
    body = {
        "average_test_count": 3,
        "most_failed_tests": [{"failed_runs": 2, "job_name": "unit", "p95_duration": None, "test_name": "t1", "total_runs": 10, "flaky": True}],
        "most_failed_tests_extra": 0,
        "slowest_tests": [],
        "slowest_tests_extra": 0,
        "total_test_runs": 10,
        "test_runs": [{"pipeline_number": 1, "workflow_id": "w", "success_rate": 0.5, "test_counts": {"error": 0, "failure": 1, "skipped": 0, "success": 1, "total": 2}}],
    }
    out = _go(make_client, lambda r: httpx.Response(200, json=body), extract_test_metrics, SLUG, "build")
    row = out.tests.table.to_pylist()[0]
    assert row["classname"] is None and row["flaky"] is True and row["category"] == "most_failed"
    assert out.runs.table.to_pylist()[0]["tests_failure"] == 1


def test_projects_resolution(make_client):
    def handler(request):
        assert request.url.raw_path == b"/api/v2/project/circleci/ORG1/PRJ1"
        return httpx.Response(
            200,
            json={
                "id": "uuid-1",
                "name": "api",
                "slug": "circleci/ORG1/PRJ1",
                "organization_id": "org-uuid",
                "organization_name": "acme",
                "organization_slug": "circleci/ORG1",
                "vcs_info": {"vcs_url": "https://github.com/acme/api", "provider": "GitHub", "default_branch": "main"},
            },
        )

    ext = _go(make_client, handler, extract_projects, ["circleci/ORG1/PRJ1"])
    row = ext.table.to_pylist()[0]
    assert row["project_id"] == "uuid-1" and row["default_branch"] == "main" and row["org_id"] == "org-uuid"


def test_build_table_rejects_null_in_required_column():
    with pytest.raises(DataError, match="workflow_id"):
        build_table("workflow_runs", [{"project_slug": "x", "workflow_name": "w", "workflow_id": None,
                                       "created_at": datetime.now(UTC), "scope": "s", "extracted_at": datetime.now(UTC)}])


# -- job tests selection ---------------------------------------------------------------------
def _tests_handler(calls):
    def handler(request):
        number = int(request.url.path.rstrip("/").split("/")[-2])
        calls.append(number)
        if number == 404:
            return httpx.Response(404, json={"message": "Not Found"})
        if number % 2:  # odd jobs have no tests
            return httpx.Response(200, json={"items": [], "next_page_token": None})
        page = request.url.params.get("page-token")
        if page is None:
            items = [{"message": None, "source": "junit", "run_time": 0.5, "file": "a.py", "result": "success", "name": "t1", "classname": "A"}]
            return httpx.Response(200, json={"items": items, "next_page_token": "p2"})
        items = [{"message": "boom", "source": "junit", "run_time": 1, "file": "a.py", "result": "failure", "name": "t2", "classname": "A"}]
        return httpx.Response(200, json={"items": items, "next_page_token": None})

    return handler


def test_job_tests_selection_and_state(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    jobs = [
        # a re-run workflow (listed first, newest first) shares job 2 with the original
        JobRef(SLUG, 2, "unit", workflow_id="w2-rerun", pipeline_id="p1", workflow_created_at=now - timedelta(hours=1)),
        JobRef(SLUG, 2, "unit", workflow_id="w1", pipeline_id="p1", workflow_created_at=now - timedelta(hours=2)),
        JobRef(SLUG, None, "hold", job_type="approval"),
        JobRef(SLUG, None, "build"),
        JobRef(SLUG, 3, "lint"),  # no tests -> learned
        JobRef(SLUG, 4, "unit"),  # already seen
        JobRef(SLUG, 6, "deploy-prod"),  # excluded
        JobRef(SLUG, 8, "unit", job_status="running"),
        JobRef(SLUG, 404, "unit"),
        JobRef(SLUG, 5, "docs"),  # known without tests, probed recently
    ]
    state = {"seen": [[SLUG, 4]], "no_test_jobs": [{"project_slug": SLUG, "job_name": "docs", "last_probed_at": "2026-05-30T00:00:00+00:00"}]}
    calls: list[int] = []
    result = _go(make_client, _tests_handler(calls), extract_job_tests, jobs, state=state, exclude=["deploy-*"], now=now)
    assert sorted(set(calls)) == [2, 3, 404]
    assert result.skipped == {
        "duplicate_job_number": 1,
        "approval": 1,
        "no_job_number": 1,
        "seen": 1,
        "excluded": 1,
        "not_finished": 1,
        "known_without_tests": 1,
    }
    rows = result.extract.table.to_pylist()
    assert [(r["job_number"], r["name"], r["workflow_id"]) for r in rows] == [(2, "t1", "w1"), (2, "t2", "w1")]
    assert rows[1]["run_time_seconds"] == 1.0 and rows[1]["message"] == "boom"
    assert result.failed and result.failed[0][1] == 404
    new = result.state
    assert (SLUG, 2) in new.seen and (SLUG, 3) in new.seen and (SLUG, 404) not in new.seen
    assert new.no_test_jobs[(SLUG, "lint")] == now
    assert state["seen"] == [[SLUG, 4]]  # input not mutated
    # round trip through plain data
    assert ProbeState.from_dict(new.to_dict()) == new


def test_job_tests_reprobe_after_interval(make_client):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    state = ProbeState(no_test_jobs={(SLUG, "docs"): now - timedelta(days=8), (SLUG, "lint"): now - timedelta(days=1)})
    calls: list[int] = []
    jobs = [JobRef(SLUG, 10, "docs"), JobRef(SLUG, 12, "lint")]
    result = _go(make_client, _tests_handler(calls), extract_job_tests, jobs, state=state, now=now)
    assert calls == [10, 10]  # docs re-probed (2 pages), lint still skipped
    assert (SLUG, "docs") not in result.state.no_test_jobs  # job 10 had tests
    assert result.skipped == {"known_without_tests": 1}


def test_job_tests_include_patterns(make_client):
    calls: list[int] = []
    jobs = [JobRef(SLUG, 2, "test-unit"), JobRef(SLUG, 12, "build")]
    result = _go(make_client, _tests_handler(calls), extract_job_tests, jobs, include=["test-*"])
    assert set(calls) == {2} and result.skipped == {"not_included": 1}
