"""A run cleans up after the crashed run before it: the scratch folders of a dead process are
removed and its Prefect flow runs left Running are marked Crashed - never those of a live one.

With real processes: a nightly run in a child process is SIGKILLed in the middle of its usage
export, then the next run (this process) cleans up after it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import TOKEN, make_sim, run_nightly, settings

from circleci_analytics.flows import housekeeping
from circleci_analytics.flows.housekeeping import OWNER_FILE, SCRATCH_PREFIX, Owner
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A live process of this user (not a run: it only sleeps)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def owner_of(pid: int) -> Owner:
    """The owner record a process with `pid` on this host would write."""
    me = Owner.me()
    return replace(me, pid=pid, started=housekeeping._proc_stat(pid)[1])


# -- who owns a run ----------------------------------------------------------------------------
def test_owner_is_gone_only_when_its_process_is(sleeper) -> None:
    me = Owner.me()
    assert me.gone() is False
    assert owner_of(sleeper.pid).gone() is False
    assert replace(me, pid=dead_pid()).gone() is True
    assert replace(me, started="1").gone() is True  # the pid now belongs to another process
    if me.boot:
        assert replace(me, boot="another-boot").gone() is True  # the machine rebooted since
    assert replace(me, host="elsewhere.example").gone() is None  # not this host's to say
    assert Owner.from_labels({"other": "x", **me.labels()}) == me
    assert Owner.from_labels({"x": "y"}) is None


def test_a_killed_process_not_yet_reaped_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = owner_of(proc.pid)
        assert owner.gone() is False
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while housekeeping._proc_stat(proc.pid)[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert owner.gone() is True  # a zombie until its parent waits for it
    finally:
        proc.wait()


# -- scratch folders ---------------------------------------------------------------------------
def _scratch(tmp: Path, name: str, owner: Owner | None, age: timedelta = timedelta(0)) -> Path:
    path = tmp / f"{SCRATCH_PREFIX}{name}"
    path.mkdir()
    (path / "part-0.csv.gz").write_bytes(b"x" * 100)
    if owner is not None:
        (path / OWNER_FILE).write_text(json.dumps(asdict(owner)))
    when = time.time() - age.total_seconds()
    os.utime(path, (when, when))
    return path


def test_only_the_scratch_folders_of_dead_processes_are_removed(tmp_path: Path, sleeper) -> None:
    me = Owner.me()
    dead = _scratch(tmp_path, "dead", replace(me, pid=dead_pid()))
    unmarked_old = _scratch(tmp_path, "unmarked-old", None, age=timedelta(days=2))
    keep = [
        _scratch(tmp_path, "mine", me),
        _scratch(tmp_path, "live-sibling", owner_of(sleeper.pid)),
        _scratch(tmp_path, "other-host", replace(me, host="elsewhere.example", pid=dead_pid())),
        _scratch(tmp_path, "unmarked-new", None),  # a run between creating its folder and marking it
    ]
    (tmp_path / f"{SCRATCH_PREFIX}a-file").write_text("not a folder")
    (tmp_path / "unrelated").mkdir()
    assert housekeeping.remove_dead_scratch_dirs(tmp_path) == sorted([dead.name, unmarked_old.name])
    assert not dead.exists() and not unmarked_old.exists()
    assert all(p.exists() for p in keep)
    assert (tmp_path / f"{SCRATCH_PREFIX}a-file").exists() and (tmp_path / "unrelated").exists()


def test_a_runs_scratch_folder_is_marked_with_its_owner(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scratch = housekeeping.make_scratch_dir()
    try:
        path = Path(scratch.name)
        assert path.parent == tmp_path and path.name.startswith(SCRATCH_PREFIX)
        assert Owner(**json.loads((path / OWNER_FILE).read_text())) == Owner.me()
        assert housekeeping.remove_dead_scratch_dirs(tmp_path) == []
    finally:
        scratch.cleanup()


# -- flow runs left Running --------------------------------------------------------------------
def _running_flow_run(labels: dict[str, str]):
    """A flow run of the nightly flow in state Running, with `labels`, on the test server."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from circleci_analytics.flows import nightly

    async def go():
        async with get_client() as client:
            run = await client.create_flow_run(nightly, state=Running())
            await client.update_flow_run_labels(run.id, labels)
            return run

    return asyncio.run(go())


def _flow_run(run_id) -> Any:
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(go())


def _state_of(run_id) -> Any:
    return _flow_run(run_id).state


