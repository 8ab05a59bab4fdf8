"""The per-org pipeline state in the lake: its watermarks, history start and test answers
round-trip, documents of earlier versions are read, and pruning keeps what a look-back uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from circleci_analytics.flows.state import PipelineState
from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.state import Watermarks


def test_pipeline_state_round_trip(lake: Lake) -> None:
    store = lake.documents()
    assert PipelineState.load(store, "org-1") == PipelineState("org-1")
    marks = Watermarks()
    marks.advance("workflow_runs", ("gh/acme/web", "build & test/e2e"),
                  cursor=datetime(2026, 5, 31, 23, 1, 2, 345000, tzinfo=UTC), read_at=datetime(2026, 6, 1, tzinfo=UTC))  # fmt: skip
    marks.advance("workflow_summary", ("gh/acme/web", "lint\tx"), read_at=datetime(2026, 5, 28, tzinfo=UTC))
    state = PipelineState(
        "org-1",
        history_start=datetime(2026, 5, 2, tzinfo=UTC),
        watermarks=marks,
        jobs_without_tests={("gh/acme/web", 12): datetime(2026, 5, 30, 8, tzinfo=UTC)},
        names_without_tests={("gh/acme/web", "lint\tx"): datetime(2026, 5, 31, tzinfo=UTC)},
    )
    state.usage_exported_until = datetime(2026, 6, 1, 12, tzinfo=UTC)
    state.save(store)
    loaded = PipelineState.load(store, "org-1")
    assert loaded == state and loaded.usage_exported_until == datetime(2026, 6, 1, 12, tzinfo=UTC)
    # Per org: another org's state is separate.
    assert PipelineState.load(store, "org-2") == PipelineState("org-2")


def test_a_state_written_by_an_earlier_version_keeps_its_cursors_and_no_test_names(local_lake: Lake) -> None:
    store = local_lake.documents()
    store.put("pipeline-org-1", json.dumps({
        "org_id": "org-1", "usage_exported_until": "2026-06-01T12:00:00+00:00",
        "workflow_run_watermarks": {"gh/acme/web\tbuild": "2026-05-31T00:00:00+00:00"},
        "test_probe": {"seen": [["gh/acme/web", 12]],
                       "no_test_jobs": [{"project_slug": "gh/acme/web", "job_name": "lint",
                                         "last_probed_at": "2026-05-30T00:00:00+00:00"}]},
    }).encode())  # fmt: skip
    state = PipelineState.load(store, "org-1")
    assert state.watermarks.cursor("workflow_runs", ("gh/acme/web", "build")) == datetime(2026, 5, 31, tzinfo=UTC)
    assert state.usage_exported_until == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert state.names_without_tests == {("gh/acme/web", "lint"): datetime(2026, 5, 30, tzinfo=UTC)}
    assert state.jobs_without_tests == {} and state.history_start is None  # "seen" is the lake's to say now


def test_prune_forgets_what_no_look_back_reaches() -> None:
    day = lambda d: datetime(2026, 5, d, tzinfo=UTC)  # noqa: E731
    state = PipelineState(
        "org-1",
        jobs_without_tests={("p", 1): day(10), ("p", 2): day(25)},
        names_without_tests={("p", "lint"): day(15), ("p", "docs"): day(28)},
    )
    state.watermarks.advance("workflow_runs", ("p", "old"), cursor=day(1), read_at=day(1))
    state.watermarks.advance("workflow_runs", ("p", "new"), cursor=day(20), read_at=day(20))
    state.watermarks.advance("workflow_summary", ("p", "old"), read_at=day(1))
    state.usage_exported_until = day(1)
    state.prune(tests_since=day(24), names_since=day(24), watermarks_since=day(2))
    assert state.jobs_without_tests == {("p", 2): day(25)}
    assert state.names_without_tests == {("p", "docs"): day(28)}
    assert list(state.watermarks.keys("workflow_runs")) == [("p", "new")]
    assert list(state.watermarks.keys("workflow_summary")) == []
    assert state.usage_exported_until == day(1)  # the usage export's cursor is never pruned
