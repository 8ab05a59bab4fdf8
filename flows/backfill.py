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
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.states import Completed

from circleci_analytics.connectors.usage_export import plan_windows
from circleci_analytics.warehouse import Lake

from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.nightly import OrgTarget, build_and_render, land_usage_task, resolve_projects_task, resolve_token, usage_export_task
from circleci_analytics.flows.state import LakeStateStore
from circleci_analytics.flows.summary import RunSummary

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


@flow(name="circleci-backfill", description="Backfill usage export history in <= 31-day windows, resumably.")
async def backfill(
    org: OrgTarget,
    start: date,
    end: date,
    api_base_url: str = "https://circleci.com/api/v2",
    lake_root: str = "data/lake",
    warehouse_path: str = "data/warehouse.duckdb",
    dashboard_dir: str = "data/dashboard",
    price_per_credit: float = 0.0006,
    rightsizing_headroom: float = 0.8,
    export_poll_seconds: float = 360.0,
    token_secret_block: str | None = None,
    rate_limits: dict[str, float | None] | None = None,
    now: datetime | None = None,
    build: bool = True,
    stop_after_windows: int | None = None,
) -> RunSummary:
    """Export and land every window of [start, end] not landed yet, then build.

    `stop_after_windows` ends the run early (to spread a long backfill over several runs,
    and to test resumption).
    """
    t0 = time.perf_counter()
    logger = get_run_logger()
    token = resolve_token(token_secret_block)
    cfg = steps.PipelineConfig(
        org_id=org.id, org_slug=org.slug, projects=org.projects, api_base_url=api_base_url, lake_root=lake_root,
        warehouse_path=warehouse_path, dashboard_dir=dashboard_dir, price_per_credit=price_per_credit,
        rightsizing_headroom=rightsizing_headroom, export_poll_seconds=export_poll_seconds, rate_limits=rate_limits,
        now=now,
    )  # fmt: skip
    windows = backfill_windows(start, end, cfg.clock())
    lake = Lake(lake_root)
    store = LakeStateStore(lake)
    summary = RunSummary("backfill", [org.slug], lake_root=lake_root, warehouse_path=warehouse_path)
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    done = [w for w in windows if store.exists(_done_key(org.id, *w))]
    progress = await create_progress_artifact(progress=100.0 * len(done) / len(windows), key="circleci-backfill-progress",
                                              description=f"{org.slug}: usage export windows landed")  # fmt: skip
    scratch = steps.scratch_dir(cfg)
    workdir = Path(cfg.workdir or scratch.name)
    exported = 0
    try:
        async with steps.make_client(cfg, token) as client:
            projects, unknown = await resolve_projects_task(client, org)
            summary.unknown_projects += unknown
            summary.add_rows(steps.land_extracts(lake, [projects]))
            for w_start, w_end in windows:
                key = _done_key(org.id, w_start, w_end)
                if store.exists(key):
                    logger.info("window %s..%s already landed; skipping", f"{w_start:%Y-%m-%d}", f"{w_end:%Y-%m-%d}")
                    continue
                if stop_after_windows is not None and exported >= stop_after_windows:
                    break
                result = await usage_export_task(client, cfg, store, w_start, w_end, str(workdir))
                rows = land_usage_task(lake, result)
                summary.add_rows(rows)
                summary.quarantined_rows += result.quarantined_rows
                summary.usage_windows.append(f"{w_start:%Y-%m-%d}..{w_end:%Y-%m-%d}")
                store.put(key, json.dumps({"rows": rows, "landed_at": datetime.now(UTC).isoformat()}).encode())
                done.append((w_start, w_end))
                exported += 1
                await update_progress_artifact(artifact_id=progress, progress=100.0 * len(done) / len(windows))
                logger.info("backfill %s: %d/%d windows landed", org.slug, len(done), len(windows))
            summary.add_calls(client.stats)
    finally:
        if scratch is not None:
            scratch.cleanup()
    complete = len(done) == len(windows)
    if build and complete:
        build_and_render(lake, cfg, summary, None)
    summary.seconds = time.perf_counter() - t0
    await create_markdown_artifact(
        markdown=summary.markdown() + f"\n\nWindows landed: {len(done)}/{len(windows)}", key="circleci-backfill-summary"
    )
    if heartbeat:
        heartbeat.stop()
    if not complete:
        return Completed(name="Partially Completed", data=summary,
                         message=f"{len(done)}/{len(windows)} windows landed; run again to resume")  # fmt: skip
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
