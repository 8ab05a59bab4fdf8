"""Clean up after runs that died (a killed process, a lost machine) at the next run's start.

A run says which process runs it - host, boot, pid and the process's start time - in a marker
file in its scratch folder and in labels on its Prefect flow run, and refreshes a heartbeat
label while it lives. The next run, on any machine:

* removes the scratch folders ``$TMPDIR/circleci-analytics-*`` (downloaded usage-export
  parts) whose process is gone; a folder of a live process (another run) is left alone, and
  so is one of another host or another user;
* marks *Crashed* the runs of these flows still *Running* whose process is gone: on this
  host when its pid no longer exists, is a zombie, belongs to a process started at another
  time (pid reuse) or the machine rebooted since; on another host when its heartbeat is
  older than `STALE_AFTER`.

Housekeeping never fails a run: an error here is logged and the run goes on.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

__all__ = [
    "FLOW_NAMES",
    "HEARTBEAT_SECONDS",
    "SCRATCH_PREFIX",
    "STALE_AFTER",
    "Heartbeat",
    "Owner",
    "crash_dead_flow_runs",
    "make_scratch_dir",
    "remove_dead_scratch_dirs",
    "start_run",
]

logger = logging.getLogger("circleci_analytics.flows")

#: The flows whose dead runs are marked Crashed.
FLOW_NAMES = ("circleci-nightly", "circleci-backfill", "circleci-nightly-org", "circleci-nightly-fanout")
SCRATCH_PREFIX = "circleci-analytics-"
OWNER_FILE = ".owner.json"
#: How often a live run refreshes its heartbeat label.
HEARTBEAT_SECONDS = 60.0
#: A run on another host whose heartbeat is older than this is dead.
STALE_AFTER = timedelta(minutes=10)
#: A scratch folder without an owner marker (written by an older version) older than this is dead.
UNMARKED_STALE_AFTER = timedelta(days=1)
_LABEL = "circleci-analytics."
HEARTBEAT_LABEL = _LABEL + "heartbeat"


@dataclass(frozen=True)
class Owner:
    """The process that runs a flow: enough to tell, later and from another process, whether
    it is still alive."""

    host: str
    pid: int
    #: The kernel's boot id (Linux): a different one means the machine rebooted since.
    boot: str | None = None
    #: The process's start time in clock ticks since boot (Linux): tells a reused pid apart.
    started: str | None = None

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _boot_id(), _proc_stat(pid)[1])

    def gone(self) -> bool | None:
        """True if the process is known to be gone, False if it is alive, None if this host
        cannot tell (the process ran on another host)."""
        if self.host != socket.gethostname():
            return None
        boot = _boot_id()
        if self.boot and boot and self.boot != boot:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        state, started = _proc_stat(self.pid)
        if state == "Z":
            return True  # killed, not yet reaped
        return bool(self.started and started and self.started != started)

    def labels(self) -> dict[str, str]:
        return {_LABEL + k: str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> Owner | None:
        values = {k.removeprefix(_LABEL): v for k, v in labels.items() if k.startswith(_LABEL)}
        try:
            return cls(str(values["host"]), int(values["pid"]), values.get("boot"), values.get("started"))
        except (KeyError, ValueError):
            return None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str | None, str | None]:
    """(state, start time in ticks) of a process from /proc (Linux), else (None, None)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return fields[0], fields[19]


# -- scratch folders -------------------------------------------------------------------------
def make_scratch_dir() -> tempfile.TemporaryDirectory:
    """A temporary folder for one run's downloads, marked with its owner."""
    scratch = tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX)
    (Path(scratch.name) / OWNER_FILE).write_text(json.dumps(asdict(Owner.me())))
    return scratch


