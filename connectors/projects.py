"""Projects: the ``projects`` stream's handler, and discovery of an org's projects.

The catalogue's field map lands a project's metadata; what this handler adds: every slug is
checked before any request, a body that is not a project is refused (``DataError`` naming the
slug), and the slug lands as configured, which is what the rest of the pipeline keys on (a
slug the API spells differently is reported in ``extra["api_slugs"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.encoding import render_path, validate_project_slug
from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.extract import Extract, fetch_records, utcnow

__all__ = ["discover_project_slugs", "extract_projects"]

#: Fields every ``Project`` has (OpenAPI ``getProjectBySlug``), each a non-empty string.
PROJECT_FIELDS = ("id", "slug", "name", "organization_id", "organization_name", "organization_slug")


def check_project(body: Mapping[str, Any], project_slug: str) -> Mapping[str, Any]:
    """``body`` if it has the shape of a project, else ``DataError`` naming the slug."""
    missing = [f for f in PROJECT_FIELDS if not isinstance(body.get(f), str) or not body[f]]
    if missing:
        raise DataError(
            f"GET /project/{{slug}} for project {project_slug!r} did not answer with a project "
            f"(no {', '.join(missing)}); check the slug"
        )
    return body


async def _project(client: CircleCIClient, slug: str) -> Any:
    ((context, (body,), _),) = await fetch_records(client, CATALOGUE["projects"], {"project_slug": slug})
    return context, [check_project(body, slug)], body


async def extract_projects(client: CircleCIClient, project_slugs: Sequence[str]) -> Extract:
    """Resolve several project slugs concurrently into the ``projects`` table."""
    for slug in project_slugs:  # every slug is checked before any request
        validate_project_slug(slug)
    at = utcnow()
    batches = await asyncio.gather(*(_project(client, slug) for slug in project_slugs))
    renamed = {slug: body["slug"] for slug, (_, _, body) in zip(project_slugs, batches, strict=True)
               if body["slug"] != slug}  # fmt: skip
    table = CATALOGUE["projects"].table(batches, at)
    org_slugs = set(table.column("org_slug").to_pylist()) - {None}
    context = {"org_slug": org_slugs.pop()} if len(org_slugs) == 1 else {}
    return Extract("projects", table, at, context, extra={"api_slugs": renamed} if renamed else {})


async def discover_project_slugs(client: CircleCIClient, org_slug: str) -> list[str]:
    """The projects Insights' org summary names (last 90 days), as ``<org_slug>/<name>`` slugs.

    GitHub-App/GitLab projects (``circleci/<org>/<project>`` slugs) cannot be derived from a
    name: configure those explicitly. The summary is read for this and not landed.
    """
    path = render_path("/insights/{org_slug}/summary", org_slug=org_slug)
    body = await client.get_json(path, {"reporting-window": "last-90-days"}, resource=f"org {org_slug!r}")
    projects = body.get("org_project_data") if isinstance(body, dict) else None
    if not isinstance(projects, list):
        raise DataError(f"org summary of {org_slug!r}: no list of projects (org_project_data)")
    return sorted({f"{org_slug}/{p['project_name']}" for p in projects if isinstance(p, dict) and p.get("project_name")})
