"""Contract test: the same schema assertions against the simulator and, when a token is
supplied, against the real CircleCI API (as moto's `aws_verified` tests do).

    CIRCLECI_CONTRACT_TOKEN=<personal token> CIRCLECI_CONTRACT_PROJECT=gh/org/repo \\
        uv run python -m pytest tests/simulator/test_contract_real_api.py -m contract

Read-only: no usage export is created (it is rate limited to 10 per hour per org). Optional:
CIRCLECI_CONTRACT_BASE_URL (default https://circleci.com/api/v2). The token is never printed:
assertion messages carry URLs and schema errors only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sim_helpers import (
    SyncASGIClient,
    response_schema,
    schema_errors,
    snake_case_schema,
)

from circleci_analytics.simulator import create_app

TOKEN = os.environ.get("CIRCLECI_CONTRACT_TOKEN", "")
PROJECT = os.environ.get("CIRCLECI_CONTRACT_PROJECT", "")
BASE_URL = os.environ.get("CIRCLECI_CONTRACT_BASE_URL", "https://circleci.com/api/v2")


class Target:
    """One API under test: a client, a project slug, and whether it is the real thing."""

    def __init__(self, name: str, client: Any, project: str, real: bool):
        self.name, self.client, self.project, self.real = name, client, project, real

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)


@pytest.fixture(
    params=[
        "simulator",
        pytest.param("real", marks=[
            pytest.mark.contract,
            pytest.mark.skipif(not (TOKEN and PROJECT),
                               reason="set CIRCLECI_CONTRACT_TOKEN and CIRCLECI_CONTRACT_PROJECT to run against the real API"),
        ]),
    ],
)  # fmt: skip
def target(request, sim) -> Iterator[Target]:
    if request.param == "simulator":
        with SyncASGIClient(create_app(sim), headers={"Circle-Token": sim.token}) as c:
            yield Target("simulator", c, sim.projects[0].slug, real=False)
    else:
        with httpx.Client(base_url=BASE_URL, headers={"Circle-Token": TOKEN}, timeout=60) as c:
            yield Target("real", c, PROJECT, real=True)


def _ok(target: Target, url: str, **kwargs: Any) -> Any:
    r = target.get(url, **kwargs)
    if r.status_code == 429:
        pytest.skip(f"{target.name}: rate limited on {url}")
    assert r.status_code == 200, f"{target.name} GET {url}: {r.status_code} {r.text[:300]}"
    return r.json()


def _conforms(op: str, body: Any, schema: dict | None = None) -> None:
    errors = schema_errors(body, schema or response_schema(op, 200))
    assert not errors, f"{op}: " + "; ".join(errors[:8])


def test_me_and_project(target):
    _conforms("getCurrentUser", _ok(target, "/me"))
    _conforms("getProjectBySlug", _ok(target, f"/project/{target.project}"))


def test_pipelines_workflows_jobs_and_tests(target):
    pipelines = _ok(target, f"/project/{target.project}/pipeline")
    _conforms("listPipelinesForProject", pipelines)
    assert pipelines["items"], "the contract project needs at least one pipeline"
    for pl in pipelines["items"][:3]:
        workflows = _ok(target, f"/pipeline/{pl['id']}/workflow")
        _conforms("listWorkflowsByPipelineId", workflows)
        for wf in workflows["items"][:1]:
            jobs = _ok(target, f"/workflow/{wf['id']}/job")
            _conforms("listWorkflowJobs", jobs)
            for job in [j for j in jobs["items"] if "job_number" in j][:1]:
                n = job["job_number"]
                _conforms("getJobDetails", _ok(target, f"/project/{target.project}/job/{n}"))
                _conforms("getTests", _ok(target, f"/project/{target.project}/{n}/tests"))


def test_org_pipelines(target):
    """`GET /pipeline` for the contract project's org (its slug from the project, never parsed)."""
    org_slug = _ok(target, f"/project/{target.project}")["organization_slug"]
    for params in ({"org-slug": org_slug}, {"org-slug": org_slug, "mine": "true"}):
        body = _ok(target, "/pipeline", params=params)
        _conforms("listPipelines", body)
    assert _ok(target, "/pipeline", params={"org-slug": org_slug})["items"], "the org needs at least one pipeline"


def test_insights(target):
    metrics = _ok(target, f"/insights/{target.project}/workflows", params={"all-branches": "true"})
    _conforms("getProjectWorkflowMetrics", metrics)
    _conforms("getAllInsightsBranches", _ok(target, f"/insights/{target.project}/branches"))
    for item in metrics["items"][:2]:
        wf = quote(item["name"], safe="")
        _conforms("getProjectWorkflowRuns", _ok(target, f"/insights/{target.project}/workflows/{wf}",
                                                params={"all-branches": "true"}))  # fmt: skip
        _conforms("getProjectWorkflowJobMetrics", _ok(target, f"/insights/{target.project}/workflows/{wf}/jobs"))
        _conforms("getWorkflowSummary", _ok(target, f"/insights/{target.project}/workflows/{wf}/summary"))


def test_flaky_tests_in_either_spelling(target):
    """The spec says kebab-case, the live API answers snake_case: accept both, know which."""
    body = _ok(target, f"/insights/{target.project}/flaky-tests")
    schema = response_schema("getFlakyTests", 200)
    if "flaky_tests" in body:
        _conforms("getFlakyTests", body, snake_case_schema(schema))
    else:
        _conforms("getFlakyTests", body, schema)
    if not target.real:
        assert "flaky_tests" in body, "the simulator should default to the live spelling"


def test_error_bodies(target):
    r = target.get(f"/project/{target.project.rsplit('/', 1)[0]}/no-such-repo-9f3c2a")
    assert r.status_code == 404
    assert isinstance(r.json().get("message"), str)
    anon = target.get("/me", headers={"Circle-Token": "invalid-token-for-contract-test"})
    assert anon.status_code == 401
    assert isinstance(anon.json().get("message"), str)
