"""The backfill flow: the usage export back to what the API keeps (365 days), one <= 31-day
window at a time, then Insights' workflow runs (their 90 days) and the other catalogued
streams, and the test metadata of the tests look-back (the nightly's steps, `OrgRun`).

A start older than the API allows is clamped to the oldest it accepts, with one warning
saying so. Resumable: each window's export job is kept in the lake's state store (a
restarted run resumes polling the same job, never POSTs twice), and a window that has landed
is marked done, so re-running the backfill skips it. The 10-per-hour POST budget is respected
by the connectors (client-side limiter plus Retry-After on 429). Progress is a Prefect
progress artifact and, on a terminal, a rich progress bar (`flows.progress`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from prefect import State, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Completed

from circleci_analytics.connectors import CircleCIError
from circleci_analytics.connectors.usage_export import plan_windows
from circleci_analytics.connectors.usage_export.windows import MAX_LOOKBACK
from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.progress import BackfillProgress
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.flows.tasks import (
    OrgRun,
    build_and_render,
    land_task,
    land_usage_task,
    org_projects,
    org_state,
    resolve_token,
    usage_export_task,
)
from circleci_analytics.settings import Org, Settings, SettingsError, check_paths
from circleci_analytics.warehouse import Lake

__all__ = ["backfill", "backfill_windows", "oldest_start"]


def _as_dt(d: date | datetime, end: bool = False) -> datetime:
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    t = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return t + timedelta(days=1) - timedelta(seconds=1) if end else t


def oldest_start(now: datetime) -> datetime:
    """The oldest start the usage export accepts (`MAX_LOOKBACK` before now), from the next
    midnight: the first window's job is created a little after it is planned."""
    oldest = now - MAX_LOOKBACK
    return oldest.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def backfill_windows(start: date | datetime, end: date | datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end] as <= 31-day export windows: start clamped to `oldest_start`, end to now."""
    s, e = max(_as_dt(start), oldest_start(now)), _as_dt(end, end=True)
    return [(w.start, w.end) for w in plan_windows(s, e, now=now)]


def _done_key(org_id: str, start: datetime, end: datetime) -> str:
    return f"backfill-{org_id}-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"


async def _backfill_org(org: Org, settings: Settings, token: str, lake: Lake, summary: RunSummary,
                        windows: list[tuple[datetime, datetime]], progress: BackfillProgress,
                        stop_after_windows: int | None) -> bool:  # fmt: skip
    """Export and land every window of one org not landed yet, then (once all have) the
    catalogued streams from the first window on and the tests look-back; True when complete."""
    logger = get_run_logger()
    store = lake.documents()
    state, tests_since = org_state(store, org, settings)
    with housekeeping.make_scratch_dir() as workdir:
        async with steps.make_client(settings, token) as client:
            try:
                projects = await org_projects(client, org, settings, summary)
                summary.add_rows(land_task(lake, [projects]))
                if not await _usage_windows(org, settings, client, lake, summary, windows, progress, workdir,
                                            stop_after_windows):  # fmt: skip
                    return False
                run = OrgRun(org, settings, client, lake, store, state, summary, logger, history_from=windows[0][0])
                progress.waiting("Insights and test metadata")
                await run.streams([str(s) for s in projects.table.column("project_slug").to_pylist()])
                await run.job_tests(projects, tests_since)
                progress.waiting("")
            finally:
                summary.add_calls(client.stats)
    return True


async def _usage_windows(org: Org, settings: Settings, client: Any, lake: Lake, summary: RunSummary,
                         windows: list[tuple[datetime, datetime]], progress: BackfillProgress, workdir: str,
                         stop_after_windows: int | None) -> bool:  # fmt: skip
    """Export and land the windows not landed yet; True when all have landed."""
    logger = get_run_logger()
    store = lake.documents()
    exported = 0
    for w_start, w_end in windows:
        key = _done_key(org.id, w_start, w_end)
        if store.exists(key):
            logger.info("window %s..%s already landed; skipping", f"{w_start:%Y-%m-%d}", f"{w_end:%Y-%m-%d}")
            continue
        if stop_after_windows is not None and exported >= stop_after_windows:
            return False
        result = await usage_export_task(client, settings, org, store, w_start, w_end, workdir, progress.sleep)
        rows = land_usage_task(lake, result)
        summary.add_rows(rows)
        summary.quarantined_rows += result.quarantined_rows
        summary.usage_windows.append(f"{w_start:%Y-%m-%d}..{w_end:%Y-%m-%d}")
        store.put(key, json.dumps({"rows": rows, "landed_at": datetime.now(UTC).isoformat()}).encode())
        exported += 1
        await progress.advance()
        logger.info("backfill %s: %d/%d windows landed", org.slug, progress.done, progress.total)
    return True


@flow(
    name="circleci-backfill",
    description="Backfill the usage export (<= 31-day windows, resumably), Insights and test metadata.",
)
async def backfill(
    start: date,
    end: date,
    settings: Settings | None = None,
    build: bool = True,
    stop_after_windows: int | None = None,
) -> RunSummary | State[RunSummary]:
    """Export and land every window of [start, end] not landed yet (start clamped to what the
    API keeps), then Insights and test metadata, for every org; then build.

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
    now = steps.clock(settings)
    windows = backfill_windows(start, end, now)
    if _as_dt(start) < windows[0][0]:
        get_run_logger().warning("usage export start %s clamped to %s: the API keeps %d days of usage", f"{start:%Y-%m-%d}",
                                 f"{windows[0][0]:%Y-%m-%d}", MAX_LOOKBACK.days)  # fmt: skip
    lake = Lake(settings.lake_root)
    store = lake.documents()
    orgs = settings.orgs
    summary = RunSummary("backfill", [o.slug for o in orgs], lake_root=settings.lake_root,
                         warehouse_path=settings.warehouse_path)  # fmt: skip
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        owner = housekeeping.run_label("backfill")
        with lake.run_leases([o.id for o in orgs], owner, wait_seconds=settings.lease_wait_seconds) as lease:
            summary.note_lease(lease)
            progress = BackfillProgress(len(orgs) * len(windows),
                                        sum(store.exists(_done_key(o.id, *w)) for o in orgs for w in windows))  # fmt: skip
            await progress.start(f"{', '.join(summary.orgs)}: usage export windows landed")
            complete, errors = True, []
            try:
                for org in orgs:
                    try:
                        complete &= await _backfill_org(org, settings, token, lake, summary, windows, progress,
                                                        stop_after_windows)  # fmt: skip
                    except CircleCIError as e:
                        errors.append(e)
                        complete = False
                        summary.failed_org_calls[f"org {org.slug}"] = f"{type(e).__name__}: {e}"
                        get_run_logger().error(
                            "org %s failed: %s", org.slug, summary.failed_org_calls[f"org {org.slug}"]
                        )
            finally:
                progress.stop()
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
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    if not complete:
        return Completed(name="Partially Completed", data=summary,
                         message=f"{progress.done}/{progress.total} windows landed; run again to resume")  # fmt: skip
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
