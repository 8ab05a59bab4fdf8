"""Pipeline state in the lake: the small JSON store and the per-org cursors, on a local
folder and on an object store (moto's S3 server on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from flows.state import LakeStateStore, PipelineState
from warehouse import Lake


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_lake(s3_endpoint, monkeypatch) -> Iterator[Lake]:
    boto3 = pytest.importorskip("boto3")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="state-bucket")
    yield Lake(f"s3://state-bucket/lake?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")
    for obj in s3.list_objects_v2(Bucket="state-bucket").get("Contents", []):
        s3.delete_object(Bucket="state-bucket", Key=obj["Key"])
    s3.delete_bucket(Bucket="state-bucket")


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
