"""The thin HTTP layer: route, authenticate, rate-limit, inject faults, paginate, serialise.

Routing works on the raw (still percent-encoded) path so a workflow name containing `/`
(sent as `%2F`) stays one segment, and a project slug may arrive as three segments
(`gh/org/repo`) or as one encoded segment (`gh%2Forg%2Frepo`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .backend import ApiError, Backend, BadRequest, NotFound, Unauthorized
from .usage_export import iter_part_gzip, render_part

__all__ = ["create_app", "ROUTES", "SimulatedDrop"]

API = "api/v2"


@dataclass(frozen=True)
class Match:
    operation: str
    family: str
    params: dict[str, str]
    paginated: bool = False
    page_size_attr: str = "page_size"


def _unq(seg: str) -> str:
    return unquote(seg)


def _take_slug(segs: list[str], i: int) -> tuple[str, int] | None:
    """A project slug starting at segs[i]: one encoded segment, or three plain ones."""
    if i >= len(segs):
        return None
    first = _unq(segs[i])
    if first.count("/") >= 2:
        return first, i + 1
    parts = first.split("/")
    j = i + 1
    while len(parts) < 3 and j < len(segs):
        parts += _unq(segs[j]).split("/")
        j += 1
    if len(parts) != 3 or not all(parts):
        return None
    return "/".join(parts), j


def route(method: str, raw_path: str) -> Match | None:
    """Map a raw request path to an operation (None: unknown route)."""
    segs = [s for s in raw_path.split("/") if s != ""]
    if segs[:2] == ["__sim", "usage-export"] and len(segs) == 4 and method == "GET":
        return Match("downloadUsagePart", "download", {"job": segs[2], "part": segs[3]})
    if segs[:2] != API.split("/"):
        return None
    s = segs[2:]
    if method == "POST":
        if len(s) == 3 and s[0] == "organizations" and s[2] == "usage_export_job":
            return Match("createUsageExport", "usage_export_post", {"org_id": _unq(s[1])})
        return None
    if method != "GET" or not s:
        return None
    if s == ["me"]:
        return Match("getCurrentUser", "core", {})
    if s == ["me", "collaborations"]:
        return Match("getCollaborations", "core", {})
    if s[0] == "organizations" and len(s) == 4 and s[2] == "usage_export_job":
        return Match("getUsageExport", "usage_export_get", {"org_id": _unq(s[1]), "job_id": _unq(s[3])})
    if s == ["pipeline"]:
        return Match("listPipelines", "core", {}, paginated=True)
    if s[0] == "pipeline" and len(s) == 2:
        return Match("getPipelineById", "core", {"id": _unq(s[1])})
    if s[0] == "pipeline" and len(s) == 3 and s[2] == "workflow":
        return Match("listWorkflowsByPipelineId", "core", {"id": _unq(s[1])}, paginated=True)
    if s[0] == "workflow" and len(s) == 3 and s[2] == "job":
        return Match("listWorkflowJobs", "core", {"id": _unq(s[1])}, paginated=True)
    if s[0] == "workflow" and len(s) == 2:
        return Match("getWorkflowById", "core", {"id": _unq(s[1])})
    if s[0] == "project":
        taken = _take_slug(s, 1)
        if not taken:
            return None
        slug, j = taken
        rest = s[j:]
        if rest == []:
            return Match("getProjectBySlug", "core", {"slug": slug})
        if rest == ["pipeline"]:
            return Match("listPipelinesForProject", "core", {"slug": slug}, paginated=True)
        if rest == ["pipeline", "mine"]:
            return Match("listMyPipelines", "core", {"slug": slug}, paginated=True)
        if len(rest) == 2 and rest[0] == "job":
            return Match("getJobDetails", "core", {"slug": slug, "number": _unq(rest[1])})
        if len(rest) == 2 and rest[1] == "tests":
            return Match("getTests", "tests", {"slug": slug, "number": _unq(rest[0])}, True, "tests_page_size")
        return None
    if s[0] != "insights" or len(s) < 2:
        return None
    if s[1] == "pages":
        taken = _take_slug(s, 2)
        if taken and s[taken[1] :] == ["summary"]:
            return Match("getProjectWorkflowsPageData", "insights", {"slug": taken[0]})
        return None
    if s[1] == "time-series":
        taken = _take_slug(s, 2)
        if taken:
            rest = s[taken[1] :]
            if len(rest) == 3 and rest[0] == "workflows" and rest[2] == "jobs":
                return Match("getJobTimeseries", "insights", {"slug": taken[0], "workflow": _unq(rest[1])}, True)
        return None
    if len(s) == 4 and s[3] == "summary" and "/" not in _unq(s[1]):
        return Match("getOrgSummaryData", "insights", {"org_slug": f"{_unq(s[1])}/{_unq(s[2])}"})
    if len(s) == 3 and s[2] == "summary" and _unq(s[1]).count("/") == 1:  # org slug as one encoded segment
        return Match("getOrgSummaryData", "insights", {"org_slug": _unq(s[1])})
    taken = _take_slug(s, 1)
    if not taken:
        return None
    slug, j = taken
    rest = s[j:]
    if rest == ["workflows"]:
        return Match("getProjectWorkflowMetrics", "insights", {"slug": slug}, paginated=True)
    if rest == ["branches"]:
        return Match("getAllInsightsBranches", "insights", {"slug": slug})
    if rest == ["flaky-tests"]:
        return Match("getFlakyTests", "insights", {"slug": slug})
    if len(rest) >= 2 and rest[0] == "workflows":
        wf = _unq(rest[1])
        tail = rest[2:]
        if tail == []:
            return Match("getProjectWorkflowRuns", "insights", {"slug": slug, "workflow": wf}, paginated=True)
        if tail == ["jobs"]:
            return Match("getProjectWorkflowJobMetrics", "insights", {"slug": slug, "workflow": wf}, paginated=True)
        if tail == ["summary"]:
            return Match("getWorkflowSummary", "insights", {"slug": slug, "workflow": wf})
        if tail == ["test-metrics"]:
            return Match("getProjectWorkflowTestMetrics", "insights", {"slug": slug, "workflow": wf})
    return None


#: Every implemented operation (OpenAPI operationId) and its endpoint family.
ROUTES = (
    "getCurrentUser", "getCollaborations", "getProjectBySlug", "listPipelines", "getPipelineById",
    "listPipelinesForProject", "listMyPipelines", "getJobDetails",
    "getTests", "listWorkflowsByPipelineId", "getWorkflowById", "listWorkflowJobs", "getOrgSummaryData",
    "getProjectWorkflowsPageData", "getProjectWorkflowMetrics", "getProjectWorkflowRuns",
    "getProjectWorkflowJobMetrics", "getWorkflowSummary", "getJobTimeseries", "getAllInsightsBranches",
    "getFlakyTests", "getProjectWorkflowTestMetrics", "createUsageExport", "getUsageExport",
)  # fmt: skip


def _flag(q, name: str) -> bool:
    return (q.get(name) or "").lower() in ("true", "1", "yes")


def _dispatch(backend: Backend, m: Match, request: Request, body: Any) -> Any:
    q = request.query_params
    p = m.params
    op = m.operation
    base = str(request.base_url).rstrip("/")
    handlers: dict[str, Callable[[], Any]] = {
        "getCurrentUser": lambda: backend.get_current_user(),
        "getCollaborations": lambda: backend.get_collaborations(),
        "getProjectBySlug": lambda: backend.get_project(p["slug"]),
        "listPipelines": lambda: backend.list_org_pipelines(q.get("org-slug"), _flag(q, "mine")),
        "getPipelineById": lambda: backend.get_pipeline(p["id"]),
        "listPipelinesForProject": lambda: backend.list_pipelines(p["slug"], q.get("branch")),
        "listMyPipelines": lambda: backend.list_my_pipelines(p["slug"]),
        "getJobDetails": lambda: backend.get_job_details(p["slug"], p["number"]),
        "getTests": lambda: backend.get_tests(p["slug"], p["number"]),
        "listWorkflowsByPipelineId": lambda: backend.list_pipeline_workflows(p["id"]),
        "getWorkflowById": lambda: backend.get_workflow(p["id"]),
        "listWorkflowJobs": lambda: backend.list_workflow_jobs(p["id"]),
        "getOrgSummaryData": lambda: backend.org_summary(p["org_slug"], q.get("reporting-window"), q.getlist("project-names")),
        "getProjectWorkflowsPageData": lambda: backend.project_summary(
            p["slug"], q.get("reporting-window"), q.getlist("branches"), q.getlist("workflow-names")),
        "getProjectWorkflowMetrics": lambda: backend.workflow_metrics(
            p["slug"], q.get("branch"), _flag(q, "all-branches"), q.get("reporting-window")),
        "getProjectWorkflowRuns": lambda: backend.workflow_runs(
            p["slug"], p["workflow"], q.get("branch"), _flag(q, "all-branches"), q.get("start-date"), q.get("end-date")),
        "getProjectWorkflowJobMetrics": lambda: backend.workflow_job_metrics(
            p["slug"], p["workflow"], q.get("branch"), _flag(q, "all-branches"), q.get("reporting-window"), q.get("job-name")),
        "getWorkflowSummary": lambda: backend.workflow_summary(p["slug"], p["workflow"], q.get("branch"), _flag(q, "all-branches")),
        "getJobTimeseries": lambda: backend.job_timeseries(
            p["slug"], p["workflow"], q.get("branch"), q.get("granularity") or q.get("timeseries-granularity"),
            q.get("start-date"), q.get("end-date")),
        "getAllInsightsBranches": lambda: backend.branches(p["slug"], q.get("workflow-name")),
        "getFlakyTests": lambda: backend.flaky_tests(p["slug"]),
        "getProjectWorkflowTestMetrics": lambda: backend.test_metrics(
            p["slug"], p["workflow"], q.get("branch"), _flag(q, "all-branches")),
        "createUsageExport": lambda: backend.create_usage_export(p["org_id"], body),
        "getUsageExport": lambda: backend.get_usage_export(p["org_id"], p["job_id"], base),
    }  # fmt: skip
    return handlers[op]()


class _Pager:
    """Opaque page tokens bound to the operation, path and filters (404 otherwise)."""

    def __init__(self, secret: bytes):
        self.secret = secret

    def _fingerprint(self, request: Request) -> str:
        filters = sorted((k, v) for k, v in request.query_params.multi_items() if k != "page-token")
        return hashlib.sha256(
            json.dumps([request.scope.get("raw_path", b"").decode("latin-1"), filters]).encode()
        ).hexdigest()[:16]

    def encode(self, offset: int, request: Request) -> str:
        payload = json.dumps([offset, self._fingerprint(request)]).encode()
        sig = hmac.new(self.secret, payload, hashlib.sha256).digest()[:9]
        return base64.urlsafe_b64encode(payload + sig).decode().rstrip("=")

    def decode(self, token: str, request: Request) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, sig = raw[:-9], raw[-9:]
            if not hmac.compare_digest(hmac.new(self.secret, payload, hashlib.sha256).digest()[:9], sig):
                raise ValueError
            offset, fingerprint = json.loads(payload)
        except (ValueError, binascii.Error, TypeError, json.JSONDecodeError):
            raise NotFound("Not Found") from None
        if fingerprint != self._fingerprint(request) or not isinstance(offset, int) or offset < 0:
            raise NotFound("Not Found")
        return offset


def _auth_token(request: Request) -> str | None:
    token = request.headers.get("circle-token")
    if token:
        return token
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, _ = base64.b64decode(auth[6:]).decode().partition(":")
            return user or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.query_params.get("circle-token")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def create_app(sim: Any) -> Starlette:
    """The ASGI app serving `sim` (a `Simulator` or a `Backend`)."""
    backend: Backend = getattr(sim, "backend", sim)
    config = backend.config
    pager = _Pager(hashlib.sha256(f"{config.seed}:pages".encode()).digest())

    async def handle(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw_path.decode("latin-1").split("?", 1)[0]
        m = route(request.method, raw_path)
        if m is None:
            return _error(404, "Not Found")
        call_no = backend.faults.call(m.operation)
        if config.latency_seconds:
            await asyncio.sleep(config.latency_seconds)
        if m.operation == "downloadUsagePart":
            return await _download(request, m, call_no)
        token = _auth_token(request)
        if not token or not hmac.compare_digest(token, config.token):
            return _error(401, "You must log in first.")
        key = m.params.get("org_id", "token")
        decision = backend.limiter.check(m.family, key)
        headers: dict[str, str] = {}
        if decision is not None:
            headers = {
                "RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": str(decision.remaining),
                "RateLimit-Reset": str(decision.reset_seconds), "X-RateLimit-Limit": str(decision.limit),
                "X-RateLimit-Remaining": str(decision.remaining), "X-RateLimit-Reset": str(decision.reset_seconds),
            }  # fmt: skip
            if not decision.allowed:
                return _error(429, "Rate limit exceeded.", {**headers, "Retry-After": str(decision.retry_after)})
        fault = backend.faults.pick(m.operation, call_no, ("status", "slow", "drop"))
        if fault is not None:
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay_seconds)
            elif fault.kind == "status":
                msg = "Internal server error." if fault.status == 500 else "Service temporarily unavailable."
                return _error(fault.status, msg)
            elif fault.kind == "drop":
                return _DroppedResponse()
        body = None
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"null")
            except json.JSONDecodeError:
                return _error(400, "Unexpected request body provided.")
        try:
            result = _dispatch(backend, m, request, body)
            if m.paginated:
                token_in = request.query_params.get("page-token")
                offset = pager.decode(token_in, request) if token_in else 0
                size = max(1, getattr(config, m.page_size_attr))
                # One item past the page says whether another follows; slicing is all a
                # list result (a list or a lazy PipelineFeed) has to support.
                window = result[offset : offset + size + 1]
                page = window[:size]
                nxt = pager.encode(offset + size, request) if len(window) > size else None
                if nxt and token_in and backend.faults.pick(m.operation, call_no, ("repeat_page_token",)):
                    nxt = token_in
                result = {"items": page, "next_page_token": nxt}
        except ApiError as e:
            return _error(e.status, e.message, headers)
        status = 201 if m.operation == "createUsageExport" else 200
        return JSONResponse(result, status_code=status, headers=headers)

    async def _download(request: Request, m: Match, call_no: int) -> Response:
        q = request.query_params
        try:
            part = int(m.params["part"].removeprefix("part-").removesuffix(".csv.gz"))
            job, part = backend.check_download(m.params["job"], part, q.get("X-Sim-Expires"), q.get("X-Sim-Signature"))
        except ValueError:
            return Response("NoSuchKey", status_code=404)
        except ApiError as e:
            return Response(f"<Error><Code>{e.message.split(':')[0]}</Code><Message>{e.message}</Message></Error>",
                            status_code=e.status, media_type="application/xml")  # fmt: skip
        if backend.faults.pick("downloadUsagePart", call_no, ("expire_url",)):
            return Response("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                            status_code=403, media_type="application/xml")  # fmt: skip
        fault = backend.faults.pick("downloadUsagePart", call_no, ("status", "drop"))
        if fault is not None:
            return (
                _DroppedResponse() if fault.kind == "drop" else _error(fault.status, "Service temporarily unavailable.")
            )
        truncate = backend.faults.pick("downloadUsagePart", call_no, ("truncate_part",)) is not None
        malformed = backend.faults.pick("downloadUsagePart", call_no, ("malformed_row",)) is not None
        chunks = render_part(backend.history, config, job, job.parts[part], malformed=malformed)
        return StreamingResponse(iter_part_gzip(chunks, truncate=truncate), media_type="application/gzip",
                                 headers={"Content-Disposition": f'attachment; filename="part-{part:04d}.csv.gz"'})  # fmt: skip

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])
    app.state.backend = backend
    return app


class SimulatedDrop(httpx.RemoteProtocolError):
    """Raised inside the app to drop a connection on purpose (the `drop` fault). In process
    (ASGITransport) the client sees it as is; over a real server the connection closes mid-body."""


class _DroppedResponse(Response):
    """Starts a response, then drops the connection mid-body."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})
        raise SimulatedDrop("simulated dropped connection")


# Errors re-exported for the HTTP tests.
__all__ += ["ApiError", "BadRequest", "NotFound", "Unauthorized"]