def remove_dead_scratch_dirs(tmpdir: str | Path | None = None) -> list[str]:
    """Remove the scratch folders (of this user) whose owner process is gone; returns their names."""
    removed = []
    now = time.time()
    for path in sorted(Path(tmpdir or tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*")):
        try:
            if path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            try:
                owner = Owner(**json.loads((path / OWNER_FILE).read_text()))
                dead = owner.gone() is True
            except FileNotFoundError:
                dead = now - path.stat().st_mtime > UNMARKED_STALE_AFTER.total_seconds()
            except (ValueError, TypeError):
                continue  # not ours to judge
        except FileNotFoundError:
            continue  # removed meanwhile (its run ended)
        if dead:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


# -- Prefect flow runs -----------------------------------------------------------------------
async def crash_dead_flow_runs(stale_after: timedelta = STALE_AFTER, *, skip: UUID | None = None) -> list[str]:
    """Mark Crashed the Running runs of `FLOW_NAMES` whose process is gone; returns their names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    crashed = []
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_NAMES))),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
            ),
        )
        for run in runs:
            owner = Owner.from_labels(run.labels)
            if run.id == skip or owner is None:
                continue
            gone = owner.gone()
            if gone is None:
                beat = run.labels.get(HEARTBEAT_LABEL)
                gone = beat is None or datetime.now(UTC) - datetime.fromisoformat(str(beat)) > stale_after
                why = f"no heartbeat from {owner} for more than {stale_after}"
            else:
                why = f"its process ({owner}) is gone"
            if gone:
                await client.set_flow_run_state(run.id, Crashed(message=f"{why}; marked by a later run"), force=True)
                crashed.append(run.name)
    return crashed


class Heartbeat:
    """Refreshes the heartbeat label of a flow run every `interval` seconds, on a thread (so
    a step that blocks the event loop does not stop it), until `stop` or until the run is no
    longer Running."""

    def __init__(self, flow_run_id: UUID, interval: float | None = None):
        self.flow_run_id, self.interval = flow_run_id, interval or HEARTBEAT_SECONDS
        self._stop = threading.Event()
        context = contextvars.copy_context()  # Prefect's settings (API URL) live in context variables
        self._thread = threading.Thread(target=context.run, args=(self._beat,), name="circleci-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            while not self._stop.wait(self.interval):
                try:
                    state = client.read_flow_run(self.flow_run_id).state
                    if state is not None and not state.is_running():
                        return
                    client.update_flow_run_labels(self.flow_run_id, {HEARTBEAT_LABEL: datetime.now(UTC).isoformat()})
                except Exception as e:  # a server hiccup: try again at the next beat
                    logger.debug("heartbeat of flow run %s failed: %s", self.flow_run_id, e)


def run_label(kind: str) -> str:
    """What this run is called to whoever waits for its lake lease: kind, flow run and owner."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context and context.flow_run else None
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    return f"{kind} flow run {run.name} ({run.id}), {where}" if run else f"{kind}, {where}"


async def start_run() -> tuple[Heartbeat | None, dict[str, list[str]]]:
    """At a run's start: label this flow run with its owner, start its heartbeat, and clean up
    after dead runs. Returns the heartbeat (stop it at the end) and what was cleaned up."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run_id = context.flow_run.id if context and context.flow_run else None
    heartbeat = None
    cleaned: dict[str, list[str]] = {}
    try:
        if run_id is not None:
            async with get_client() as client:
                labels: dict[str, bool | int | float | str] = {
                    **Owner.me().labels(),
                    HEARTBEAT_LABEL: datetime.now(UTC).isoformat(),
                }
                await client.update_flow_run_labels(run_id, labels)
            heartbeat = Heartbeat(run_id).start()
        cleaned["flow runs marked Crashed"] = await crash_dead_flow_runs(skip=run_id)
    except Exception as e:
        logger.warning("marking the flow runs of dead processes Crashed failed (the run goes on): %s", e)
    try:
        cleaned["scratch folders removed"] = remove_dead_scratch_dirs()
    except OSError as e:
        logger.warning("removing the scratch folders of dead runs failed (the run goes on): %s", e)
    return heartbeat, {what: items for what, items in cleaned.items() if items}
