"""The run summary: its status and the markdown artifact."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from circleci_analytics.flows import RunSummary


def summary(**kw) -> RunSummary:
    return RunSummary("nightly", ["gh/acme"], lake_root="data/lake", warehouse_path="data/w.duckdb", **kw)


def test_status_success_partial_failed() -> None:
    assert summary().status == "success"
    assert summary(unknown_projects=["gh/acme/x"]).status == "partial"
    assert summary(failed_projects={"gh/acme/y": "ServerError: boom"}).status == "partial"
    # Failed data tests win over missing projects.
    assert summary(failed_projects={"gh/acme/y": "e"}, data_tests_failed=["t1"]).status == "failed"


def test_add_rows_accumulates_per_table() -> None:
    s = summary()
    s.add_rows({"projects": 3, "workflow_runs": 10})
    s.add_rows({"workflow_runs": 5})
    assert s.rows_landed == {"projects": 3, "workflow_runs": 15}


def test_timed_adds_up_per_step() -> None:
    s = summary()
    for _ in range(2):
        with s.timed("land"):
            pass
    with s.timed("build"):
        pass
    assert list(s.timings) == ["land", "build"] and all(v >= 0 for v in s.timings.values())


def test_markdown_of_a_successful_run() -> None:
    s = summary(rows_landed={"usage_job_runs": 12345, "projects": 3}, data_tests=10, models_built=20,
                api_calls={"total_calls": 1234}, seconds=12.34, dashboard_path="data/dashboard/index.html",
                highlights={"as_of_date": date(2026, 5, 31), "day_credits": 1500.5, "day_usd": 0.9,
                            "mtd_credits": 4000.0, "forecast_credits": 5000.0, "flaky_tests": 4,
                            "new_flaky_tests": 1, "mttr_last_7d_seconds": 600.0, "mttr_change_pct": -25.0})  # fmt: skip
    md = s.markdown()
    assert md.splitlines()[0] == "# ✅ nightly: success"
    assert "Projects not updated" not in md
    assert "| data as of | 2026-05-31 |" in md
    assert "| credits on 2026-05-31 | 1,500.50 ($0.90) |" in md
    assert "| month to date / forecast | 4,000 / 5,000 credits |" in md
    assert "| 4 / 1 |" in md
    assert "| MTTR, last 7 days | 10.0 min (-25% vs the 7 days before) |" in md
    assert "| data tests | 10/10 passed |" in md
    assert "| `usage_job_runs` | 12,345 |" in md
    assert md.index("`projects`") < md.index("`usage_job_runs`")  # tables sorted
    assert "- dashboard: `data/dashboard/index.html`" in md
    assert "API calls: 1,234; wall time 12.3 s" in md


def test_markdown_of_a_partial_and_failed_run() -> None:
    s = summary(
        failed_projects={"gh/acme/api": "ServerError: GET /x -> HTTP 500"},
        unknown_projects=["gh/acme/gone"],
        quarantined_rows=2,
        unknown_columns=["NEW_COL"],
        data_tests=5,
    )
    md = s.markdown()
    assert md.startswith("# ⚠️ nightly: partial")
    heals, attention = md.index("**Heals on the next run**"), md.index("**Needs attention**")
    assert (
        heals < md.index("- project `gh/acme/api`: ServerError: GET /x -> HTTP 500 (its cursors were kept") < attention
    )
    assert attention < md.index("- `gh/acme/gone`: not found or not visible to the token")
    assert attention < md.index("- 2 malformed usage-export rows quarantined")
    assert "NEW_COL" in md
    s.data_tests_failed = ["unique_fct_job_runs_job_id"]
    md = s.markdown()
    assert md.startswith("# ❌ nightly: failed")
    assert "| data tests | 4/5 passed |" in md
    assert "**Failed data tests:** unique_fct_job_runs_job_id" in md
    assert "dashboard:" not in md  # not rendered


@pytest.mark.parametrize("missed", [
    {"failed_org_calls": {"org summaries of gh/acme": "ServerError: HTTP 502"}},
    {"tests_jobs_failed": 1},
    {"quarantined_rows": 1},
    {"unknown_projects": ["gh/acme/gone"]},
    {"failed_projects": {"gh/acme/api": "NotFound"}},
])  # fmt: skip
def test_anything_missed_makes_the_run_partial_and_is_named(missed) -> None:
    s = summary(**missed)
    assert s.status == "partial"
    (reason,) = s.partial_reasons()
    assert reason.startswith("1 ")
    assert "✅" not in s.markdown()


def test_probes_are_counted_with_a_few_examples() -> None:
    import pyarrow as pa

    from circleci_analytics.connectors import Extract, JobTestsResult, ProbeState

    def result(failed: list, skipped: dict) -> JobTestsResult:
        return JobTestsResult(
            Extract("job_tests", pa.table({}), datetime(2026, 6, 1, tzinfo=UTC)), ProbeState(), skipped, 5, failed
        )

    s = summary()
    s.add_probes(result([("gh/a", n, "NotFound: 404") for n in range(4)], {"seen": 2, "known_without_tests": 1}),
                 left_out={"landed_before": 7, "known_without_tests": 4}, deferred=3)  # fmt: skip
    s.add_probes(result([("gh/b", 9, "ServerError: 500")], {"excluded": 1}))
    assert s.tests_jobs_probed == 10 and s.tests_jobs_failed == 5 and s.tests_jobs_deferred == 3
    assert s.tests_jobs_skipped == {"known_without_tests": 7, "landed_before": 7, "excluded": 1}
    assert s.tests_failures == ["gh/a job 0: NotFound: 404", "gh/a job 1: NotFound: 404", "gh/a job 2: NotFound: 404"]
    md = s.markdown()
    assert "5 test-metadata probes failed" in md and "gh/a job 0: NotFound: 404" in md
    assert "3 jobs of the failed projects were not probed" in md
    assert s.partial_reasons() == ["5 test-metadata probe(s) failed"]
