"""Publishing to object storage (S3 API of moto's server on loopback): a build is uploaded, then
the pointer and the dashboard's entry page switch to it; a reader sees one whole build; old
builds are pruned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from circleci_analytics.warehouse import publish
from circleci_analytics.warehouse.publish import (
    POINTER,
    PublishError,
    default_publish_uri,
    fetch_warehouse,
    publish_build,
    publish_location,
    read_pointer,
)

BUCKET = "publish-bucket"


@pytest.fixture
def target(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """A publish URI in a fresh bucket, and a boto3 client on it."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    yield f"s3://{BUCKET}/ci/published?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1", s3
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3.delete_bucket(Bucket=BUCKET)


def _outputs(root: Path, tag: str) -> tuple[Path, Path]:
    """A stand-in warehouse file and dashboard folder whose contents say which build they are."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse = root / "warehouse.duckdb"
    warehouse.write_bytes(f"warehouse {tag}".encode() * 1000)
    dashboard = root / "dashboard"
    (dashboard / "data").mkdir(parents=True, exist_ok=True)
    (dashboard / "index.html").write_text(f"<html>{tag}</html>")
    (dashboard / "data" / "credits.json").write_text(f'{{"build": "{tag}"}}')
    return warehouse, dashboard


def _keys(s3, prefix: str = "ci/published/") -> set[str]:
    return {o["Key"].removeprefix(prefix) for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}


def _get(s3, key: str) -> tuple[bytes, str]:
    got = s3.get_object(Bucket=BUCKET, Key=f"ci/published/{key}")
    return got["Body"].read(), got["ContentType"]


def test_the_publish_location_is_a_sibling_of_an_s3_lake():
    assert default_publish_uri("s3://b/ci/lake?endpoint_override=h:1&scheme=http") == \
        "s3://b/ci/published?endpoint_override=h:1&scheme=http"  # fmt: skip
    assert default_publish_uri("s3://b/lake/") == "s3://b/published"
    assert default_publish_uri("s3://b") == "s3://b/published"
    assert default_publish_uri("data/lake") is None
    assert publish_location(None, "data/lake") is None
    assert publish_location("s3://other/x", "s3://b/lake") == "s3://other/x"


def test_a_build_is_published_then_switched_to(target, tmp_path):
    uri, s3 = target
    warehouse, dashboard = _outputs(tmp_path / "one", "one")
    first = publish_build(uri, warehouse, dashboard)
    assert read_pointer(uri) == first
    assert {POINTER, "index.html", first.warehouse, first.dashboard,
            first.dashboard.replace("index.html", "data/credits.json")} == _keys(s3)  # fmt: skip
    page, content_type = _get(s3, "index.html")
    assert content_type == "text/html" and f'url={first.dashboard}"'.encode() in page
    assert _get(s3, first.dashboard) == (b"<html>one</html>", "text/html")
    fetched = fetch_warehouse(uri, tmp_path / "copy" / "w.duckdb")
    assert fetched == first and (tmp_path / "copy" / "w.duckdb").read_bytes() == warehouse.read_bytes()

    warehouse, dashboard = _outputs(tmp_path / "two", "two")
    second = publish_build(uri, warehouse, dashboard)
    assert second.build_id > first.build_id and read_pointer(uri) == second
    fetch_warehouse(uri, tmp_path / "copy" / "w.duckdb")
    assert (tmp_path / "copy" / "w.duckdb").read_bytes() == warehouse.read_bytes()
    assert f'url={second.dashboard}"'.encode() in _get(s3, "index.html")[0]
    # The previous build stays readable (a reader may have read the old pointer just before).
    assert _get(s3, first.warehouse)[0] == (tmp_path / "one" / "warehouse.duckdb").read_bytes()


def test_a_failed_upload_leaves_the_previous_build_current(target, tmp_path, monkeypatch):
    uri, s3 = target
    first = publish_build(uri, *_outputs(tmp_path / "one", "one"))
    real_put = publish._put

    def connection_lost_on_the_last_data_file(fs, path, data):
        if path.endswith("credits.json"):
            raise OSError("connection reset")
        real_put(fs, path, data)

    monkeypatch.setattr(publish, "_put", connection_lost_on_the_last_data_file)
    with pytest.raises(OSError, match="connection reset"):
        publish_build(uri, *_outputs(tmp_path / "two", "two"))
    assert read_pointer(uri) == first
    assert f'url={first.dashboard}"'.encode() in _get(s3, "index.html")[0]
    fetch_warehouse(uri, tmp_path / "w.duckdb")
    assert (tmp_path / "w.duckdb").read_bytes() == (tmp_path / "one" / "warehouse.duckdb").read_bytes()


def test_only_the_newest_builds_are_kept(target, tmp_path):
    uri, s3 = target
    builds = [publish_build(uri, *_outputs(tmp_path / str(i), str(i)), keep=2) for i in range(4)]
    kept = {key.split("/")[1] for key in _keys(s3) if key.startswith("builds/")} - {""}  # "builds/": a folder marker
    assert kept == {b.build_id for b in builds[-2:]}
    assert read_pointer(uri) == builds[-1]


def test_nothing_published_is_a_clear_error(target, tmp_path):
    uri, _ = target
    with pytest.raises(PublishError, match="nothing is published"):
        fetch_warehouse(uri, tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()
    with pytest.raises(PublishError, match="only s3://"):
        read_pointer("gs://bucket/x")
