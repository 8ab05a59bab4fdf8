"""The nightly spread over a work pool: one flow run per organisation, then one build.

``nightly_fanout`` (deployment ``nightly-fanout``) starts a run of the per-org deployment
(``circleci-nightly-org/nightly-org``) for each org, with its own settings restricted to that
org, waits for them all, then builds the warehouse and renders the dashboard once, under the
lake's lease, and publishes them (an ``s3://`` lake). Workers pick the per-org runs up, so orgs
are extracted on several machines at once.

``nightly_org`` extracts and lands the orgs of its settings (normally one) holding only their
org leases: runs of different orgs extract in parallel; each landing takes the lake's lease for
the call (every lake table but the usage export has partitions that orgs share), so writes
never interleave. A second run of the same org, or a single-process ``nightly`` (which takes
every org's lease, then the lake's), waits for it. See `warehouse.lake` for the lease rules.

Across machines the lake must be shared (``s3://``); on one machine a local lake works too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.deployments import arun_deployment
from prefect.states import Completed, Failed, State

from circleci_analytics.connectors import CircleCIError
from circleci_analytics.flows import housekeeping
from circleci_analytics.flows.nightly import run_org
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.flows.tasks import build_and_render, resolve_token
from circleci_analytics.settings import Org, Settings, SettingsError, check_paths
from circleci_analytics.warehouse import Lake

__all__ = ["ORG_DEPLOYMENT", "nightly_fanout", "nightly_org", "settings_for_org"]

#: The per-org deployment `nightly_fanout` starts (``<flow name>/<deployment name>``, prefect.yaml).
ORG_DEPLOYMENT = "circleci-nightly-org/nightly-org"
PARTIAL = "Partially Completed"


def _orgs(settings: Settings) -> list[Org]:
    if not settings.orgs:
        raise SettingsError("no organisation configured: set [[orgs]] (or org_id and org_slug)")
    return settings.orgs


def _outcome(summary: RunSummary) -> State | RunSummary:
    """The run's final state: Failed on failed data tests, Partially Completed if it missed anything."""
    if summary.status == "failed":
        return Failed(message=f"data tests failed: {', '.join(summary.data_tests_failed)}", data=summary)
    if summary.status == "partial":
        return Completed(name=PARTIAL, data=summary, message="; ".join(summary.partial_reasons()))
    return summary


async def _report(summary: RunSummary, t0: float, key: str) -> State | RunSummary:
    summary.seconds = time.perf_counter() - t0
    await acreate_markdown_artifact(markdown=summary.markdown(), key=key, description="What the run landed and built")
    return _outcome(summary)


@flow(name="circleci-nightly-org", description="Extract and land the configured orgs (normally one); no build.")
async def nightly_org(settings: Settings | None = None) -> RunSummary | State:
    """Extract and land each org of `settings` holding its org lease (not the lake's): runs of
    other orgs go on in parallel. The token as in `nightly`."""
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings, warehouse=False, dashboard=False)
    token = await resolve_token(settings)
    orgs = _orgs(settings)
    lake = Lake(settings.lake_root)
    summary = RunSummary("nightly-org", [o.slug for o in orgs], lake_root=settings.lake_root)
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        with lake.org_leases([o.id for o in orgs], housekeeping.run_label("nightly-org"),
                             wait_seconds=settings.lease_wait_seconds):  # fmt: skip
            failed = []
            for org in orgs:
                try:
                    await run_org(org, settings, token, lake, summary)
                except CircleCIError as e:
                    failed.append(e)
                    summary.failed_org_calls[f"org {org.slug}"] = f"{type(e).__name__}: {e}"
                    get_run_logger().error("org %s failed: %s", org.slug, summary.failed_org_calls[f"org {org.slug}"])
            if len(failed) == len(orgs):
                raise failed[0]  # nothing extracted: a wrong token, org id/slug or API URL
    finally:
        if heartbeat:
            heartbeat.stop()
    return await _report(summary, t0, "circleci-nightly-org-summary")


def settings_for_org(settings: Settings, org: Org) -> dict:
    """The per-org run's parameter: these settings with only `org` (the token is never in them)."""
    return settings.model_copy(update={"orgs": [org]}).model_dump(mode="json")


async def _run_org(deployment: str, settings: Settings, org: Org, poll_seconds: float) -> FlowRun:
    ctx = FlowRunContext.get()
    parent = ctx.flow_run.id if ctx and ctx.flow_run else None
    return await arun_deployment(
        deployment, parameters={"settings": settings_for_org(settings, org)}, flow_run_name=f"nightly-org {org.slug}",
        poll_interval=poll_seconds, timeout=None, idempotency_key=f"{parent}:{org.id}" if parent else None,
    )  # fmt: skip


@flow(name="circleci-nightly-fanout", description="One nightly-org run per org across the workers, then one build.")
async def nightly_fanout(settings: Settings | None = None, org_deployment: str = ORG_DEPLOYMENT,
                         poll_seconds: float = 5.0) -> RunSummary | State:  # fmt: skip
    """Run `org_deployment` once per org and wait for them all; then build, render and publish
    once. An org whose run failed is reported (the run ends *Partially Completed*); when every
    org failed nothing is built. The work pool needs room for this run and the org runs at
    once (a worker `--limit` of at least orgs + 1, or several workers)."""
    t0 = time.perf_counter()
    settings = settings or Settings()
    check_paths(settings)
    orgs = _orgs(settings)
    summary = RunSummary("nightly-fanout", [o.slug for o in orgs], lake_root=settings.lake_root,
                         warehouse_path=settings.warehouse_path)  # fmt: skip
    heartbeat, summary.cleaned_up = await housekeeping.start_run()
    try:
        with summary.timed("org_runs"):
            runs = await asyncio.gather(*(_run_org(org_deployment, settings, org, poll_seconds) for org in orgs))
        await _build_once(settings, orgs, runs, summary)
    finally:
        if heartbeat:
            heartbeat.stop()
    return await _report(summary, t0, "circleci-nightly-fanout-summary")


async def _build_once(settings: Settings, orgs: list[Org], runs: list[FlowRun], summary: RunSummary) -> None:
    """Record each org run's outcome; unless every one failed, build, render and publish once."""
    logger = get_run_logger()
    for org, run in zip(orgs, runs, strict=True):
        state = run.state
        outcome = f"run {run.name} {state.name if state else 'unknown'}"
        summary.timings[f"org {org.slug}"] = run.total_run_time.total_seconds()
        if state is None or not state.is_completed() or state.name == PARTIAL:
            summary.failed_org_calls[f"org {org.slug}"] = f"{outcome}: {state.message if state else ''}"
        logger.info("org %s: %s", org.slug, outcome)
    if all(run.state is None or not run.state.is_completed() for run in runs):
        raise RuntimeError("every org run failed, nothing was built: " + "; ".join(summary.failed_org_calls.values()))
    lake = Lake(settings.lake_root)
    with lake.lease(housekeeping.run_label("nightly-fanout"), wait_seconds=settings.lease_wait_seconds) as lease:
        summary.note_lease(lease)
        pipeline = PipelineState.load(lake.documents(), orgs[0].id)
        window_start = None
        if pipeline.usage_exported_until:
            window_start = pipeline.usage_exported_until - timedelta(days=max(1, settings.overlap_days))
        await asyncio.to_thread(build_and_render, lake, settings, summary, window_start)
