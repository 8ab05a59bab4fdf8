"""Run usage-export jobs end to end: create, poll, download, merge.

One ``_Exporter`` per call of ``export_usage``. The flow for each window::

    new --POST--> created/processing --GET (paced)--> completed --download--> downloaded
                                               \\--> failed: too large -> split in halves
                                                            otherwise -> POST again (bounded)

Every transition is written to the state store first, so a restarted run resumes polling
the same job. GETs to one org are paced ``poll_interval`` apart (10 per hour per org on the
real API: 6 minutes); a 429 that outlives the client's own retries is waited out
(``Retry-After``) a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from circleci_analytics.connectors.errors import CircleCIError, DataError, NotFound, RateLimited
from circleci_analytics.connectors.usage_export.download import DownloadStats, UrlExpired, download_part, part_filename
from circleci_analytics.connectors.usage_export.merge import PartInput, UsageMerger, check_gzip
from circleci_analytics.connectors.usage_export.state import (
    ExportState,
    LocalStateStore,
    PartRecord,
    StateStore,
    load_state,
    save_state,
)
from circleci_analytics.connectors.usage_export.windows import Window, as_utc, plan_windows

__all__ = ["DEFAULT_POLL_INTERVAL", "UsageExportError", "UsageExportResult", "export_usage"]

logger = logging.getLogger("circleci_analytics.connectors.usage_export")

#: 10 GETs per hour per org on the real API.
DEFAULT_POLL_INTERVAL = 360.0
_TOO_LARGE = re.compile(r"too (large|big)|exceed|reduce the (date )?range|result size", re.IGNORECASE)


class UsageExportError(CircleCIError):
    """An export could not be produced (failed too often, no download URLs, too large)."""


class ApiClient(Protocol):
    """What the extractor needs from ``connectors.client.CircleCIClient``."""

    async def request(
        self, method: str, path: str, *, params: Any = None, json: Any = None, family: str | None = None
    ) -> httpx.Response: ...


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
    #: Logical calls: ``post``, ``get``, ``download`` plus ``rate_limited`` waits, ``resumed`` jobs.
    calls: dict[str, int]


@dataclass
class _Calls:
    post: int = 0
    get: int = 0
    rate_limited: int = 0
    resumed: int = 0
    url_refreshes: int = 0
    download: DownloadStats = field(default_factory=DownloadStats)

    def as_dict(self) -> dict[str, int]:
        return {
            "post": self.post,
            "get": self.get,
            "download": self.download.requests,
            "download_retries": self.download.retries,
            "rate_limited": self.rate_limited,
            "resumed": self.resumed,
            "url_refreshes": self.url_refreshes,
        }


class _Exporter:
    def __init__(
        self,
        client: ApiClient,
        org_id: str,
        *,
        store: StateStore,
        workdir: Path,
        http: httpx.AsyncClient,
        poll_interval: float,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        max_attempts: int,
        max_empty_url_polls: int,
        max_url_refreshes: int,
        max_download_attempts: int,
        max_rate_limit_waits: int,
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
        self.max_download_attempts = max_download_attempts
        self.max_rate_limit_waits = max_rate_limit_waits
        self.max_concurrent_jobs = max_concurrent_jobs
        self.download_concurrency = download_concurrency
        self.min_split = min_split
        self.calls = _Calls()
        self._next_get = 0.0
        self._due: dict[Window, float] = {}
        self._empty_polls: dict[Window, int] = {}
        self._base = f"/organizations/{quote(org_id, safe='')}/usage_export_job"

    # -- HTTP ----------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        for waited in range(self.max_rate_limit_waits + 1):
            if method == "POST":
                self.calls.post += 1
            else:
                self.calls.get += 1
            try:
                response = await self.client.request(method, path, json=body, family="usage_export")
            except RateLimited as exc:
                if waited == self.max_rate_limit_waits:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else self.poll_interval
                self.calls.rate_limited += 1
                logger.info("usage export %s rate limited; waiting %.1fs", method, wait)
                await self.sleep(wait)
                if method == "GET":
                    self._next_get = max(self._next_get, self.clock() + self.poll_interval)
                continue
            try:
                doc = response.json()
            except ValueError as exc:
                raise DataError(f"{method} {path}: response is not JSON") from exc
            if not isinstance(doc, dict):
                raise DataError(f"{method} {path}: expected a JSON object, got {type(doc).__name__}")
            return doc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _create(self, st: ExportState) -> None:
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
        self._due[st.window] = self.clock() + self.poll_interval
        logger.info("usage export %s: created job %s (attempt %d)", st.window, job_id, st.attempts)

    async def _poll(self, st: ExportState) -> dict[str, Any]:
        """GET the job, paced so that GETs to this org stay ``poll_interval`` apart."""
        wait = max(self._next_get, self._due.get(st.window, 0.0)) - self.clock()
        if wait > 0:
            await self.sleep(wait)
        self._next_get = self.clock() + self.poll_interval
        self._due[st.window] = self.clock() + self.poll_interval
        doc = await self._call("GET", f"{self._base}/{quote(str(st.usage_export_job_id), safe='')}")
        st.last_polled_at = self.now()
        st.polls += 1
        return doc

    def _save(self, st: ExportState) -> None:
        save_state(self.store, st)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, windows: Sequence[Window]) -> list[ExportState]:
        pending: deque[ExportState] = deque(load_state(self.store, self.org_id, w) for w in windows)
        active: list[ExportState] = []
        finished: dict[Window, ExportState] = {}
        order: list[Window] = list(windows)
        while pending or active:
            while pending and len(active) < self.max_concurrent_jobs:
                st = pending.popleft()
                if st.state == "split":
                    children = [load_state(self.store, self.org_id, Window(a, b)) for a, b in st.children]
                    pending.extendleft(reversed(children))
                    i = order.index(st.window)
                    order[i : i + 1] = [c.window for c in children]
                    continue
                if st.state == "downloaded" and self._parts_present(st):
                    finished[st.window] = st
                    continue
                if st.usage_export_job_id and st.state != "failed":
                    self.calls.resumed += 1
                    self._due.setdefault(st.window, self.clock())
                    logger.info("usage export %s: resuming job %s", st.window, st.usage_export_job_id)
                else:
                    await self._create(st)
                active.append(st)
            if not active:
                continue
            st = min(active, key=lambda s: self._due.get(s.window, 0.0))
            outcome = await self._advance(st)
            if outcome == "done":
                active.remove(st)
                finished[st.window] = st
            elif outcome == "split":
                active.remove(st)
                children = [ExportState(self.org_id, a, b) for a, b in st.children]
                for child in children:
                    self._save(child)
                pending.extendleft(reversed(children))
                i = order.index(st.window)
                order[i : i + 1] = [c.window for c in children]
        return [finished[w] for w in order]

    async def _advance(self, st: ExportState) -> str:
        """Poll one job once and act on its state: ``wait``, ``done`` or ``split``."""
        try:
            doc = await self._poll(st)
        except NotFound:
            # The job is gone (expired server-side): start over with a new one.
            logger.warning("usage export %s: job %s not found; creating a new one", st.window, st.usage_export_job_id)
            st.error_reason = "job not found"
            await self._create(st)
            return "wait"
        state = str(doc.get("state") or "")
        if state != st.state:
            st.state = state
            self._save(st)
        if state in ("created", "processing"):
            return "wait"
        if state == "failed":
            st.error_reason = str(doc.get("error_reason") or "no error_reason given")
            self._save(st)
            if _TOO_LARGE.search(st.error_reason):
                return self._split(st)
            logger.warning("usage export %s failed: %s; retrying", st.window, st.error_reason)
            await self._create(st)
            return "wait"
        if state == "completed":
            urls = doc.get("download_urls")
            if not urls:
                n = self._empty_polls.get(st.window, 0) + 1
                self._empty_polls[st.window] = n
                if n > self.max_empty_url_polls:
                    raise UsageExportError(
                        f"usage export {st.window} (job {st.usage_export_job_id}) is completed but "
                        f"download_urls is {urls!r} after {n} polls"
                    )
                return "wait"
            await self._download(st, list(urls))
            return "done"
        raise DataError(f"usage export job {st.usage_export_job_id}: unknown state {state!r}")

    def _split(self, st: ExportState) -> str:
        if st.window.end - st.window.start < 2 * self.min_split:
            raise UsageExportError(
                f"usage export {st.window} is too large ({st.error_reason}) and cannot be split "
                f"below {self.min_split}"
            )
        first, second = st.window.halves()
        st.state = "split"
        st.children = [(first.start, first.end), (second.start, second.end)]
        self._save(st)
        logger.info("usage export %s too large: splitting into %s and %s", st.window, first, second)
        return "split"

    # -- downloads -----------------------------------------------------------------------------
    def _job_dir(self, st: ExportState) -> Path:
        return self.workdir / "parts" / f"{st.window.label}_{st.usage_export_job_id}"

    def _parts_present(self, st: ExportState) -> bool:
        return all((self.workdir / p.path).is_file() for p in st.parts)

    async def _download(self, st: ExportState, urls: list[Any]) -> None:
        job_dir = self._job_dir(st)
        st.parts = [p for p in st.parts if (self.workdir / p.path).is_file()]
        refreshes = 0
        limit = asyncio.Semaphore(self.download_concurrency)
        while True:
            have = {p.name for p in st.parts if (self.workdir / p.path).is_file()}
            todo = [(i, str(u)) for i, u in enumerate(urls) if part_filename(str(u), i) not in have]
            expired: list[int] = []

            async def fetch(i: int, url: str) -> None:
                name = part_filename(url, i)
                dest = job_dir / name
                async with limit:
                    try:
                        size = await download_part(
                            self.http,
                            url,
                            dest,
                            verify=check_gzip,
                            stats=self.calls.download,
                            max_attempts=self.max_download_attempts,
                            sleep=self.sleep,
                        )
                    except UrlExpired:
                        expired.append(i)
                        return
                st.parts.append(PartRecord(name, str(dest.relative_to(self.workdir)), size))
                self._save(st)

            await asyncio.gather(*(fetch(i, u) for i, u in todo))
            if not expired:
                break
            refreshes += 1
            self.calls.url_refreshes += 1
            if refreshes > self.max_url_refreshes:
                raise UsageExportError(
                    f"usage export {st.window}: pre-signed URLs still rejected after {refreshes - 1} refreshes"
                )
            logger.info("usage export %s: %d URL(s) expired; fetching fresh ones", st.window, len(expired))
            urls = await self._fresh_urls(st)
        names = [part_filename(str(u), i) for i, u in enumerate(urls)]
        st.parts.sort(key=lambda p: names.index(p.name) if p.name in names else len(names))
        st.state = "downloaded"
        self._save(st)

    async def _fresh_urls(self, st: ExportState) -> list[Any]:
        for _ in range(self.max_empty_url_polls + 1):
            doc = await self._poll(st)
            urls = doc.get("download_urls")
            if doc.get("state") == "completed" and urls:
                return list(urls)
        raise UsageExportError(f"usage export {st.window}: could not get fresh download URLs")


async def export_usage(
    client: ApiClient,
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
    max_download_attempts: int = 3,
    max_rate_limit_waits: int = 20,
    max_concurrent_jobs: int = 3,
    download_concurrency: int = 4,
    min_split: timedelta = timedelta(hours=1),
    keep_parts: bool = False,
) -> UsageExportResult:
    """Export CircleCI usage for ``org_id`` over ``[start, end]`` into Parquet.

    ``[start, end]`` is split into windows of at most 31 days (``end`` clamped to now minus
    60 s; ``start`` must be within a year). Each window becomes one export job, whose state
    is kept in ``state_store`` (default: JSON files under ``workdir/state``) so a restarted
    run resumes the same jobs. Parts are downloaded to ``workdir/parts`` (without the API
    token), verified, then merged into ``output_dir/usage_job_runs.parquet`` (deduplicated on
    ``job_id``) and ``output_dir/usage_quarantine.parquet``. Parts are deleted after a
    successful merge unless ``keep_parts``.

    ``now``/``sleep``/``clock`` are injectable (tests, simulators with their own clock).
    ``poll_interval`` is the pause between GETs for the org: keep the default 6 minutes
    against the real API (10 GETs per hour per org).
    """
    now_fn = now or (lambda: datetime.now(UTC))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = state_store if state_store is not None else LocalStateStore(workdir / "state")
    out_dir = Path(output_dir) if output_dir is not None else workdir / "output"
    windows = plan_windows(start, end, now=now_fn(), max_window=max_window)
    own_http = download_client is None
    http = download_client or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True)
    exporter = _Exporter(
        client,
        org_id,
        store=store,
        workdir=workdir,
        http=http,
        poll_interval=poll_interval,
        now=now_fn,
        sleep=sleep,
        clock=clock,
        max_attempts=max_attempts,
        max_empty_url_polls=max_empty_url_polls,
        max_url_refreshes=max_url_refreshes,
        max_download_attempts=max_download_attempts,
        max_rate_limit_waits=max_rate_limit_waits,
        max_concurrent_jobs=max_concurrent_jobs,
        download_concurrency=download_concurrency,
        min_split=min_split,
    )
    try:
        states = await exporter.run(windows)
    finally:
        if own_http:
            await http.aclose()

    extracted_at = as_utc(now_fn())
    inputs = [
        PartInput(workdir / p.path, f"{st.usage_export_job_id}/{p.name}", st.window_start, st.window_end)
        for st in states
        for p in st.parts
    ]
    output = out_dir / "usage_job_runs.parquet"
    quarantine = out_dir / "usage_quarantine.parquet"

    def merge() -> Any:
        merger = UsageMerger(output, quarantine, extracted_at=extracted_at)
        try:
            for part in inputs:
                merger.add_part(part)
        except BaseException:
            merger.abort()
            raise
        return merger.close()

    stats = await asyncio.to_thread(merge)
    if not keep_parts:
        for st in states:
            shutil.rmtree(workdir / "parts" / f"{st.window.label}_{st.usage_export_job_id}", ignore_errors=True)
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
        calls=exporter.calls.as_dict(),
    )
