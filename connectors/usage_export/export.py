"""Run usage-export jobs end to end: create, poll, download, merge.

Each window is a small state machine (``ExportState.state``), advanced one step at a time;
every transition is saved to the state store, so a restarted run resumes the same job::

    new / failed ──POST──> created ──GET──> processing ──GET──> completed ──download──> downloaded
                                                                  │  no URLs yet: GET again (bounded)
                                                                  └─ URLs expired: GET fresh ones (bounded)
    GET says failed: too large -> split (two child windows), else -> failed (POST again, bounded)
    GET says 404 (job gone)    -> new

One loop (``_Exporter.run``) picks the job whose next step is due first, waits until then
(the only sleep in this module) and takes that step. GETs to one org are paced
``poll_interval`` apart (10 per hour per org on the real API: 6 minutes). Each single
request (429, 5xx, transport errors, corrupt part downloads) is retried by the client,
``CircleCIClient``, and nowhere else; parts are downloaded through it without the token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.encoding import render_path
from circleci_analytics.connectors.errors import CircleCIError, DataError, ExpiredUrl, NotFound
from circleci_analytics.connectors.usage_export.merge import PartInput, check_gzip, merge_parts
from circleci_analytics.connectors.usage_export.state import (
    ExportState,
    LocalStateStore,
    PartRecord,
    StateStore,
    load_state,
    save_state,
)
from circleci_analytics.connectors.usage_export.windows import Window, as_utc, plan_windows

__all__ = ["DEFAULT_POLL_INTERVAL", "UsageExportError", "UsageExportResult", "export_usage", "part_filename"]

logger = logging.getLogger("circleci_analytics.connectors.usage_export")

#: 10 GETs per hour per org on the real API.
DEFAULT_POLL_INTERVAL = 360.0
_TOO_LARGE = re.compile(r"too (large|big)|exceed|reduce the (date )?range|result size", re.IGNORECASE)
_PENDING = ("created", "processing")


class UsageExportError(CircleCIError):
    """An export could not be produced (failed too often, no download URLs, too large)."""


@dataclass(frozen=True)
class UsageExportResult:
    """What an export produced and what it cost."""

    org_id: str
    start: datetime
    end: datetime
    #: The windows actually exported (after any too-large splits), in order.
    windows: tuple[Window, ...]
    job_ids: tuple[str, ...]
    output: Path
    quarantine: Path
    rows: int
    parts: int
    quarantined_rows: int
    duplicate_rows: int
    blank_lines: int
    unknown_columns: tuple[str, ...]
    missing_columns: tuple[str, ...]
    quarantine_reasons: dict[str, int]
    #: Logical calls ``post``, ``get``; HTTP ``download``s and ``download_retries``; 429
    #: answers (``rate_limited``), ``resumed`` jobs and ``url_refreshes``.
    calls: dict[str, int]


def part_filename(url: str, index: int) -> str:
    """``part-0003.csv.gz`` style name from the URL path (falls back to the index)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if name.endswith(".gz") and len(name) < 120:
        return name
    return f"part-{index:04d}.csv.gz"


def job_dir(workdir: Path, st: ExportState) -> Path:
    """Where the parts of one job are downloaded."""
    return workdir / "parts" / f"{st.window.label}_{st.usage_export_job_id}"


@dataclass
class _Job:
    """One window's state plus what only this run needs to know about it."""

    state: ExportState
    due: float
    urls: list[str] | None = None
    empty_polls: int = 0
    url_refreshes: int = 0

    @property
    def window(self) -> Window:
        return self.state.window


@dataclass
class _Calls:
    post: int = 0
    get: int = 0
    resumed: int = 0
    url_refreshes: int = 0


