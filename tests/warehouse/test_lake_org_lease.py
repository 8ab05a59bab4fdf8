"""An organisation's lease: one run per org, while runs of different orgs extract at once and
land one call at a time under the lake's lease - on a local lake and on S3 (moto)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from warehouse_helpers import usage_table

from circleci_analytics.warehouse import Lake
from circleci_analytics.warehouse.lease import LakeBusy

ROOT = Path(__file__).resolve().parents[2]
ORG_A = "83d65638-c295-4ef6-af1c-f71242ad0348"
ORG_B = "1c3f0000-0000-4000-8000-00000000000b"

#: Holds org argv[2]'s lease for argv[3] seconds.
ORG_HOLDER = """
import sys, time
from circleci_analytics.warehouse import Lake
with Lake(sys.argv[1]).org_leases([sys.argv[2]], owner="nightly-org of " + sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""

#: Holds org argv[2]'s lease and lands rows of it into a shared table and the org's own
#: partitions, racing another process doing the same for another org.
ORG_RACER = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, sys.argv[4])
from warehouse_helpers import usage_table
from circleci_analytics.connectors.schemas import PROJECTS
from circleci_analytics.warehouse import Lake
lake, org, go = Lake(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with lake.org_leases([org], owner="nightly-org " + org):
    while not go.exists():
        time.sleep(0.01)
    at = datetime(2026, 5, 4, tzinfo=UTC)
    for i in range(40):
        row = {"project_id": f"{org}-{i}", "project_slug": f"gh/acme/{org}-{i}", "extracted_at": at}
        lake.land("projects", pa.Table.from_pylist([row], schema=PROJECTS))
        lake.land("usage_job_runs", usage_table(2, org=org, prefix=f"{org}-{i}"))
"""


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.fixture(params=["local", "s3"])
def lake(request, lake_root) -> Iterator[Lake]:
    yield Lake(lake_root) if request.param == "local" else request.getfixturevalue("s3_lake")


def test_an_org_lease_keeps_out_that_org_only(lake):
    holder = _spawn(ORG_HOLDER, lake.root, ORG_A, "60")
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
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


def test_runs_of_two_orgs_landing_at_once_keep_every_row(lake, tmp_path):
    go = tmp_path / "go"
    here = str(Path(__file__).resolve().parent)
    racers = [_spawn(ORG_RACER, lake.root, org, str(go), here) for org in (ORG_A, ORG_B)]
    time.sleep(1)
    go.touch()
    for p in racers:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    ids = lake.read("projects").column("project_id").to_pylist()
    assert sorted(ids) == sorted(f"{org}-{i}" for org in (ORG_A, ORG_B) for i in range(40))
    usage = lake.read("usage_job_runs")
    assert usage.num_rows == 2 * 40 * 2
    assert sorted(set(usage.column("organization_id").to_pylist())) == sorted([ORG_A, ORG_B])


def test_org_lease_records_sit_beside_the_lake_lease(lake_root):
    lake = Lake(lake_root)
    with lake.org_leases([ORG_A], owner="x"), lake.lease(owner="x"):
        pass
    names = sorted(p.name for p in Path(lake_root).iterdir() if p.is_file() and p.suffix == ".json")
    assert names == [".lease.json", f".lease.org_id={ORG_A}.json"]
