"""Pipeline state in the lake: the small JSON store and the per-org cursors, on a local
folder and on an object store (moto's S3 server on loopback)."""

from __future__ import annotations

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
        workflow_run_watermarks={"gh/acme/web\tbuild & test/e2e": datetime(2026, 5, 31, 23, 1, 2, 345000, tzinfo=UTC)},
        test_probe={"landed": ["gh/acme/web/12"], "no_tests": {"gh/acme/web\tlint": "2026-05-31"}},
    )
    state.save(store)
    assert PipelineState.load(store, "org-1") == state
    # Per org: another org's state is separate.
    assert PipelineState.load(store, "org-2") == PipelineState("org-2")