class _Exporter:
    def __init__(
        self,
        client: CircleCIClient,
        org_id: str,
        *,
        store: StateStore,
        workdir: Path,
        http: httpx.AsyncClient | None,
        poll_interval: float,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        max_attempts: int,
        max_empty_url_polls: int,
        max_url_refreshes: int,
        max_concurrent_jobs: int,
        download_concurrency: int,
        min_split: timedelta,
    ) -> None:
        self.client = client
        self.org_id = org_id
        self.store = store
        self.workdir = workdir
        self.http = http
        self.poll_interval = poll_interval
        self.now = now
        self.sleep = sleep
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_empty_url_polls = max_empty_url_polls
        self.max_url_refreshes = max_url_refreshes
        self.max_concurrent_jobs = max_concurrent_jobs
        self.download_concurrency = download_concurrency
        self.min_split = min_split
        self.calls = _Calls()
        self._client_before = self._client_counts()
        self._next_get = 0.0
        self._base = render_path("/organizations/{org_id}/usage_export_job", org_id=org_id)

    # -- accounting ----------------------------------------------------------------------------
    def _client_counts(self) -> dict[str, int]:
        stats = self.client.stats
        return {
            "download": stats.calls["download"],
            "download_retries": stats.retries["download"],
            "rate_limited": stats.rate_limited["usage_export"],
        }

    def calls_dict(self) -> dict[str, int]:
        now, before = self._client_counts(), self._client_before
        return {
            "post": self.calls.post,
            "get": self.calls.get,
            **{key: now[key] - before[key] for key in now},
            "resumed": self.calls.resumed,
            "url_refreshes": self.calls.url_refreshes,
        }

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, windows: Sequence[Window]) -> list[ExportState]:
        pending: deque[ExportState] = deque(load_state(self.store, self.org_id, w) for w in windows)
        active: list[_Job] = []
        finished: dict[Window, ExportState] = {}
        order: list[Window] = list(windows)

        def replace_by_children(st: ExportState, children: list[ExportState]) -> None:
            pending.extendleft(reversed(children))
            i = order.index(st.window)
            order[i : i + 1] = [c.window for c in children]

        while pending or active:
            while pending and len(active) < self.max_concurrent_jobs:
                st = pending.popleft()
                if st.state == "split":
                    replace_by_children(st, [load_state(self.store, self.org_id, Window(a, b)) for a, b in st.children])
                elif st.state == "downloaded" and self._parts_present(st):
                    finished[st.window] = st
                else:
                    active.append(self._admit(st))
            if not active:
                continue
            job = min(active, key=self._due_at)
            wait = self._due_at(job) - self.clock()
            if wait > 0:
                await self.sleep(wait)
            outcome = await self._step(job)
            if outcome != "wait":
                active.remove(job)
            if outcome == "done":
                finished[job.window] = job.state
            elif outcome == "split":
                children = [ExportState(self.org_id, a, b) for a, b in job.state.children]
                for child in children:
                    self._save(child)
                replace_by_children(job.state, children)
        return [finished[w] for w in order]

    def _admit(self, st: ExportState) -> _Job:
        if st.state == "downloaded":  # parts lost since (a crash before the merge): fetch them again
            st.state = "completed"
        if st.usage_export_job_id and st.state not in ("new", "failed"):
            self.calls.resumed += 1
            logger.info("usage export %s: resuming job %s", st.window, st.usage_export_job_id)
        return _Job(st, due=self.clock())

    def _due_at(self, job: _Job) -> float:
        """When the job's next step may run: a GET also waits for the org's pacing."""
        if self._next_step(job) == "poll":
            return max(job.due, self._next_get)
        return job.due

    def _next_step(self, job: _Job) -> str:
        state = job.state.state
        if state in ("new", "failed"):
            return "create"
        if state == "completed" and job.urls:
            return "download"
        if state in _PENDING or state == "completed":
            return "poll"
        raise DataError(f"usage export {job.window}: unknown job state {state!r}")

    async def _step(self, job: _Job) -> str:
        """Take the job's next step: ``wait`` (more steps to come), ``done`` or ``split``."""
        step = self._next_step(job)
        if step == "create":
            await self._create(job)
            return "wait"
        if step == "download":
            return await self._download(job)
        return await self._poll(job)

    # -- steps ---------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        if method == "POST":
            self.calls.post += 1
        else:
            self.calls.get += 1
        doc = await self.client.request_json(method, path, json=body, family="usage_export")
        if not isinstance(doc, dict):
            raise DataError(f"{method} {path}: expected a JSON object, got {type(doc).__name__}")
        return doc

    async def _create(self, job: _Job) -> None:
        st = job.state
        if st.attempts >= self.max_attempts:
            raise UsageExportError(
                f"usage export {st.window} for org {self.org_id} failed {st.attempts} times"
                f" (last reason: {st.error_reason or 'unknown'}); giving up"
            )
        doc = await self._call("POST", self._base, {"start": st.window.start_iso, "end": st.window.end_iso})
        job_id = doc.get("usage_export_job_id")
        if not isinstance(job_id, str) or not job_id:
            raise DataError(f"POST {self._base}: no usage_export_job_id in the response")
        st.usage_export_job_id = job_id
        st.state = str(doc.get("state") or "created")
        st.created_at = self.now()
        st.attempts += 1
        st.parts = []
        self._save(st)
        job.due, job.urls, job.empty_polls = self.clock() + self.poll_interval, None, 0
        logger.info("usage export %s: created job %s (attempt %d)", st.window, job_id, st.attempts)

    async def _poll(self, job: _Job) -> str:
        st = job.state
        path = render_path(
            "/organizations/{org_id}/usage_export_job/{job_id}", org_id=self.org_id, job_id=st.usage_export_job_id
        )
        self._next_get = self.clock() + self.poll_interval
        try:
            doc = await self._call("GET", path)
        except NotFound:
            logger.warning("usage export %s: job %s not found; creating a new one", st.window, st.usage_export_job_id)
            st.state, st.error_reason = "new", "job not found"
            self._save(st)
            job.due = self.clock()
            return "wait"
        st.last_polled_at = self.now()
        st.polls += 1
        state = str(doc.get("state") or "")
        if state in _PENDING:
            st.state = state
            self._save(st)
            job.due = self.clock() + self.poll_interval
            return "wait"
        if state == "failed":
            st.state, st.error_reason = "failed", str(doc.get("error_reason") or "no error_reason given")
            self._save(st)
            if _TOO_LARGE.search(st.error_reason):
                return self._split(st)
            logger.warning("usage export %s failed: %s; creating it again", st.window, st.error_reason)
            job.due = self.clock()
            return "wait"
        if state != "completed":
            raise DataError(f"usage export job {st.usage_export_job_id}: unknown state {state!r}")
        st.state = "completed"
        self._save(st)
        urls = doc.get("download_urls")
        if not urls:
            job.empty_polls += 1
            if job.empty_polls > self.max_empty_url_polls:
                raise UsageExportError(
                    f"usage export {st.window} (job {st.usage_export_job_id}) is completed but "
                    f"download_urls is {urls!r} after {job.empty_polls} polls"
                )
            job.due = self.clock() + self.poll_interval
            return "wait"
        job.urls, job.due = [str(u) for u in urls], self.clock()
        return "wait"

    def _split(self, st: ExportState) -> str:
        if st.window.end - st.window.start < 2 * self.min_split:
            raise UsageExportError(
                f"usage export {st.window} is too large ({st.error_reason}) and cannot be split below {self.min_split}"
            )
        first, second = st.window.halves()
        st.state = "split"
        st.children = [(first.start, first.end), (second.start, second.end)]
        self._save(st)
        logger.info("usage export %s too large: splitting into %s and %s", st.window, first, second)
        return "split"

    async def _download(self, job: _Job) -> str:
        """Download the parts not on disk yet; expired URLs send the job back for fresh ones."""
        st, urls = job.state, job.urls or []
        parts_dir = self._job_dir(st)
        st.parts = [p for p in st.parts if (self.workdir / p.path).is_file()]
        have = {p.name for p in st.parts}
        expired: list[str] = []
        limit = asyncio.Semaphore(self.download_concurrency)

        async def fetch(index: int, url: str) -> None:
            name = part_filename(url, index)
            dest = parts_dir / name
            async with limit:
                try:
                    size = await self.client.download(url, dest, verify=check_gzip, http=self.http)
                except ExpiredUrl:
                    expired.append(name)
                    return
            st.parts.append(PartRecord(name, str(dest.relative_to(self.workdir)), size))
            self._save(st)

        try:
            async with asyncio.TaskGroup() as group:  # the first error cancels the other downloads
                for i, url in enumerate(urls):
                    if part_filename(url, i) not in have:
                        group.create_task(fetch(i, url))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None
        if expired:
            job.url_refreshes += 1
            self.calls.url_refreshes += 1
            if job.url_refreshes > self.max_url_refreshes:
                raise UsageExportError(
                    f"usage export {st.window}: pre-signed URLs still rejected after {job.url_refreshes - 1} refreshes"
                )
            logger.info("usage export %s: %d URL(s) expired; fetching fresh ones", st.window, len(expired))
            job.urls, job.due = None, self.clock()
            return "wait"
        names = [part_filename(u, i) for i, u in enumerate(urls)]
        st.parts.sort(key=lambda p: names.index(p.name) if p.name in names else len(names))
        st.state = "downloaded"
        self._save(st)
        return "done"

    # -- helpers -------------------------------------------------------------------------------
    def _save(self, st: ExportState) -> None:
        save_state(self.store, st)

    def _job_dir(self, st: ExportState) -> Path:
        return job_dir(self.workdir, st)

    def _parts_present(self, st: ExportState) -> bool:
        return all((self.workdir / p.path).is_file() for p in st.parts)


