"""The Prefect tasks both flows use (`nightly` and `backfill`), and what they share around them:
the token, the retry rule, building and rendering.

Retries: the client retries transient errors (429, 5xx, transport) itself, so the API tasks
have no Prefect retries on top (a deterministic error - 400, 404, auth, validation - would
fail again, and a transient one already had its retries). Only the usage export, whose job
resumes from durable state and whose polling outlives short outages, is retried by Prefect,
and only for a transient error (`retry_if_transient`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from circleci_analytics.connectors import CircleCIClient, Extract, discover_project_slugs, is_transient
from circleci_analytics.connectors.usage_export import UsageExportResult
from circleci_analytics.flows import steps
from circleci_analytics.flows.summary import RunSummary, warehouse_highlights
from circleci_analytics.settings import Org, Settings, SettingsError
from circleci_analytics.warehouse import BuildResult, Lake, build_warehouse
from circleci_analytics.warehouse.state import Documents

__all__ = ["MissingToken", "build_and_render", "land_task", "land_usage_task", "resolve_projects_task",
           "resolve_token", "retry_if_transient", "usage_export_task"]  # fmt: skip


class MissingToken(SettingsError):
    pass


async def resolve_token(settings: Settings) -> str:
    """The API token: the one the settings hold (from $CIRCLECI_TOKEN where they were built, or
    passed in-process, never serialized), else the Prefect Secret block they name."""
    if settings.token is not None:
        return settings.token.get_secret_value()
    if settings.token_secret_block:
        from prefect.blocks.system import Secret

        secret: Secret[Any] = await Secret.aload(settings.token_secret_block)
        return secret.get()
    raise MissingToken(
        "no CircleCI token: set CIRCLECI_TOKEN to a personal API token "
        "(https://app.circleci.com/settings/user/tokens) or name a Prefect Secret block in token_secret_block"
    )


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only a transient error, never a 4xx or validation error."""
    return is_transient(state.data)


# -- tasks (arguments are live objects, so no input caching) ----------------------------------
@task(cache_policy=NO_CACHE, tags=["circleci-api"])
async def resolve_projects_task(client: CircleCIClient, org: Org) -> tuple[Extract, list[str]]:
    """Resolve (or discover) the org's projects."""
    slugs = org.projects or await discover_project_slugs(client, org.slug)
    return await steps.resolve_projects(client, slugs)


@task(retries=2, retry_delay_seconds=30, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE,
      tags=["circleci-usage-export"])  # fmt: skip
async def usage_export_task(client: CircleCIClient, settings: Settings, org: Org, store: Documents,
                            start: datetime, end: datetime, workdir: str) -> UsageExportResult:  # fmt: skip
    """Create or resume, poll, download and merge the usage export (resumable)."""
    return await steps.export_usage_window(client, settings, org, store, start, end, Path(workdir))


@task(cache_policy=NO_CACHE)
def land_task(lake: Lake, extracts: list[Extract]) -> dict[str, int]:
    """Land extracts in the lake (idempotent)."""
    return steps.land_extracts(lake, extracts)


@task(cache_policy=NO_CACHE)
def land_usage_task(lake: Lake, result: UsageExportResult) -> dict[str, int]:
    """Land a merged usage export, replacing its window."""
    return steps.land_usage(lake, result)


@task(cache_policy=NO_CACHE)
def build_task(lake: Lake, settings: Settings) -> BuildResult:
    """Build the DuckDB warehouse and run the data tests (atomic swap)."""
    return build_warehouse(lake, settings.warehouse_path, price_per_credit=settings.price_per_credit,
                           headroom=settings.rightsizing_headroom, storage_version=settings.warehouse_storage_version,
                           fail_on_test_error=False)  # fmt: skip


@task(cache_policy=NO_CACHE)
def render_task(settings: Settings) -> str:
    """Render the offline dashboard from the marts."""
    from circleci_analytics.dashboards import render_dashboard

    return str(render_dashboard(settings.warehouse_path, settings.dashboard_dir).index)


def build_and_render(lake: Lake, settings: Settings, summary: RunSummary, window_start: datetime | None) -> None:
    """Build the warehouse (and the dashboard, if the settings say so), noting it in the summary."""
    with summary.timed("build"):
        result = build_task(lake, settings)
    summary.models_built = len(result.models)
    summary.data_tests = len(result.tests)
    summary.data_tests_failed = [t.name for t in result.failed_tests]
    summary.highlights = warehouse_highlights(str(result.db_path), window_start.date() if window_start else None)
    if settings.render_dashboard:
        with summary.timed("dashboard"):
            summary.dashboard_path = render_task(settings)
