"""Two runs never write one lake at once: a nightly or backfill finding the lake held by another
run waits `lease_wait_seconds`, then fails naming the holder, having written nothing; once the
holder is done, the next run goes through."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from flow_helpers import TOKEN, make_sim, run_backfill, run_nightly

from circleci_analytics.simulator.server import running_server
from circleci_analytics.warehouse import Lake

pytestmark = pytest.mark.xdist_group("prefect")

HOLDER = """
import sys, time
from circleci_analytics.warehouse import Lake
lake = Lake(sys.argv[1])
with lake.org_leases(sys.argv[3:], owner="a manual backfill") if sys.argv[3:] else lake.lease(owner="a manual backfill"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(lake_root: Path, seconds: float, *org_ids: str) -> subprocess.Popen:
    """Another process holding the lake's writer lease (or these orgs' leases) for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lake_root), str(seconds), *org_ids],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _lake_files(root: Path) -> list[Path]:
    """What runs wrote (not the lease records)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lease"))


def test_a_run_waits_for_the_holder_then_fails_naming_it(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    sim = make_sim()
    lake_root = tmp_path / "lake"
    Lake(lake_root)
    holder = _hold(lake_root, 120)
    try:
        with running_server(sim) as url:
            started = time.monotonic()
            state = run_nightly(sim, url, tmp_path, lease_wait_seconds=2)
            waited = time.monotonic() - started
            assert state.is_failed()
            message = str(state.result(raise_on_failure=False))
            assert "a manual backfill" in message and f"pid {holder.pid}" in message, message
            assert waited >= 2
            assert _lake_files(lake_root) == []  # nothing landed, no state saved
            assert not (tmp_path / "warehouse.duckdb").exists()
            assert sim.backend.export_posts == []

            end = sim.history.end.date()
            state = run_backfill(sim, url, tmp_path, end - timedelta(days=3), end, lease_wait_seconds=1)
            assert state.is_failed() and "a manual backfill" in str(state.result(raise_on_failure=False))
            assert _lake_files(lake_root) == []
    finally:
        holder.kill()
        holder.wait()

    # The holder is gone (killed: its pid is dead on this host): the next run takes over.
    with running_server(sim) as url:
        state = run_nightly(sim, url, tmp_path, lease_wait_seconds=2)
    assert state.is_completed(), state
    assert _lake_files(lake_root)


def test_a_nightly_waits_for_a_run_extracting_one_of_its_orgs(prefect_harness, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    sim = make_sim()
    lake_root = tmp_path / "lake"
    Lake(lake_root)
    holder = _hold(lake_root, 120, sim.org.id)  # e.g. a nightly-org run of the fan-out
    try:
        with running_server(sim) as url:
            state = run_nightly(sim, url, tmp_path, lease_wait_seconds=2)
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert "a manual backfill" in message and f"org {sim.org.id}" in message, message
        assert _lake_files(lake_root) == [] and sim.backend.export_posts == []
    finally:
        holder.kill()
        holder.wait()