def test_runs_of_other_hosts_are_crashed_only_when_their_heartbeat_is_stale(prefect_harness, sleeper) -> None:
    now = datetime.now(UTC)
    elsewhere = replace(Owner.me(), host="elsewhere.example").labels()
    stale = _running_flow_run({**elsewhere, housekeeping.HEARTBEAT_LABEL: (now - timedelta(minutes=11)).isoformat()})
    fresh = _running_flow_run({**elsewhere, housekeeping.HEARTBEAT_LABEL: now.isoformat()})
    live_here = _running_flow_run(owner_of(sleeper.pid).labels())
    dead_here = _running_flow_run(replace(Owner.me(), pid=dead_pid()).labels())
    unlabelled = _running_flow_run({})
    crashed = asyncio.run(housekeeping.crash_dead_flow_runs(timedelta(minutes=10)))
    assert stale.name in crashed and dead_here.name in crashed
    assert _state_of(stale.id).is_crashed() and _state_of(dead_here.id).is_crashed()
    assert "no heartbeat from" in _state_of(stale.id).message and "is gone" in _state_of(dead_here.id).message
    for run in (fresh, live_here, unlabelled):
        assert run.name not in crashed and _state_of(run.id).is_running()


# -- with real processes: SIGKILL a run, then run again ----------------------------------------
CHILD = """
import asyncio, json, sys
from circleci_analytics.flows import housekeeping, nightly
from circleci_analytics.settings import Settings
housekeeping.HEARTBEAT_SECONDS = 0.3
asyncio.run(nightly(Settings(**json.loads(sys.argv[1]))))  # the token from $CIRCLECI_TOKEN
"""


def _wait_for(what: str, check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _runs_of(pid: int) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    async def go():
        async with get_client() as client:
            running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(state=running))
            return [r for r in runs if str(r.labels.get("circleci-analytics.pid")) == str(pid)]

    return asyncio.run(go())


def _scratch_of(tmp: Path, pid: int) -> list[Path]:
    out = []
    for path in tmp.glob(SCRATCH_PREFIX + "*"):
        try:
            if json.loads((path / OWNER_FILE).read_text())["pid"] == pid:
                out.append(path)
        except (OSError, ValueError):
            pass
    return out


def test_the_next_run_cleans_up_after_a_killed_run(prefect_harness, tmp_path: Path, sleeper, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    sibling = _scratch(tmp, "live-sibling", owner_of(sleeper.pid))  # another run's, alive
    slow = make_sim(export_processing_seconds=120.0)  # the child dies while it waits for the export
    with running_server(slow) as url:
        child_settings = settings(slow, url, tmp_path / "killed", initial_lookback_days=3, tests_lookback_days=1,
                                  export_poll_seconds=0.2)  # fmt: skip
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "CIRCLECI_TOKEN": TOKEN, "TMPDIR": str(tmp),
               "PREFECT_HOME": str(tmp_path / "prefect-home")}  # fmt: skip
        child = subprocess.Popen([sys.executable, "-c", CHILD, child_settings.model_dump_json()], env=env)
        try:
            (run,) = _wait_for("the child's flow run", lambda: _runs_of(child.pid))
            (scratch,) = _wait_for("the child's scratch folder", lambda: _scratch_of(tmp, child.pid))
            _wait_for("the child's usage export", lambda: slow.backend.export_posts)
            first_beat = run.labels[housekeeping.HEARTBEAT_LABEL]
            _wait_for("a heartbeat", lambda: _runs_of(child.pid)[0].labels[housekeeping.HEARTBEAT_LABEL] != first_beat)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert _state_of(run.id).is_running()  # nobody told Prefect

    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(housekeeping, "HEARTBEAT_SECONDS", 0.2)
    fast = make_sim()
    with running_server(fast) as url:
        state = run_nightly(fast, url, tmp_path / "next", initial_lookback_days=3, tests_lookback_days=1)
    assert state.is_completed()
    cleaned = state.result().cleaned_up
    assert run.name in cleaned["flow runs marked Crashed"]
    assert cleaned["scratch folders removed"] == [scratch.name]
    crashed = _state_of(run.id)
    assert crashed.is_crashed() and f"pid {child.pid}" in crashed.message
    assert not scratch.exists() and sibling.exists()
    assert run.name in state.result().markdown()
    assert list(tmp.iterdir()) == [sibling]  # the next run's own scratch folder is gone too
    # The next run (in this process) labelled itself and kept its heartbeat while it ran.
    this_run = _flow_run(state.state_details.flow_run_id)
    assert Owner.from_labels(this_run.labels) == Owner.me()
    beat = datetime.fromisoformat(this_run.labels[housekeeping.HEARTBEAT_LABEL])
    assert beat - this_run.start_time > timedelta(seconds=0.5)
