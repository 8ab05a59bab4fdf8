"""Pipeline state in the lake: the small JSON store and the per-org cursors, on a local
folder and on an object store (moto's S3 server on loopback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from circleci_analytics.flows.state import LakeStateStore, PipelineState
from circleci_analytics.warehouse import Lake


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture(params=["local", "s3"])
def lake(request) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


def test_store_get_put_exists(lake: Lake) -> None:
    store = LakeStateStore(lake)
    assert store.get("usage-export-org-1") is None
    assert not store.exists("usage-export-org-1")
    store.put("usage-export-org-1", b'{"job": 1}')
    assert store.exists("usage-export-org-1")
    assert store.get("usage-export-org-1") == b'{"job": 1}'
    store.put("usage-export-org-1", b'{"job": 2}')  # overwrite
    assert store.get("usage-export-org-1") == b'{"job": 2}'
    # A second store on the same lake (another worker) sees the same documents.
    assert LakeStateStore(lake).get("usage-export-org-1") == b'{"job": 2}'


def test_store_keys_with_separators_stay_inside_the_state_folder(lake: Lake) -> None:
    store = LakeStateStore(lake)
    key = "backfill-org/../x:2026-05-01T00:00:00"
    store.put(key, b"x")
    assert store.get(key) == b"x"
    assert store.exists(key) and not store.exists("backfill-org")
    assert "/" not in store._path(key)[len(store.base) + 1 :]


def test_local_store_leaves_no_temporary_files(local_lake: Lake, tmp_path) -> None:
    store = LakeStateStore(local_lake)
    for i in range(3):
        store.put("k", str(i).encode())
    assert [p.name for p in (tmp_path / "lake" / "_state").iterdir()] == ["k.json"]


def test_pipeline_state_round_trip(lake: Lake) -> None:
    store = LakeStateStore(lake)
    assert PipelineState.load(store, "org-1") == PipelineState("org-1")
    state = PipelineState(
        "org-1",
        usage_exported_until=datetime(2026, 6, 1, 12, tzinfo=UTC),
        history_start=datetime(2026, 5, 2, tzinfo=UTC),
        workflow_run_watermarks={("gh/acme/web", "build & test/e2e"): datetime(2026, 5, 31, 23, 1, 2, 345000, tzinfo=UTC)},
        jobs_without_tests={("gh/acme/web", 12): datetime(2026, 5, 30, 8, tzinfo=UTC)},
        names_without_tests={("gh/acme/web", "lint\tx"): datetime(2026, 5, 31, tzinfo=UTC)},
    )
    state.save(store)
    assert PipelineState.load(store, "org-1") == state
    # Per org: another org's state is separate.
    assert PipelineState.load(store, "org-2") == PipelineState("org-2")


def test_a_state_written_before_the_lake_recorded_landed_tests_keeps_its_no_test_names(local_lake: Lake) -> None:
    store = LakeStateStore(local_lake)
    store.put("pipeline-org-1", json.dumps({
        "org_id": "org-1", "usage_exported_until": "2026-06-01T12:00:00+00:00",
        "workflow_run_watermarks": {"gh/acme/web\tbuild": "2026-05-31T00:00:00+00:00"},
        "test_probe": {"seen": [["gh/acme/web", 12]],
                       "no_test_jobs": [{"project_slug": "gh/acme/web", "job_name": "lint",
                                         "last_probed_at": "2026-05-30T00:00:00+00:00"}]},
    }).encode())  # fmt: skip
    state = PipelineState.load(store, "org-1")
    assert state.workflow_run_watermarks == {("gh/acme/web", "build"): datetime(2026, 5, 31, tzinfo=UTC)}
    assert state.names_without_tests == {("gh/acme/web", "lint"): datetime(2026, 5, 30, tzinfo=UTC)}
    assert state.jobs_without_tests == {} and state.history_start is None  # "seen" is the lake's to say now


def test_prune_forgets_what_no_look_back_reaches() -> None:
    day = lambda d: datetime(2026, 5, d, tzinfo=UTC)  # noqa: E731
    state = PipelineState(
        "org-1",
        workflow_run_watermarks={("p", "old"): day(1), ("p", "new"): day(20)},
        jobs_without_tests={("p", 1): day(10), ("p", 2): day(25)},
        names_without_tests={("p", "lint"): day(15), ("p", "docs"): day(28)},
    )
    state.prune(tests_since=day(24), names_since=day(24), watermarks_since=day(2))
    assert state.jobs_without_tests == {("p", 2): day(25)}
    assert state.names_without_tests == {("p", "docs"): day(28)}
    assert state.workflow_run_watermarks == {("p", "new"): day(20)}