async def export_usage(
    client: CircleCIClient,
    org_id: str,
    start: datetime,
    end: datetime,
    *,
    workdir: str | Path,
    state_store: StateStore | None = None,
    output_dir: str | Path | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    download_client: httpx.AsyncClient | None = None,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    max_window: timedelta = timedelta(days=31),
    max_attempts: int = 3,
    max_empty_url_polls: int = 3,
    max_url_refreshes: int = 3,
    max_concurrent_jobs: int = 3,
    download_concurrency: int = 4,
    min_split: timedelta = timedelta(hours=1),
    keep_parts: bool = False,
) -> UsageExportResult:
    """Export CircleCI usage for ``org_id`` over ``[start, end]`` into Parquet.

    ``[start, end]`` is split into windows of at most 31 days (``end`` clamped to now minus
    60 s; ``start`` must be within a year). Each window becomes one export job, whose state
    is kept in ``state_store`` (default: JSON files under ``workdir/state``) so a restarted
    run resumes the same jobs. Parts are downloaded to ``workdir/parts`` through ``client``
    (its retries, never the API token; ``download_client`` may carry them instead, e.g.
    for another proxy), verified, then merged into ``output_dir/usage_job_runs.parquet``
    (deduplicated on ``job_id``) and ``output_dir/usage_quarantine.parquet``. Parts are
    deleted after a successful merge unless ``keep_parts``.

    ``now``/``sleep``/``clock`` are injectable (tests, simulators with their own clock).
    ``poll_interval`` is the pause between GETs for the org: keep the default 6 minutes
    against the real API (10 GETs per hour per org). ``max_attempts`` bounds the jobs
    created per window, ``max_empty_url_polls`` the polls of a completed job without URLs,
    ``max_url_refreshes`` the rounds of fresh URLs after expired ones.
    """
    now_fn = now or (lambda: datetime.now(UTC))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = state_store if state_store is not None else LocalStateStore(workdir / "state")
    out_dir = Path(output_dir) if output_dir is not None else workdir / "output"
    windows = plan_windows(start, end, now=now_fn(), max_window=max_window)
    exporter = _Exporter(
        client,
        org_id,
        store=store,
        workdir=workdir,
        http=download_client,
        poll_interval=poll_interval,
        now=now_fn,
        sleep=sleep,
        clock=clock,
        max_attempts=max_attempts,
        max_empty_url_polls=max_empty_url_polls,
        max_url_refreshes=max_url_refreshes,
        max_concurrent_jobs=max_concurrent_jobs,
        download_concurrency=download_concurrency,
        min_split=min_split,
    )
    states = await exporter.run(windows)

    inputs = [
        PartInput(workdir / p.path, f"{st.usage_export_job_id}/{p.name}", st.window_start, st.window_end)
        for st in states
        for p in st.parts
    ]
    output = out_dir / "usage_job_runs.parquet"
    quarantine = out_dir / "usage_quarantine.parquet"
    stats = await asyncio.to_thread(merge_parts, inputs, output, quarantine, extracted_at=as_utc(now_fn()))
    if not keep_parts:
        for st in states:
            shutil.rmtree(job_dir(workdir, st), ignore_errors=True)
    return UsageExportResult(
        org_id=org_id,
        start=windows[0].start,
        end=windows[-1].end,
        windows=tuple(st.window for st in states),
        job_ids=tuple(str(st.usage_export_job_id) for st in states),
        output=output,
        quarantine=quarantine,
        rows=stats.rows,
        parts=stats.parts,
        quarantined_rows=stats.quarantined,
        duplicate_rows=stats.duplicates,
        blank_lines=stats.blank_lines,
        unknown_columns=tuple(sorted(stats.unknown_columns)),
        missing_columns=tuple(sorted(stats.missing_optional_columns)),
        quarantine_reasons=dict(stats.quarantine_reasons),
        calls=exporter.calls_dict(),
    )
