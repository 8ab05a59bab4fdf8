"""Project resolution and job discovery (core API, not Insights).

* ``extract_projects``: GET /project/{slug} for each slug -> ids, names, org, VCS url, default branch.
* ``extract_workflow_jobs``: GET /project/{slug}/pipeline -> /pipeline/{id}/workflow ->
  /workflow/{id}/job, giving one row per job of each workflow; the job test
  extractor (``connectors.tests_metadata``) takes these rows as its input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.encoding import render_path, validate_project_slug
from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.pagination import paginate_pages
from circleci_analytics.connectors.streams import STREAMS, Extract, build_table, fetch_records, parse_timestamp, utcnow

__all__ = ["extract_projects", "extract_workflow_jobs", "resolve_project"]


#: Fields every ``Project`` has (OpenAPI ``getProjectBySlug``), each a non-empty string.
PROJECT_FIELDS = ("id", "slug", "name", "organization_id", "organization_name", "organization_slug")


def check_project(body: dict[str, Any], project_slug: str) -> dict[str, Any]:
    """``body`` if it has the shape of a project, else ``DataError`` naming the slug."""
    missing = [f for f in PROJECT_FIELDS if not isinstance(body.get(f), str) or not body[f]]
    if missing:
        raise DataError(
            f"GET /project/{{slug}} for project {project_slug!r} did not answer with a project "
            f"(no {', '.join(missing)}); check the slug"
        )
    return body


async def resolve_project(client: CircleCIClient, project_slug: str) -> dict[str, Any]:
    """GET /project/{project-slug} -> one ``projects`` row (without ``extracted_at``)."""
    (body,) = await fetch_records(
        client, STREAMS["projects"], project_slug=project_slug, resource=f"project {project_slug!r}"
    )
    check_project(body, project_slug)
    vcs = body.get("vcs_info") if isinstance(body.get("vcs_info"), dict) else {}
    return {
        "project_id": body.get("id"),
        "project_slug": body.get("slug") or project_slug,
        "project_name": body.get("name"),
        "org_id": body.get("organization_id"),
        "org_name": body.get("organization_name"),
        "org_slug": body.get("organization_slug"),
        "vcs_provider": vcs.get("provider"),
        "vcs_url": vcs.get("vcs_url"),
        "default_branch": vcs.get("default_branch"),
    }


async def extract_projects(client: CircleCIClient, project_slugs: Sequence[str]) -> Extract:
    """Resolve several project slugs concurrently into the ``projects`` table.

    ``project_slug`` is the slug as *requested* (what the rest of the pipeline keys on);
    ``extra["api_slugs"]`` records any slug the API spelled differently.
    """
    for slug in project_slugs:  # every slug is checked before any request
        validate_project_slug(slug)
    at = utcnow()
    rows = await asyncio.gather(*(resolve_project(client, slug) for slug in project_slugs))
    renamed = {}
    for requested, row in zip(project_slugs, rows, strict=True):
        if row["project_slug"] != requested:
            renamed[requested] = row["project_slug"]
            row["project_slug"] = requested
        row["extracted_at"] = at
    org_slugs = {row["org_slug"] for row in rows if row["org_slug"]}
    return Extract(
        "projects",
        build_table("projects", rows),
        extracted_at=at,
        org_slug=org_slugs.pop() if len(org_slugs) == 1 else None,
        extra={"api_slugs": renamed} if renamed else {},
    )


async def _recent_pipelines(
    client: CircleCIClient,
    project_slug: str,
    branch: str | None,
    since: datetime | None,
    max_pipelines: int | None,
) -> list[dict[str, Any]]:
    """Pipelines newest first, stopping once a page is entirely older than ``since``."""
    path = render_path("/project/{project_slug}/pipeline", project_slug=project_slug)
    found: list[dict[str, Any]] = []
    async for page in paginate_pages(
        client, path, {"branch": branch}, resource=f"project {project_slug!r}"
    ):
        page_all_old = bool(page)
        for pipeline in page:
            created = parse_timestamp(pipeline.get("created_at"))
            if since is not None and created is not None and created < since:
                continue
            page_all_old = False
            found.append(pipeline)
            if max_pipelines is not None and len(found) >= max_pipelines:
                return found
        if since is not None and page_all_old:
            break
    return found


async def _workflows(client: CircleCIClient, pipeline_id: str) -> list[dict[str, Any]]:
    path = render_path("/pipeline/{pipeline_id}/workflow", pipeline_id=pipeline_id)
    return [w async for w in client.paginate(path, resource=f"pipeline {pipeline_id!r}")]


async def _jobs(client: CircleCIClient, workflow_id: str) -> list[dict[str, Any]]:
    return await fetch_records(
        client, STREAMS["workflow_jobs"], workflow_id=workflow_id, resource=f"workflow {workflow_id!r}"
    )


async def extract_workflow_jobs(
    client: CircleCIClient,
    project_slug: str,
    *,
    branch: str | None = None,
    since: datetime | None = None,
    max_pipelines: int | None = None,
) -> Extract:
    """Jobs of the project's recent pipelines (created at/after ``since``), one row per job.

    Pipelines, their workflows and their jobs are fetched concurrently within the
    client's limits. ``job_number`` is null where the API omits it (approval jobs).
    """
    at = utcnow()
    since = parse_timestamp(since) if since is not None else None
    pipelines = await _recent_pipelines(client, project_slug, branch, since, max_pipelines)
    workflow_lists = await asyncio.gather(*(_workflows(client, str(p["id"])) for p in pipelines))
    pairs = [
        (pipeline, workflow)
        for pipeline, workflows in zip(pipelines, workflow_lists, strict=True)
        for workflow in workflows
    ]
    job_lists = await asyncio.gather(*(_jobs(client, str(w["id"])) for _, w in pairs))
    rows = []
    for (pipeline, workflow), jobs in zip(pairs, job_lists, strict=True):
        vcs = pipeline.get("vcs") if isinstance(pipeline.get("vcs"), dict) else {}
        for job in jobs:
            number = job.get("job_number")
            rows.append(
                {
                    "project_slug": project_slug,
                    "pipeline_id": str(pipeline["id"]),
                    "pipeline_number": pipeline.get("number"),
                    "pipeline_created_at": parse_timestamp(pipeline.get("created_at")),
                    "branch": vcs.get("branch"),
                    "workflow_id": str(workflow["id"]),
                    "workflow_name": workflow.get("name"),
                    "workflow_status": workflow.get("status"),
                    "workflow_created_at": parse_timestamp(workflow.get("created_at")),
                    "job_id": str(job.get("id")),
                    "job_number": int(number) if number is not None else None,
                    "job_name": job.get("name"),
                    "job_type": job.get("type"),
                    "job_status": job.get("status"),
                    "job_started_at": parse_timestamp(job.get("started_at")),
                    "job_stopped_at": parse_timestamp(job.get("stopped_at")),
                    "extracted_at": at,
                }
            )
    return Extract(
        "workflow_jobs",
        build_table("workflow_jobs", rows),
        extracted_at=at,
        project_slug=project_slug,
        scope=branch,
        start=since,
        extra={"pipelines": len(pipelines), "workflows": len(pairs)},
    )
