"""State kept in the lake: the small JSON documents (`Lake.documents`) and the watermark store,
on a local folder and on an object store (moto's S3 server on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.state import Mark, Watermarks


def test_documents_get_put_exists(lake: Lake) -> None:
    store = lake.documents()
    assert store.get("usage-export-org-1") is None
    assert not store.exists("usage-export-org-1")
    store.put("usage-export-org-1", b'{"job": 1}')
    assert store.exists("usage-export-org-1")
    assert store.get("usage-export-org-1") == b'{"job": 1}'
    store.put("usage-export-org-1", b'{"job": 2}')  # overwrite
    assert store.get("usage-export-org-1") == b'{"job": 2}'
    # Another store on the same lake (another worker) sees the same documents.
    assert lake.documents().get("usage-export-org-1") == b'{"job": 2}'
    assert lake.documents("_other").get("usage-export-org-1") is None


def test_document_keys_with_separators_stay_inside_the_state_folder(lake: Lake) -> None:
    store = lake.documents()
    key = "backfill-org/../x:2026-05-01T00:00:00"
    store.put(key, b"x")
    assert store.get(key) == b"x"
    assert store.exists(key) and not store.exists("backfill-org")
    assert "/" not in store.path(key)[len(store.base) + 1 :]


def test_local_documents_leave_no_temporary_files(local_lake: Lake, tmp_path) -> None:
    store = local_lake.documents()
    for i in range(3):
        store.put("k", str(i).encode())
    assert [p.name for p in (tmp_path / "lake" / "_state").iterdir()] == ["k.json"]


T0 = datetime(2026, 5, 20, 9, tzinfo=UTC)


def test_watermarks_advance_per_stream_and_key_and_round_trip() -> None:
    marks = Watermarks()
    assert (
        marks.cursor("workflow_runs", ("p", "build")) is None and marks.read_at("workflow_runs", ("p", "build")) is None
    )
    marks.advance("workflow_runs", ("p", "build"), cursor=T0, read_at=T0 + timedelta(hours=1))
    marks.advance("workflow_runs", ("p", "build"), read_at=T0 + timedelta(days=1))  # a read that found nothing
    marks.advance("usage_job_runs", (), cursor=T0)
    marks.advance("workflow_summary", ("p", "a\tb"), read_at=T0)
    assert marks.get("workflow_runs", ("p", "build")) == Mark(T0, T0 + timedelta(days=1))
    assert marks.cursor("usage_job_runs", ()) == T0
    assert Watermarks.from_json(marks.to_json()) == marks
    assert list(marks.keys("workflow_runs")) == [("p", "build")]


def test_watermarks_update_takes_every_mark_of_another_store() -> None:
    mine, landed = Watermarks(), Watermarks()
    mine.advance("workflow_runs", ("p", "a"), cursor=T0, read_at=T0)
    mine.advance("workflow_runs", ("p", "b"), cursor=T0, read_at=T0)
    landed.advance("workflow_runs", ("p", "a"), cursor=T0 + timedelta(days=1), read_at=T0 + timedelta(days=1))
    mine.update(landed)
    assert mine.cursor("workflow_runs", ("p", "a")) == T0 + timedelta(days=1)
    assert mine.cursor("workflow_runs", ("p", "b")) == T0


def test_watermarks_prune_forgets_only_marks_older_than_the_bound() -> None:
    marks = Watermarks()
    marks.advance("workflow_runs", ("p", "old"), cursor=T0 - timedelta(days=100), read_at=T0 - timedelta(days=95))
    marks.advance("workflow_runs", ("p", "read-lately"), cursor=T0 - timedelta(days=100), read_at=T0)
    marks.advance("workflow_runs", ("p", "new"), cursor=T0)
    marks.advance("flaky_tests", ("p",), read_at=T0 - timedelta(days=100))
    marks.prune("workflow_runs", T0 - timedelta(days=90))
    assert sorted(marks.keys("workflow_runs")) == [("p", "new"), ("p", "read-lately")]
    assert list(marks.keys("flaky_tests")) == [("p",)]  # another stream's marks are left alone
