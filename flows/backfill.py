"""The backfill flow: up to 13 months of usage export, one <= 31-day window at a time.

Resumable: each window's export job is kept in the lake's state store (a restarted run
resumes polling the same job, never POSTs twice), and a window that has landed is marked
done, so re-running the backfill skips it. The 10-per-hour POST budget is respected by
the connectors (client-side limiter plus Retry-After on 429). Progress is a Prefect
progress artifact.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from prefect import State, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.states import Completed

from circleci_analytics.connectors import CircleCIError
from circleci_analytics.connectors.usage_export import plan_windows
from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.flows.tasks import (
    build_and_render,
    land_task,
    land_usage_task,
    resolve_projects_task,
    resolve_token,
    usage_export_task,
)
from circleci_analytics.settings import Org, Settings, SettingsError, check_paths
from circleci_analytics.warehouse import Lake

__all__ = ["backfill", "backfill_windows"]

MAX_BACKFILL = timedelta(days=396)  # 13 months


def _as_dt(d: date | datetime, end: bool = False) -> datetime:
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    t = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return t + timedelta(days=1) - timedelta(seconds=1) if end else t


def backfill_windows(start: date | datetime, end: date | datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end] as <= 31-day export windows (end clamped to now; at most 13 months)."""
    s, e = _as_dt(start), _as_dt(end, end=True)
    if e - s > MAX_BACKFILL:
        raise ValueError(f"backfill range {s:%Y-%m-%d}..{e:%Y-%m-%d} is longer than 13 months")
    return [(w.start, w.end) for w in plan_windows(s, e, now=now)]


def _done_key(org_id: str, start: datetime, end: datetime) -> str:
    return f"backfill-{org_id}-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"


class _Progress:
    """Windows landed over every org, as one Prefect progress artifact."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.artifact_id: UUID | None = None

    async def start(self, description: str) -> None:
        self.artifact_id = await acreate_progress_artifact(progress=self.percent, key="circleci-backfill-progress",
                                                           description=description)  # fmt: skip

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    async def advance(self) -> None:
        self.done += 1
        assert self.artifact_id is not None, "start() first"
        await aupdate_progress_artifact(artifact_id=self.artifact_id, progress=self.percent)


async def _backfill_org(org: Org, settings: Settings, token: str, lake: Lake, summary: RunSummary,
                        windows: list[tuple[datetime, datetime]], progress: _Progress,
                        stop_after_windows: int | None) -> bool:  # fmt: skip
    """Export and land every window of one org not landed yet; True when all have landed."""
    logger = get_run_logger()
    store = lake.documents()
    exported = 0
    with housekeeping.make_scratch_dir() as workdir:
        async with steps.make_client(settings, token) as client:
            projects, unknown = await resolve_projects_task(client, org)
            summary.unknown_projects += unknown
            summary.add_rows(land_task(lake, [projects]))
            for w_start, w_end in windows:
                key = _done_key(org.id, w_start, w_end)
                if store.exists(key):
                    logger.info("window %s..%s already landed; skipping", f"{w_start:%Y-%m-%d}", f"{w_end:%Y-%m-%d}")
                    continue
                if stop_after_windows is not None and exported >= stop_after_windows:
                    return False
                result = await usage_export_task(client, settings, org, store, w_start, w_end, workdir)
                rows = land_usage_task(lake, result)
                summary.add_rows(rows)
                summary.quarantined_rows += result.quarantined_rows
                summary.usage_windows.append(f"{w_start:%Y-%m-%d}..{w_end:%Y-%m-%d}")
                store.put(key, json.dumps({"rows": rows, "landed_at": datetime.now(UTC).isoformat()}).encode())
                exported += 1
                await progress.advance()
                logger.info("backfill %s: %d/%d windows landed", org.slug, progress.done, progress.total)
            summary.add_calls(client.stats)
    return True


@flow(name="circleci-backfill", description="Backfill usage export history in <= 31-day windows, resumably.")
async def backfill(
    start: date,
    end: date,
    settings: Settings | None = None,
    build: bool = True,
    stop_after_windows: int | None = None,
) -> RunSummary | State[RunSummary]:
    """Export and land every window of [start, end] not landed yet, for every org, then build.

    `settings` default to the environment and TOML file of the machine running the flow (the
    token as in `nightly`). One org failing does not stop the others. `stop_after_windows`
    ends each org's run early (to spread a long backfill over several runs, and to test
    resumption).
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings)
    token = await resolve_token(settings)
    if not settings.orgs:
        raise SettingsError("no organisation configured: set [[orgs]] (or org_id and org_slug)")
    windows = backfill_windows(start, end, settings.now or datetime.now(UTC))
    lake = Lake(settings.lake_root)
    store = lake.documents()
    orgs = settings.orgs
    summary = RunSummary("backfill", [o.slug for o in orgs], lake_root=settings.lake_root,
                         warehouse_path=settings.warehouse_path)  # fmt: skip
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        with lake.lease(owner=housekeeping.run_label("backfill"), wait_seconds=settings.lease_wait_seconds) as lease:
            summary.note_lease(lease)
            progress = _Progress(len(orgs) * len(windows),
                                 sum(store.exists(_done_key(o.id, *w)) for o in orgs for w in windows))  # fmt: skip
            await progress.start(f"{', '.join(summary.orgs)}: usage export windows landed")
            complete, errors = True, []
            for org in orgs:
                try:
                    complete &= await _backfill_org(org, settings, token, lake, summary, windows, progress,
                                                    stop_after_windows)  # fmt: skip
                except CircleCIError as e:
                    errors.append(e)
                    complete = False
                    summary.failed_org_calls[f"org {org.slug}"] = f"{type(e).__name__}: {e}"
                    get_run_logger().error("org %s failed: %s", org.slug, summary.failed_org_calls[f"org {org.slug}"])
            if len(errors) == len(orgs):
                raise errors[0]  # nothing landed: a wrong token, org or API URL
            if build and complete:
                build_and_render(lake, settings, summary, None)
    finally:
        if heartbeat:
            heartbeat.stop()
    summary.seconds = time.perf_counter() - t0
    await acreate_markdown_artifact(
        markdown=summary.markdown() + f"\n\nWindows landed: {progress.done}/{progress.total}",
        key="circleci-backfill-summary",
    )
    if errors:
        return Completed(name="Partially Completed", data=summary,
                         message="; ".join(summary.partial_reasons()))
    if not complete:
        return Completed(name="Partially Completed", data=summary,
                         message=f"{progress.done}/{progress.total} windows landed; run again to resume")  # fmt: skip
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
