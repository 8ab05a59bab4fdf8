"""After a build: publish the warehouse and the dashboard to object storage (always with an
``s3://`` lake, or wherever `publish_uri` says), so what one worker built every machine reads
(see `warehouse.publish`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from circleci_analytics.flows.summary import RunSummary
from circleci_analytics.settings import Settings
from circleci_analytics.warehouse.publish import POINTER, publish_build, publish_location

__all__ = ["publish_outputs", "publish_task"]


@task(cache_policy=NO_CACHE)
def publish_task(settings: Settings, uri: str) -> str:
    """Upload the warehouse (and the dashboard), then switch the pointer; returns what it names."""
    dashboard = settings.dashboard_dir if settings.render_dashboard else None
    published = publish_build(uri, settings.warehouse_path, dashboard)
    # The URI's query may hold credentials: the summary names the location without it.
    return f"{uri.split('?', 1)[0].rstrip('/')}/{POINTER} -> build {published.build_id}"


def publish_outputs(settings: Settings, summary: RunSummary) -> None:
    """Publish what the run built, if it publishes anywhere (recorded in `summary.published`)."""
    uri = publish_location(settings.publish_uri, settings.lake_root)
    if uri is not None:
        with summary.timed("publish"):
            summary.published = publish_task(settings, uri)
