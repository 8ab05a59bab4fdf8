"""One writer at a time per lake, one run at a time per org: racing processes, waiting, crashed
and frozen holders, the heartbeat, re-entrancy and a crashed writer's litter - on a local lake
and on S3 (moto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warehouse_helpers import usage_table

from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.lease import (
    LEASE_NAME,
    Holder,
    LakeBusy,
    LeaseError,
    S3LeaseStore,
    s3_client_from_uri,
)

ROOT = Path(__file__).resolve().parents[2]
ORG_A = "83d65638-c295-4ef6-af1c-f71242ad0348"
ORG_B = "1c3f0000-0000-4000-8000-00000000000b"

#: Child processes: each script gets the lake URI as argv[1].
RACER = """
import contextlib, sys, time
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa
from circleci_analytics.connectors.schemas import PROJECTS
from circleci_analytics.warehouse import Lake
lake, tag, go = Lake(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
# With an org id (argv[4]): a run of that org, holding its lease (landing takes the lake's).
with lake.org_leases(sys.argv[4:], owner=tag) if sys.argv[4:] else contextlib.nullcontext():
    while not go.exists():
        time.sleep(0.01)
    at = datetime(2026, 5, 4, tzinfo=UTC)
    for i in range(100):
        row = {"project_id": f"{tag}-{i}", "project_slug": f"gh/acme/{tag}-{i}", "extracted_at": at}
        lake.land("projects", pa.Table.from_pylist([row], schema=PROJECTS))
"""

HOLDER = """
import sys, time
from circleci_analytics.warehouse import Lake
lake = Lake(sys.argv[1])
with lake.lease(owner=sys.argv[2], ttl_seconds=float(sys.argv[3])) as lease:
    print("held", flush=True)
    deadline = time.monotonic() + float(sys.argv[4])
    while time.monotonic() < deadline and not lease.lost:
        time.sleep(0.05)
    if lease.lost:
        try:
            lake.land("projects", lake.read("projects"))
        except Exception as e:
            print(type(e).__name__, e, flush=True)
            sys.exit(3)
"""

#: Holds org argv[2]'s lease for argv[3] seconds.
ORG_HOLDER = """
import sys, time
from circleci_analytics.warehouse import Lake
with Lake(sys.argv[1]).org_leases([sys.argv[2]], owner="nightly-org of " + sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""

KILLED_WRITER = """
import os, signal, sys
import pyarrow.parquet as pq
sys.path.insert(0, sys.argv[2])
from warehouse_helpers import usage_table
from circleci_analytics.warehouse import Lake
lake, real = Lake(sys.argv[1]), pq.write_table
def write_then_die(table, where, **kwargs):
    if lake.is_local:  # the temporary file is complete; killed before the rename
        real(table, where, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # on S3: killed before the PUT
pq.write_table = write_then_die
lake.land("usage_job_runs", usage_table(3, credits="7"))
"""


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_held(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()


@pytest.fixture(params=["local", "s3"])
def lake(request, lake_root) -> Iterator[Lake]:
    yield Lake(lake_root) if request.param == "local" else request.getfixturevalue("s3_lake")


def _record(lake: Lake) -> Holder:
    read = lake._lease_store().read()
    assert read is not None
    return Holder.from_json(read[0])


def _table_bytes(lake: Lake) -> dict[str, bytes]:
    return {f: lake.fs.open_input_stream(f).read() for f in lake.files("usage_job_runs")}


@pytest.mark.parametrize("orgs", [(), (ORG_A, ORG_B)], ids=["lake-lease", "org-leases"])
def test_racing_writers_keep_every_row(lake, tmp_path, orgs):
    go = tmp_path / "go"
    racers = [_spawn(RACER, lake.root, tag, str(go), *orgs[i : i + 1]) for i, tag in enumerate(("a", "b"))]
    go.touch()
    for p in racers:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    ids = lake.read("projects").column("project_id").to_pylist()
    assert len(ids) == 200
    assert set(ids) == {f"{t}-{i}" for t in "ab" for i in range(100)}


def test_second_writer_waits_then_fails_naming_the_holder(lake):
    holder = _spawn(HOLDER, lake.root, "nightly run-1", "120", "60")
    try:
        _wait_held(holder)
        t0 = time.monotonic()
        with pytest.raises(LakeBusy) as busy:
            with lake.lease(owner="manual run", wait_seconds=1.5):
                pass
        assert time.monotonic() - t0 >= 1.5
        message = str(busy.value)
        assert "'nightly run-1'" in message and f"pid {holder.pid}" in message and "since" in message
        assert busy.value.holder.owner == "nightly run-1" and busy.value.holder.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_second_writer_gets_the_lease_when_the_first_finishes(lake):
    holder = _spawn(HOLDER, lake.root, "backfill", "120", "1.0")
    _wait_held(holder)
    t0 = time.monotonic()
    with lake.lease(owner="next run", wait_seconds=60) as lease:
        assert time.monotonic() - t0 >= 0.5
        assert _record(lake).owner == "next run" and lease.holder.pid == os.getpid()
    assert holder.wait(timeout=30) == 0
    assert _record(lake).released


def test_heartbeat_keeps_a_long_run_holding_past_its_ttl(lake):
    # A ttl of seconds, not one: on a loaded CI machine the holder can stall for a second.
    holder = _spawn(HOLDER, lake.root, "long backfill", "2.5", "30")
    try:
        _wait_held(holder)
        first = _record(lake)
        with pytest.raises(LakeBusy, match="long backfill"):
            with lake.lease(owner="impatient", wait_seconds=7.5):  # three ttls
                pass
        renewed = _record(lake)
        assert renewed.token == first.token and renewed.expires_at > first.expires_at
    finally:
        holder.kill()
        holder.wait()


def test_crashed_holder_is_taken_over_and_its_litter_removed(lake, lake_root):
    lake.land("usage_job_runs", usage_table(3, credits="1"))
    before = _table_bytes(lake)
    writer = _spawn(KILLED_WRITER, lake.root, str(Path(__file__).parent))
    writer.wait(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    dead = _record(lake)
    assert dead.pid == writer.pid and not dead.released
    if lake.is_local:
        (part,) = lake.files("usage_job_runs")
        temps = [p.name for p in Path(part).parent.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1  # what the killed writer left
    # Its lease has not expired (ttl 120 s), but its process is gone: taken over at once.
    t0 = time.monotonic()
    with lake.lease(owner="next nightly", wait_seconds=5) as lease:
        assert time.monotonic() - t0 < 5
        assert lease.removed_temp_files == (1 if lake.is_local else 0)
    assert _table_bytes(lake) == before
    if lake.is_local:
        assert not [p for p in lake_root.rglob("*.tmp")]


def test_frozen_holder_expires_is_taken_over_and_cannot_write_after(lake):
    holder = _spawn(HOLDER, lake.root, "frozen run", "1.5", "60")
    try:
        _wait_held(holder)
        os.kill(holder.pid, signal.SIGSTOP)  # alive but silent: only the expiry frees the lake
        t0 = time.monotonic()
        with lake.lease(owner="rescuer", wait_seconds=30):
            assert 0.5 < time.monotonic() - t0 < 15
            os.kill(holder.pid, signal.SIGCONT)
            out, err = holder.communicate(timeout=60)
        assert holder.returncode == 3, err
        assert out.startswith("LeaseLost") and "taken over" in out
    finally:
        holder.kill()  # SIGKILL ends a stopped process too
        holder.wait()


def test_lease_is_reentrant_and_shared_by_threads(lake):
    with lake.lease(owner="outer run") as outer:
        token = _record(lake).token
        with Lake(lake.root).lease(owner="inner") as inner:
            assert inner is outer
        with ThreadPoolExecutor(2) as pool:  # a flow's tasks land from worker threads
            done = [pool.submit(lake.land, "usage_job_runs", usage_table(5, prefix=p)) for p in ("x", "y")]
            assert [f.result(timeout=30).rows_in for f in done] == [5, 5]
        record = _record(lake)
        assert (record.owner, record.token, record.released) == ("outer run", token, False)
    assert _record(lake).released
    assert lake.read("usage_job_runs").num_rows == 10


def test_unfinished_s3_uploads_of_partitions_are_aborted(s3_lake):
    store = s3_lake._lease_store()
    assert isinstance(store, S3LeaseStore)
    s3, bucket = store.client, store.bucket
    s3.create_multipart_upload(Bucket=bucket, Key="analytics/lake/usage_job_runs/org_id=x/date=2026-05-04/data.parquet")
    s3.create_multipart_upload(Bucket=bucket, Key="analytics/lake/_state/pipeline.json")
    with s3_lake.lease(owner="nightly") as lease:
        assert lease.removed_temp_files == 1
    left = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert left == ["analytics/lake/_state/pipeline.json"]
    s3.abort_multipart_upload(Bucket=bucket, Key=left[0],
                              UploadId=s3.list_multipart_uploads(Bucket=bucket)["Uploads"][0]["UploadId"])  # fmt: skip


def test_moto_honours_conditional_puts(s3_lake):
    """The S3 lease relies on If-None-Match / If-Match; the test store must enforce them."""
    store = s3_lake._lease_store()
    first = store.create(b"{}")
    assert first is not None and store.create(b"{}") is None
    second = store.swap(b"[]", first)
    assert second is not None and store.swap(b"{}", first) is None
    assert store.read() == (b"[]", second)


def test_lease_record_names_the_holder(lake_root):
    lake = Lake(lake_root)
    with lake.lease(owner="nightly 5b1e"):
        doc = json.loads((lake_root / LEASE_NAME).read_text())
        assert doc["owner"] == "nightly 5b1e" and doc["pid"] == os.getpid() and not doc["released"]
        assert datetime.fromisoformat(doc["since"]) < datetime.fromisoformat(doc["expires_at"])
    assert json.loads((lake_root / LEASE_NAME).read_text())["released"]


def test_a_held_lease_makes_land_free_of_lease_traffic(lake_root, monkeypatch):
    lake = Lake(lake_root)
    with lake.lease(owner="run"):
        calls = []
        store = lake._lease_store()
        for op in ("read", "create", "swap"):
            real = getattr(store, op)
            monkeypatch.setattr(store, op, lambda *a, _real=real, _op=op: calls.append(_op) or _real(*a))
        lake.land("usage_job_runs", usage_table(4))
        assert calls == []
    assert pq.read_table(lake.files("usage_job_runs")[0]).num_rows == 4


def test_the_lake_uri_options_configure_the_lease_client(s3_endpoint):
    client, bucket, prefix = s3_client_from_uri(
        f"s3://lake-bucket/a/b?endpoint_override={s3_endpoint}&scheme=http&region=eu-west-3"
    )
    assert (client.meta.endpoint_url, client.meta.region_name, bucket, prefix) == (
        f"http://{s3_endpoint}", "eu-west-3", "lake-bucket", "a/b")  # fmt: skip
    with pytest.raises(LeaseError, match=r"option\(s\) \['role_arn'\]"):
        s3_client_from_uri("s3://lake-bucket/a?role_arn=arn:aws:iam::1:role/x")


def test_housekeeping_failures_never_block_the_lease(lake_root, monkeypatch, caplog):
    lake = Lake(lake_root)

    def denied() -> int:
        raise PermissionError("listing denied")

    monkeypatch.setattr(lake, "remove_stale_temp_files", denied)
    with lake.lease(owner="nightly") as lease:
        assert lease.removed_temp_files == 0 and not lease.lost
    assert "listing denied" in caplog.text


# -- org leases --------------------------------------------------------------------------------
def test_an_org_lease_keeps_out_that_org_only(lake):
    holder = _spawn(ORG_HOLDER, lake.root, ORG_A, "60")
    try:
        _wait_held(holder)
        t0 = time.monotonic()
        with pytest.raises(LakeBusy) as busy:
            with lake.org_leases([ORG_B, ORG_A], owner="second run", wait_seconds=1):
                pass
        assert time.monotonic() - t0 >= 1
        assert f"nightly-org of {ORG_A}" in str(busy.value) and f"org {ORG_A}" in str(busy.value)
        assert busy.value.holder.pid == holder.pid
        # Another org's lease, and the lake's (landing), are free meanwhile.
        t0 = time.monotonic()
        with lake.org_leases([ORG_B], owner="org b run", wait_seconds=0):
            assert lake.land("usage_job_runs", usage_table(3, org=ORG_B)).rows_written == 3
        assert time.monotonic() - t0 < 30
    finally:
        holder.kill()
        holder.wait()
    # Its process is gone: the lease is free.
    with lake.org_leases([ORG_A], owner="next run", wait_seconds=5) as held:
        assert [lease.holder.owner for lease in held] == ["next run"]


def test_org_lease_records_sit_beside_the_lake_lease(lake_root):
    lake = Lake(lake_root)
    with lake.org_leases([ORG_A], owner="x"), lake.lease(owner="x"):
        pass
    names = sorted(p.name for p in Path(lake_root).iterdir() if p.is_file() and p.suffix == ".json")
    assert names == [".lease.json", f".lease.org_id={ORG_A}.json"]
