"""Projects: the ``projects`` stream's handler, and discovery of an org's projects.

The catalogue's field map lands a project's metadata; what this handler adds: every slug is
checked before any request, a body that is not a project is refused (``DataError`` naming the
slug), and the slug lands as configured, which is what the rest of the pipeline keys on (a
slug the API spells differently is reported in ``extra["api_slugs"]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.encoding import render_path, validate_project_slug
from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.extract import Extract, fetch_records, utcnow
from circleci_analytics.connectors.pagination import paginate_pages
from circleci_analytics.connectors.streams import parse_timestamp

__all__ = [
    "DISCOVERY_LOOKBACK",
    "DISCOVERY_MAX_PAGES",
    "Discovery",
    "discover_projects",
    "extract_projects",
    "insights_project_names",
    "pipeline_project_slugs",
]

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


#: How far back discovery looks for pipelines: Insights' longest reporting window, so the
#: projects found are comparable with the org summary's (``last-90-days``).
DISCOVERY_LOOKBACK = timedelta(days=90)
#: At most this many pages of ``GET /pipeline`` per org and run (bounded cost for a busy org;
#: a project only older pages name is then reported by the cross-check).
DISCOVERY_MAX_PAGES = 100


@dataclass(frozen=True)
class Discovery:
    """An org's projects as its pipelines name them, and what Insights' org summary names."""

    slugs: list[str]  # the project slugs of the org's pipelines since `since`, sorted
    insights_names: list[str] | None  # the org summary's ``all_projects`` (None: it failed)
    pages: int  # pages of ``GET /pipeline`` read
    truncated: bool  # stopped at `DISCOVERY_MAX_PAGES` before reaching `since`

    def mismatches(self, names_by_slug: Mapping[str, str | None]) -> list[str]:
        """The projects only one source names, one phrase each (`names_by_slug`: the resolved
        name of each discovered slug)."""
        if self.insights_names is None:
            return []
        names = {name for name in names_by_slug.values() if name}
        only_insights = sorted(set(self.insights_names) - names)
        only_pipelines = sorted(slug for slug, name in names_by_slug.items() if name not in self.insights_names)
        return ([f"{n}: in Insights' org summary, no pipeline since the look-back" for n in only_insights]
                + [f"{s}: has pipelines, not in Insights' org summary" for s in only_pipelines])  # fmt: skip


async def pipeline_project_slugs(client: CircleCIClient, org_slug: str, since: datetime,
                                 max_pages: int = DISCOVERY_MAX_PAGES) -> tuple[list[str], int, bool]:  # fmt: skip
    """The project slugs of the org's pipelines created since `since` (``GET /pipeline?org-slug=``,
    newest first), as the API spells them: opaque ``circleci/<org>/<project>`` slugs of
    GitHub-App and GitLab projects included. Returns them, the pages read and whether
    `max_pages` may have stopped the listing first."""
    slugs: set[str] = set()
    pages = 0
    async for items in paginate_pages(client, "/pipeline", {"org-slug": org_slug}, resource=f"org {org_slug!r}",
                                      max_pages=max_pages):  # fmt: skip
        pages += 1
        created = [parse_timestamp(p.get("created_at")) if isinstance(p, dict) else None for p in items]
        slugs |= {p["project_slug"] for p, at in zip(items, created, strict=True)
                  if at is not None and at >= since and isinstance(p.get("project_slug"), str)}  # fmt: skip
        if any(at is not None and at < since for at in created):
            return sorted(slugs), pages, False  # newest first: the rest is older
    return sorted(slugs), pages, pages >= max_pages  # a full last page may have had more after it


async def insights_project_names(client: CircleCIClient, org_slug: str) -> list[str]:
    """The names of the projects Insights' org summary covers (``all_projects``, last 90 days);
    read for discovery's cross-check, not landed."""
    path = render_path("/insights/{org_slug}/summary", org_slug=org_slug)
    body = await client.get_json(path, {"reporting-window": "last-90-days"}, resource=f"org {org_slug!r}")
    names = body.get("all_projects") if isinstance(body, dict) else None
    if not isinstance(names, list):
        raise DataError(f"org summary of {org_slug!r}: no list of projects (all_projects)")
    return sorted({n for n in names if isinstance(n, str) and n})


async def discover_projects(client: CircleCIClient, org_slug: str, now: datetime,
                            max_pages: int = DISCOVERY_MAX_PAGES) -> Discovery:  # fmt: skip
    """An org's projects, for every kind of org: the slugs its pipelines name (the only source
    of GitHub-App/GitLab slugs: no slug is built from a name), with Insights' org summary
    read alongside as a cross-check (a failed summary does not stop discovery)."""
    listed, names = await asyncio.gather(
        pipeline_project_slugs(client, org_slug, now - DISCOVERY_LOOKBACK, max_pages),
        insights_project_names(client, org_slug), return_exceptions=True)  # fmt: skip
    if isinstance(listed, BaseException):
        raise listed
    slugs, pages, truncated = listed
    return Discovery(slugs, None if isinstance(names, BaseException) else names, pages, truncated)
