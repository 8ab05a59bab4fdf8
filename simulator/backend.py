"""The simulator's backend: one method per API operation, no HTTP (after moto).

Methods return JSON-ready data; list operations return their items as a list, or as a lazy
`PipelineFeed` that can be sliced, and the HTTP layer paginates them. Errors are `ApiError`
subclasses carrying CircleCI's status and message.

Several organisations can be served at once (`SimConfig.extra_orgs`): every operation answers
from the org its project, org slug, org id or entity id belongs to.

Readings where CircleCI documents nothing (unverified against the live API):
- `GET /pipeline` without `org-slug` lists the first org of /me/collaborations; an org slug
  that is not `vcs/name` is a 400, one the user is not a member of a 404 "Organization not
  found" (as the org summary and the usage export answer an unknown org).
- "Projects you follow" are all the org's projects: the API user follows every project.

Not implemented (honestly): write operations other than creating a usage export; pipeline
`trigger_parameters` (so GitHub-App pipelines carry no `github_app` block) and pipeline
config; job artifacts; hourly time-series older than 48 h is served anyway (CircleCI drops it).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import Org, Project
from .config import SimConfig
from .faults import FaultPlan
from .feeds import PipelineFeed
from .history import History, JobRun, Pipeline, WorkflowRun
from .insights import REPORTING_WINDOWS, InsightsEngine, Scope, iso
from .ratelimit import RateLimiter
from .usage_export import ExportJob, plan_parts

__all__ = ["ApiError", "BadRequest", "NotFound", "Unauthorized", "Backend", "parse_datetime", "FOLLOWED_PROJECTS_LIMIT"]

#: `GET /pipeline` covers "the most recently built projects (max 250) you follow".
FOLLOWED_PROJECTS_LIMIT = 250


class ApiError(Exception):
    status = 500
    message = "Internal server error."

    def __init__(self, message: str | None = None, status: int | None = None):
        self.message = message or self.message
        self.status = status or self.status
        super().__init__(self.message)


class BadRequest(ApiError):
    status = 400
    message = "Unexpected request body provided."


class NotFound(ApiError):
    status = 404
    message = "Not Found"


class Unauthorized(ApiError):
    status = 401
    message = "You must log in first."


def parse_datetime(value: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise BadRequest(f"Invalid {name}: {value!r} is not an ISO 8601 date-time.") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Backend:
    """State and behaviour of the simulated CircleCI organisations (one user, one clock)."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.history = History(config)
        self.insights = InsightsEngine(self.history)
        self.catalog = self.history.catalog
        self._t0 = time.monotonic()
        self._skew = 0.0
        self.faults = FaultPlan(config.faults, config.seed)
        self.limiter = RateLimiter(config.rate_limits, config.time_scale, self.wall)
        self.exports: dict[str, ExportJob] = {}
        #: Every usage-export POST that created a job: (org_id, start, end, job id).
        self.export_posts: list[tuple[str, datetime, datetime, str]] = []
        self._secret = hashlib.sha256(f"{config.seed}:{config.token}:url-signing".encode()).digest()
        self._lock = threading.Lock()

    # -- clock -----------------------------------------------------------------------------
    def wall(self) -> float:
        """Real seconds since the simulator started (drives export states, TTLs, limits)."""
        return time.monotonic() - self._t0 + self._skew

    def advance_clock(self, seconds: float) -> None:
        """Move the simulator clock forward without sleeping (tests): export states, URL
        expiry, rate-limit refills and `clock_now` all see the jump. History is unchanged."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._skew += seconds

    def clock_now(self) -> datetime:
        """The simulated world's current time: `now` plus real time elapsed."""
        return self.history.now + timedelta(seconds=self.wall())

    # -- lookups ---------------------------------------------------------------------------
    def project(self, slug: str) -> Project:
        normal = slug.replace("github/", "gh/", 1) if slug.startswith("github/") else slug
        normal = normal.replace("bitbucket/", "bb/", 1) if normal.startswith("bitbucket/") else normal
        project = self.catalog.project_by_slug(normal)
        if project is None:
            raise NotFound("Project not found")
        return project

    def org_by_slug(self, org_slug: str) -> Org:
        org = self.catalog.org_by_slug(org_slug)
        if org is None:
            raise NotFound("Organization not found")
        return org

    def org_by_id(self, org_id: str) -> Org:
        org = self.catalog.org_by_id(org_id)
        if org is None:
            raise NotFound("Organization not found")
        return org

    def _scope(self, project: Project, branch: str | None, all_branches: bool) -> Scope:
        if all_branches:
            return Scope(None, True)
        return Scope(branch if branch else project.default_branch)

    def _window(self, value: str | None) -> str:
        value = value or "last-90-days"
        if value not in REPORTING_WINDOWS:
            raise BadRequest(f"Invalid reporting-window '{value}'. Valid values are: {', '.join(REPORTING_WINDOWS)}.")
        return value

    def _workflow(self, project: Project, name: str) -> str:
        # CircleCI answers an unknown workflow with empty data rather than an error.
        return name

    # -- users -----------------------------------------------------------------------------
    @property
    def user_id(self) -> str:
        """The API user's id (/me): `mine` filters keep the pipelines this user triggered."""
        return self.catalog.users[0][0]

    def get_current_user(self) -> dict:
        uid, login = self.catalog.users[0]
        return {"id": uid, "login": login, "name": login.replace("-", " ").title(), "avatar_url": None}

    def get_collaborations(self) -> list[dict]:
        return [{"id": org.id, "vcs-type": org.vcs_type, "name": org.name,
                 "avatar_url": f"https://avatars.example/{org.name}", "slug": org.slug}
                for org in self.catalog.orgs]  # fmt: skip

    # -- projects, pipelines, workflows, jobs ----------------------------------------------
    def get_project(self, slug: str) -> dict:
        p = self.project(slug)
        org = self.catalog.org_of(p)
        return {
            "slug": p.slug, "name": p.name, "id": p.id, "organization_name": org.name,
            "organization_slug": org.slug, "organization_id": org.id,
            "vcs_info": {"vcs_url": p.vcs_url, "provider": p.provider, "default_branch": p.default_branch},
        }  # fmt: skip

    def _pipeline_json(self, pl: Pipeline) -> dict:
        p = pl.project
        return {
            "id": pl.id, "errors": [], "project_slug": p.slug, "updated_at": iso(pl.created_at),
            "number": pl.number, "state": "created", "created_at": iso(pl.created_at),
            "trigger": {"type": pl.trigger_type, "received_at": iso(pl.created_at),
                        "actor": {"login": pl.actor_login, "avatar_url": None}},
            "vcs": {"provider_name": "GitHub", "origin_repository_url": p.vcs_url,
                    "target_repository_url": p.vcs_url, "revision": pl.revision, "branch": pl.branch,
                    "commit": {"subject": f"Change {pl.revision[:7]}", "body": ""}},
        }  # fmt: skip

    def _mine(self, pl: Pipeline) -> bool:
        return pl.actor_id == self.user_id

    def list_pipelines(self, slug: str, branch: str | None) -> PipelineFeed:
        """`GET /project/{slug}/pipeline`: newest first (by number), optionally one branch."""
        keep = (lambda pl: pl.branch == branch) if branch else None
        return PipelineFeed(self.history, [self.project(slug)], self._pipeline_json, keep)

    def list_my_pipelines(self, slug: str) -> PipelineFeed:
        """`GET /project/{slug}/pipeline/mine`: the project's pipelines the API user triggered."""
        return PipelineFeed(self.history, [self.project(slug)], self._pipeline_json, self._mine)

    def list_org_pipelines(self, org_slug: str | None, mine: bool) -> PipelineFeed:
        """`GET /pipeline`: every pipeline of the org's most recently built projects (at most
        `FOLLOWED_PROJECTS_LIMIT`), newest first by creation time; `mine`: only the API user's."""
        if org_slug is None:
            org = self.catalog.org
        else:
            parts = org_slug.split("/")
            if len(parts) != 2 or not all(parts):
                raise BadRequest(f"Invalid org-slug '{org_slug}': expected vcs-slug/org-name "
                                 "(circleci/<organization id> for GitHub App and GitLab orgs).")  # fmt: skip
            org = self.org_by_slug(org_slug)
        return PipelineFeed(self.history, self.followed_projects(org), self._pipeline_json,
                            self._mine if mine else None)  # fmt: skip

    def followed_projects(self, org: Org) -> list[Project]:
        """The org's projects `GET /pipeline` covers: all of them up to the limit, else the
        most recently built (by their last finished job)."""
        projects = list(self.catalog.projects_of(org))
        if len(projects) <= FOLLOWED_PROJECTS_LIMIT:
            return projects
        last = self.history.last_build_finished_at
        return sorted(projects, key=lambda p: (last[p.index], p.index), reverse=True)[:FOLLOWED_PROJECTS_LIMIT]

    def get_pipeline(self, pipeline_id: str) -> dict:
        pl = self.history.find_pipeline(pipeline_id)
        if pl is None:
            raise NotFound("Pipeline not found")
        return self._pipeline_json(pl)

    def _workflow_json(self, w: WorkflowRun) -> dict:
        pl = w.pipeline
        d = {
            "pipeline_id": pl.id, "id": w.id, "name": w.name, "project_slug": pl.project.slug,
            "status": w.status, "started_by": pl.actor_id, "pipeline_number": pl.number,
            "created_at": iso(w.created_at), "stopped_at": iso(w.stopped_at),
        }  # fmt: skip
        if w.status == "canceled":
            d["canceled_by"] = pl.actor_id
        return d

    def list_pipeline_workflows(self, pipeline_id: str) -> list[dict]:
        pl = self.history.find_pipeline(pipeline_id)
        if pl is None:
            raise NotFound("Pipeline not found")
        return [self._workflow_json(w) for w in pl.workflows]

    def get_workflow(self, workflow_id: str) -> dict:
        w = self.history.find_workflow(workflow_id)
        if w is None:
            raise NotFound("Workflow not found")
        return self._workflow_json(w)

    def list_workflow_jobs(self, workflow_id: str) -> list[dict]:
        w = self.history.find_workflow(workflow_id)
        if w is None:
            raise NotFound("Workflow not found")
        ids = {j.name: j.id for j in w.jobs}
        out = []
        for j in w.jobs:
            d: dict[str, Any] = {
                "dependencies": [ids[r] for r in j.definition.requires if r in ids],
                "id": j.id, "started_at": iso(j.started_at), "name": j.name,
                "project_slug": w.pipeline.project.slug, "status": j.status, "type": j.type,
                "stopped_at": iso(j.stopped_at),
            }  # fmt: skip
            if j.number is not None:
                d["job_number"] = j.number
            if j.type == "approval":
                d["approval_request_id"] = j.id
                d["approved_by"] = w.pipeline.actor_id
            out.append(d)
        return out

    def _job(self, slug: str, number: str) -> tuple[Project, JobRun]:
        p = self.project(slug)
        try:
            n = int(number)
        except ValueError:
            raise BadRequest(f"Invalid job number '{number}'.") from None
        job = self.history.find_job(p, n)
        if job is None:
            raise NotFound("Job not found")
        return p, job

    def get_job_details(self, slug: str, number: str) -> dict:
        p, j = self._job(slug, number)
        w = j.workflow
        return {
            "web_url": f"https://app.circleci.com/pipelines/{p.slug}/{w.pipeline.number}/workflows/{w.id}/jobs/{j.number}",
            "project": {"id": p.id, "slug": p.slug, "name": p.name, "external_url": p.vcs_url},
            "parallel_runs": [{"index": i, "status": j.status} for i in range(j.parallelism)],
            "started_at": iso(j.started_at), "latest_workflow": {"id": w.id, "name": w.name},
            "name": j.name, "executor": {"resource_class": j.resource_class, "type": j.executor},
            "parallelism": j.parallelism, "status": j.status, "number": j.number,
            "pipeline": {"id": w.pipeline.id}, "duration": j.run_seconds * 1000,
            "created_at": iso(j.queued_at), "messages": [], "contexts": [],
            "organization": {"name": self.catalog.org_of(p).name}, "queued_at": iso(j.queued_at),
            "stopped_at": iso(j.stopped_at),
        }  # fmt: skip

    def get_tests(self, slug: str, number: str) -> list[dict]:
        _, j = self._job(slug, number)
        return [
            {"message": t.message, "source": t.source, "run_time": t.run_time, "file": t.file,
             "result": t.result, "name": t.name, "classname": t.classname}
            for t in j.test_results()
        ]  # fmt: skip

    # -- insights --------------------------------------------------------------------------
    def org_summary(self, org_slug: str, reporting_window: str | None, project_names: list[str]) -> dict:
        """Projects appear by name (GitHub-App ones too: their slugs are opaque)."""
        org = self.org_by_slug(org_slug)
        window = self._window(reporting_window)
        projects = [p for p in self.catalog.projects_of(org) if not project_names or p.name in project_names]
        return self.insights.org_summary(projects, window)

    def project_summary(
        self, slug: str, reporting_window: str | None, branches: list[str], workflows: list[str]
    ) -> dict:
        return self.insights.project_summary(self.project(slug), self._window(reporting_window), branches, workflows)

    def workflow_metrics(
        self, slug: str, branch: str | None, all_branches: bool, reporting_window: str | None
    ) -> list[dict]:
        p = self.project(slug)
        return self.insights.workflow_metrics(p, self._scope(p, branch, all_branches), self._window(reporting_window))

    def workflow_runs(self, slug: str, workflow: str, branch: str | None, all_branches: bool,
                      start_date: str | None, end_date: str | None) -> list[dict]:  # fmt: skip
        p = self.project(slug)
        now = self.history.now
        if end_date and not start_date:
            raise BadRequest("start-date is required when end-date is provided.")
        start = parse_datetime(start_date, "start-date") if start_date else now - timedelta(days=90)
        end = parse_datetime(end_date, "end-date") if end_date else now
        if end < start:
            raise BadRequest("end-date must be after start-date.")
        if end_date and end - start > timedelta(days=90):
            raise BadRequest("end-date must be no more than 90 days after start-date.")
        return self.insights.workflow_runs(
            p, self._workflow(p, workflow), self._scope(p, branch, all_branches), start, end
        )

    def workflow_job_metrics(self, slug: str, workflow: str, branch: str | None, all_branches: bool,
                             reporting_window: str | None, job_name: str | None) -> list[dict]:  # fmt: skip
        p = self.project(slug)
        return self.insights.workflow_job_metrics(
            p, workflow, self._scope(p, branch, all_branches), self._window(reporting_window), job_name
        )

    def workflow_summary(self, slug: str, workflow: str, branch: str | None, all_branches: bool) -> dict:
        p = self.project(slug)
        return self.insights.workflow_summary(p, workflow, self._scope(p, branch, all_branches))

    def job_timeseries(self, slug: str, workflow: str, branch: str | None, granularity: str | None,
                       start_date: str | None, end_date: str | None) -> list[dict]:  # fmt: skip
        p = self.project(slug)
        granularity = granularity or "daily"
        if granularity not in ("daily", "hourly"):
            raise BadRequest(f"Invalid granularity '{granularity}'. Valid values are: daily, hourly.")
        now = self.history.now
        default_span = timedelta(days=90) if granularity == "daily" else timedelta(hours=48)
        start = parse_datetime(start_date, "start-date") if start_date else now - default_span
        end = parse_datetime(end_date, "end-date") if end_date else now
        if end < start:
            raise BadRequest("end-date must be after start-date.")
        return self.insights.job_timeseries(p, workflow, self._scope(p, branch, False), granularity, start, end)

    def branches(self, slug: str, workflow: str | None) -> dict:
        p = self.project(slug)
        return {
            "org_id": self.catalog.org_of(p).id,
            "project_id": p.id,
            "branches": self.insights.branches(p, workflow),
        }

    def flaky_tests(self, slug: str) -> dict:
        items = self.insights.flaky_tests(self.project(slug))
        if self.config.flaky_keys == "kebab":
            items = [{k.replace("_", "-"): v for k, v in d.items()} for d in items]
            return {"flaky-tests": items, "total-flaky-tests": float(len(items))}
        return {"flaky_tests": items, "total_flaky_tests": len(items)}

    def test_metrics(self, slug: str, workflow: str, branch: str | None, all_branches: bool) -> dict:
        p = self.project(slug)
        return self.insights.test_metrics(p, workflow, self._scope(p, branch, all_branches))

    # -- usage export ------------------------------------------------------------------------
    def create_usage_export(self, org_id: str, body: Any) -> dict:
        """An export holds the jobs of `org_id`'s projects only."""
        org = self.org_by_id(org_id)
        if not isinstance(body, dict) or "start" not in body or "end" not in body:
            raise BadRequest("Unexpected request body provided.")
        start = parse_datetime(body["start"], "start")
        end = parse_datetime(body["end"], "end")
        now = self.clock_now()
        if end > now:
            raise BadRequest("Date cannot be in the future.")
        if start > end:
            raise BadRequest("start must be before end.")
        if start < now - timedelta(days=365):
            raise BadRequest("start must be no more than one year ago.")
        if end - start > timedelta(days=31):
            raise BadRequest("end must be no more than 31 days after start.")
        with self._lock:
            job_id = str(
                uuid.UUID(
                    bytes=hashlib.sha256(f"{self.config.seed}:{len(self.exports)}:{start}:{end}".encode()).digest()[
                        :16
                    ],
                    version=4,
                )
            )
            parts = plan_parts(
                self.history, list(self.catalog.projects_of(org)), start, end, self.config.export_rows_per_part
            )
            job = ExportJob(job_id, org_id, start, end, self.wall(), parts)
            estimated = sum(p.estimated_rows for p in parts)
            fault = self.faults.pick(
                "createUsageExport", self.faults.calls("createUsageExport"), ("export_failed", "export_too_large")
            )
            too_large = self.config.export_max_rows is not None and estimated > self.config.export_max_rows
            if too_large or (fault and fault.kind == "export_too_large"):
                job.fail_reason = "Query result is too large. Please reduce the date range and try again."
            elif fault:
                job.fail_reason = "Internal error while processing the export. Please try again."
            self.exports[job_id] = job
            self.export_posts.append((org_id, start, end, job_id))
        return {
            "usage_export_job_id": job_id,
            "state": "created",
            "start": iso(start),
            "end": iso(end),
            "download_urls": [],
        }

    def get_usage_export(self, org_id: str, job_id: str, base_url: str) -> dict:
        self.org_by_id(org_id)
        job = self.exports.get(job_id)
        if job is None or job.org_id != org_id:
            raise NotFound("Usage export job not found")
        state = job.state(self.wall(), self.config.export_processing_seconds)
        out: dict[str, Any] = {"usage_export_job_id": job.id, "state": state, "download_urls": []}
        if state == "failed":
            out["error_reason"] = job.fail_reason
        elif state == "completed":
            if self.faults.pick("getUsageExport", self.faults.calls("getUsageExport"), ("null_urls",)):
                out["download_urls"] = None
            else:
                out["download_urls"] = [self.sign_url(base_url, job.id, p.index) for p in job.parts]
        return out

    def sign_url(self, base_url: str, job_id: str, part: int) -> str:
        expires = int(self.wall() + self.config.url_ttl_seconds)
        sig = self._signature(job_id, part, expires)
        return f"{base_url}/__sim/usage-export/{job_id}/part-{part:04d}.csv.gz?X-Sim-Expires={expires}&X-Sim-Signature={sig}"

    def _signature(self, job_id: str, part: int, expires: int) -> str:
        return hmac.new(self._secret, f"{job_id}:{part}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def check_download(
        self, job_id: str, part: int, expires: str | None, signature: str | None
    ) -> tuple[ExportJob, int]:
        """Validate a pre-signed URL; 403 when forged or expired (S3-style)."""
        job = self.exports.get(job_id)
        try:
            exp = int(expires or "")
        except ValueError:
            raise ApiError("AccessDenied: Request signature is malformed", 403) from None
        if job is None or not 0 <= part < len(job.parts):
            raise ApiError("NoSuchKey: The specified key does not exist.", 404)
        if not hmac.compare_digest(self._signature(job_id, part, exp), signature or ""):
            raise ApiError("AccessDenied: Request signature does not match", 403)
        if self.wall() > exp:
            raise ApiError("AccessDenied: Request has expired", 403)
        return job, part
