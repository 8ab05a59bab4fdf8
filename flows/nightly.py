"""The nightly flow: projects -> the catalogued streams of every project (Insights) -> usage
export -> job tests -> land -> build -> dashboard -> one markdown artifact.

One project failing does not lose the others, and nothing a run fails to fetch is lost:
watermarks advance per project and stream, and only once the data landed, and test metadata
is probed for every recent job the lake holds without it, so the next run fetches what this
one missed. Anything missed is counted in the summary and the run ends *Partially Completed*.
Slowly changing snapshots are read every `snapshot_refresh_days` (their watermarks say when
each was last read), so a night's run reads little more than what is new.

Retries: see `flows.tasks` (the client retries transient errors; Prefect only the usage export).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from prefect import State, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Completed, Failed

from circleci_analytics.connectors import CircleCIError
from circleci_analytics.flows import housekeeping, steps
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.flows.tasks import (
    OrgRun,
    alerts_task,
    build_and_render,
    describe,
    land_task,
    org_projects,
    org_state,
    resolve_token,
)
from circleci_analytics.settings import Org, Settings, SettingsError, check_paths
from circleci_analytics.warehouse import BuildError, Lake

__all__ = ["nightly", "run_org"]


# -- orchestration ----------------------------------------------------------------------------
async def run_org(org: Org, settings: Settings, token: str, lake: Lake, summary: RunSummary) -> None:
    """Extract and land one org. Each watermark is saved once its data has landed: a project
    that failed keeps its watermarks, the others advance; a failed org-level call is
    reported and the rest goes on."""
    store = lake.documents()
    state, since = org_state(store, org, settings)
    start, end = steps.usage_window(state, settings)
    steps.record_history_start(state, start)
    with housekeeping.make_scratch_dir() as scratch:
        async with steps.make_client(settings, token) as client:
            run = OrgRun(org, settings, client, lake, store, state, summary, get_run_logger())
            try:
                with summary.timed("projects"):
                    projects = await org_projects(client, org, settings, summary)
                summary.add_rows(await asyncio.to_thread(land_task, lake, [projects]))
                # a not-null column: pyarrow-stubs type every to_pylist() item as nullable
                slugs: list[str] = projects.table.column("project_slug").to_pylist()  # type: ignore[assignment]
                await run.streams(slugs)
                await run.usage(start, end, scratch)
                await run.job_tests(projects, since)
            finally:
                summary.add_calls(client.stats)


@flow(name="circleci-nightly", description="Nightly CircleCI analytics: extract, land, build, render.")
async def nightly(settings: Settings | None = None) -> RunSummary | State[RunSummary]:
    """Pull every org, land it, build the warehouse, render the dashboard.

    `settings` default to the environment and TOML file of the machine running the flow. The
    token is never part of them as a parameter (excluded from their serialized form): it comes
    from $CIRCLECI_TOKEN, in-process, or the Prefect Secret block `token_secret_block`.
    """
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings)
    token = await resolve_token(settings)
    orgs = settings.orgs
    if not orgs:
        raise SettingsError("no organisation configured: set [[orgs]] (or org_id and org_slug)")
    lake_root, warehouse_path = settings.lake_root, settings.warehouse_path
    lake = Lake(lake_root)
    summary = RunSummary("nightly", [o.slug for o in orgs], lake_root=lake_root, warehouse_path=warehouse_path)
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        # One writer at a time: a second run waits `lease_wait_seconds`, then fails naming this one.
        owner = housekeeping.run_label("nightly")
        with lake.run_leases([o.id for o in orgs], owner, wait_seconds=settings.lease_wait_seconds) as lease:
            summary.note_lease(lease)
            org_errors: list[CircleCIError] = []
            for org in orgs:
                try:
                    await run_org(org, settings, token, lake, summary)
                except CircleCIError as e:
                    org_errors.append(e)
                    summary.failed_org_calls[f"org {org.slug}"] = describe(e)
                    get_run_logger().error("org %s failed: %s", org.slug, describe(e))
            if len(org_errors) == len(orgs):
                # Nothing was extracted: a wrong token, org id/slug or API URL. Say so, don't build.
                raise org_errors[0]
            state = PipelineState.load(lake.documents(), orgs[0].id)
            window_start = None
            if state.usage_exported_until:
                window_start = state.usage_exported_until - timedelta(days=max(1, settings.overlap_days))
            await asyncio.to_thread(build_and_render, lake, settings, summary, window_start)
            summary.alerts = await asyncio.to_thread(alerts_task, lake=lake, settings=settings, summary=summary)
    except (CircleCIError, BuildError) as e:  # a run that stopped early alerts too (not a busy lake: its holder does)
        summary.alerts = await asyncio.to_thread(alerts_task, lake=lake, settings=settings, summary=summary, error=e)
        raise
    finally:
        if heartbeat:
            heartbeat.stop()
    summary.seconds = time.perf_counter() - t0
    await acreate_markdown_artifact(markdown=summary.markdown(), key="circleci-nightly-summary",
                                   description="What the nightly run landed, built and found")  # fmt: skip
    if summary.status == "failed":
        return Failed(message=f"data tests failed: {', '.join(summary.data_tests_failed)}", data=summary)
    if summary.status == "partial":
        return Completed(name="Partially Completed", data=summary, message="; ".join(summary.partial_reasons()))
    return summary
