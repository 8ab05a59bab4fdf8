"""OpenAPI conformance: every implemented operation, called through the URL template of
CircleCI's own spec, answers JSON that validates against the spec's response schema —
envelopes and every list item (all pages, every project and workflow of the tiny preset, in
both orgs of the two-org simulator: a GitHub org and a GitHub-App org).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sim_helpers import (
    NOW,
    all_pages,
    assert_conforms,
    operation,
    quote_segment,
    response_schema,
    schema_errors,
    snake_case_schema,
)

from circleci_analytics.simulator import ROUTES

#: Where the simulator knowingly differs from the spec, because the live API does.
KNOWN_DEVIATIONS = {
    "getFlakyTests": (
        "Live responses use snake_case keys (flaky_tests, total_flaky_tests, test_name, ...), the "
        "spec kebab-case (circleci-api.md section 2). The simulator emits snake_case by default: "
        "validated against the spec schema with keys renamed; SimConfig(flaky_keys='kebab') is "
        "validated against the spec as written."
    ),
}


def _url(operation_id: str, **params: str) -> str:
    """The request path of an operation, from the spec's path template."""
    _, template, _ = operation(operation_id)
    path = template
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, (operation_id, path)
    return path


@pytest.fixture(scope="module")
def bodies(sim2, client2) -> dict[str, list[tuple[str, Any]]]:
    """operationId -> [(url, JSON body)] for a broad sweep of calls over both orgs."""
    sim, client, truth = sim2, client2, sim2.truth()
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)

    def get(op: str, url: str, params=None, paginated=False) -> Any:
        if paginated:
            items = all_pages(client, url, params)
            body = {"items": items, "next_page_token": None}
        else:
            r = client.get(url, params=params)
            assert r.status_code == 200, (op, url, r.status_code, r.text)
            body = r.json()
        out[op].append((url, body))
        return body

    get("getCurrentUser", _url("getCurrentUser"))
    assert len(get("getCollaborations", _url("getCollaborations"))) == 2
    for org in sim.orgs:
        get("getOrgSummaryData", _url("getOrgSummaryData", **{"org-slug": org.slug}))
        get("getOrgSummaryData", _url("getOrgSummaryData", **{"org-slug": org.slug}),
            [("reporting-window", "last-7-days"), ("project-names", sim.projects_of(org)[0].name)])  # fmt: skip
        first = get("listPipelines", _url("listPipelines"), {"org-slug": org.slug})["items"]
        get("listPipelines", _url("listPipelines"), {"org-slug": org.slug, "mine": "true"}, paginated=True)
        get("getPipelineById", _url("getPipelineById", **{"pipeline-id": first[0]["id"]}))
    get("listPipelines", _url("listPipelines"))
    jobs_by_project = defaultdict(list)
    for p, j in truth.jobs():
        jobs_by_project[p.slug].append(j)
    for project in sim.projects:
        slug = project.slug  # sent with its slashes: the spec marks project-slug allowReserved
        get("getProjectBySlug", _url("getProjectBySlug", **{"project-slug": slug}))
        pipelines = get("listPipelinesForProject", _url("listPipelinesForProject", **{"project-slug": slug}),
                        paginated=True)["items"]  # fmt: skip
        get("listMyPipelines", _url("listMyPipelines", **{"project-slug": slug}), paginated=True)
        for pl in pipelines[:: max(1, len(pipelines) // 8)]:
            wfs = get("listWorkflowsByPipelineId", _url("listWorkflowsByPipelineId", **{"pipeline-id": pl["id"]}),
                      paginated=True)["items"]  # fmt: skip
            for wf in wfs:
                get("getWorkflowById", _url("getWorkflowById", id=wf["id"]))
                get("listWorkflowJobs", _url("listWorkflowJobs", id=wf["id"]), paginated=True)
        jobs = jobs_by_project[slug]
        with_tests = [j for j in jobs if j.has_tests]
        without_tests = [j for j in jobs if not j.has_tests]
        for j in [*with_tests[-3:], *without_tests[-2:], *[j for j in jobs if j.status != "success"][-3:]]:
            get("getJobDetails", _url("getJobDetails", **{"project-slug": slug, "job-number": str(j.number)}))
            get("getTests", _url("getTests", **{"project-slug": slug, "job-number": str(j.number)}), paginated=True)
        get("getProjectWorkflowsPageData", _url("getProjectWorkflowsPageData", **{"project-slug": slug}))
        get("getProjectWorkflowsPageData", _url("getProjectWorkflowsPageData", **{"project-slug": slug}),
            [("reporting-window", "last-30-days"), ("branches", project.default_branch)])  # fmt: skip
        for params in ({}, {"all-branches": "true"}, {"reporting-window": "last-24-hours"}):
            get("getProjectWorkflowMetrics", _url("getProjectWorkflowMetrics", **{"project-slug": slug}), params,
                paginated=True)  # fmt: skip
        get("getAllInsightsBranches", _url("getAllInsightsBranches", **{"project-slug": slug}))
        get("getFlakyTests", _url("getFlakyTests", **{"project-slug": slug}))
        for wf_name in project.workflows:
            seg = quote_segment(wf_name)
            kw = {"project-slug": slug, "workflow-name": seg}
            get(
                "getProjectWorkflowRuns", _url("getProjectWorkflowRuns", **kw), {"all-branches": "true"}, paginated=True
            )
            get("getProjectWorkflowRuns", _url("getProjectWorkflowRuns", **kw),
                {"start-date": (NOW - timedelta(days=10)).isoformat(), "end-date": NOW.isoformat()}, paginated=True)  # fmt: skip
            for params in ({}, {"all-branches": "true", "reporting-window": "last-7-days"}):
                get("getProjectWorkflowJobMetrics", _url("getProjectWorkflowJobMetrics", **kw), params, paginated=True)
            get("getWorkflowSummary", _url("getWorkflowSummary", **kw))
            get("getWorkflowSummary", _url("getWorkflowSummary", **kw), {"all-branches": "true"})
            for gran in ("daily", "hourly"):
                get("getJobTimeseries", _url("getJobTimeseries", **kw), {"granularity": gran}, paginated=True)
            get("getProjectWorkflowTestMetrics", _url("getProjectWorkflowTestMetrics", **kw))
            get("getProjectWorkflowTestMetrics", _url("getProjectWorkflowTestMetrics", **kw), {"all-branches": "true"})
    return out


@pytest.fixture(scope="module")
def export_bodies(make_sim_module) -> list[tuple[str, int, Any]]:
    """(operationId, status, body) for the usage-export operations in every state."""
    s, c = make_sim_module
    org = s.org.id
    out = []
    r = c.post(_url("createUsageExport", org_id=org),
               json={"start": (NOW - timedelta(days=5)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text
    out.append(("createUsageExport", 201, r.json()))
    job = r.json()["usage_export_job_id"]
    bad = c.post(_url("createUsageExport", org_id=org), json={"start": "2026-05-01T00:00:00Z",
                                                                "end": "2026-05-20T00:00:00Z"})  # fmt: skip
    fail_job = bad.json()["usage_export_job_id"]
    states = set()
    for step in (0.0, 1.5, 5.0):
        s.backend.advance_clock(step)
        for j in (job, fail_job):
            r = c.get(_url("getUsageExport", org_id=org, usage_export_job_id=j))
            assert r.status_code == 200, r.text
            out.append(("getUsageExport", 200, r.json()))
            states.add(r.json()["state"])
    assert states == {"created", "processing", "completed", "failed"}
    return out


@pytest.fixture(scope="module")
def make_sim_module():
    from sim_helpers import SyncASGIClient, tiny_config

    from circleci_analytics.simulator import FaultRule, Simulator, create_app

    s = Simulator(tiny_config(export_processing_seconds=3.0,
                              faults=(FaultRule("export_failed", route="createUsageExport", calls=(2,)),)))  # fmt: skip
    with SyncASGIClient(create_app(s), headers={"Circle-Token": s.token}) as c:
        yield s, c


def test_every_implemented_operation_is_in_the_spec_and_exercised(bodies, export_bodies):
    exercised = set(bodies) | {op for op, _, _ in export_bodies}
    assert exercised == set(ROUTES)
    for op in ROUTES:
        operation(op)  # KeyError if the simulator invents an operation


@pytest.mark.parametrize("op", [r for r in ROUTES if r not in ("createUsageExport", "getUsageExport")])
def test_response_matches_openapi_schema(op, bodies):
    calls = bodies[op]
    assert calls, f"{op} was never called"
    schema = response_schema(op, 200)
    if op in KNOWN_DEVIATIONS:
        schema = snake_case_schema(schema)
    failures = []
    for url, body in calls:
        errors = schema_errors(body, schema)
        if errors:
            failures.append(f"{url}:\n  " + "\n  ".join(errors[:5]))
    assert not failures, f"{op}: {len(failures)} of {len(calls)} responses fail the schema\n" + "\n".join(failures[:5])


LIST_OPS = {
    "listPipelines": "items", "listMyPipelines": "items", "listPipelinesForProject": "items", "listWorkflowsByPipelineId": "items", "listWorkflowJobs": "items",
    "getTests": "items", "getProjectWorkflowMetrics": "items", "getProjectWorkflowRuns": "items",
    "getProjectWorkflowJobMetrics": "items", "getJobTimeseries": "items", "getFlakyTests": "flaky_tests",
    "getCollaborations": None, "getAllInsightsBranches": "branches", "getProjectWorkflowTestMetrics": "test_runs",
}  # fmt: skip


@pytest.mark.parametrize("op", sorted(LIST_OPS))
def test_list_items_were_validated_not_just_envelopes(op, bodies):
    """The sweep must have produced items, or the schema test above proved little."""
    key = LIST_OPS[op]
    n = sum(len(body if key is None else body[key]) for _, body in bodies[op])
    assert n > 0, f"{op}: no list items were returned in the sweep"


def test_list_items_validate_one_by_one_against_the_item_schema(bodies):
    """Each list item against the item schema alone, so an envelope quirk cannot hide it."""
    for op in (
        "listPipelines",
        "listMyPipelines",
        "listPipelinesForProject",
        "listWorkflowJobs",
        "getTests",
        "getProjectWorkflowRuns",
        "getJobTimeseries",
    ):
        item_schema = response_schema(op, 200)["properties"]["items"]["items"]
        items = [item for _, body in bodies[op] for item in body["items"]]
        assert items, op
        bad = [(item, schema_errors(item, item_schema)) for item in items]
        bad = [b for b in bad if b[1]]
        assert not bad, f"{op}: {len(bad)} items fail, e.g. {bad[0]}"


def test_flaky_tests_kebab_variant_matches_the_spec_as_written(make_sim, make_client):
    s = make_sim(flaky_keys="kebab")
    c = make_client(s)
    seen = 0
    for project in s.projects:
        body = c.get(_url("getFlakyTests", **{"project-slug": project.slug})).json()
        assert "flaky-tests" in body and "flaky_tests" not in body
        assert_conforms("getFlakyTests", body)
        seen += len(body["flaky-tests"])
    assert seen > 0


def test_flaky_tests_snake_variant_fails_the_spec_as_written(bodies):
    """The deviation is real (and listed): the default, live-like body is not kebab-case."""
    _, body = bodies["getFlakyTests"][0]
    assert schema_errors(body, response_schema("getFlakyTests", 200))


@pytest.mark.parametrize("op_status", ["createUsageExport:201", "getUsageExport:200"])
def test_usage_export_responses_match_schema_in_every_state(op_status, export_bodies):
    op, status = op_status.split(":")
    calls = [body for o, st, body in export_bodies if o == op]
    assert calls
    for body in calls:
        assert_conforms(op, body, int(status))
    if op == "getUsageExport":
        assert any(b["download_urls"] for b in calls), "no completed export with URLs was validated"
        assert any(b.get("error_reason") for b in calls), "no failed export was validated"


def test_error_bodies_match_the_default_schema(sim, make_client):
    anon = make_client(sim, auth=False)
    c = make_client(sim)
    cases = [
        ("getCurrentUser", anon.get("/me"), 401),
        ("getProjectBySlug", c.get("/project/gh/acme-robotics/nope"), 404),
        (
            "getProjectWorkflowMetrics",
            c.get("/insights/gh/acme-robotics/web-app/workflows", params={"reporting-window": "last-year"}),
            400,
        ),  # fmt: skip
        (
            "getUsageExport",
            c.get(f"/organizations/{sim.org.id}/usage_export_job/{'0' * 8}-0000-4000-8000-{'0' * 12}"),
            404,
        ),
    ]
    for op, r, status in cases:
        assert r.status_code == status, (op, r.text)
        assert_conforms(op, r.json(), status)
        assert set(r.json()) == {"message"}


def test_the_schema_check_is_not_vacuous(bodies):
    """Broken copies of real bodies must fail: a missing required key, a bad enum, a null
    where the spec does not allow one, a wrong date-time; and null passes where x-nullable."""
    import copy

    _, runs = next((u, b) for u, b in bodies["getProjectWorkflowRuns"] if b["items"])
    schema = response_schema("getProjectWorkflowRuns", 200)
    assert not schema_errors(runs, schema)
    for mutate in (
        lambda b: b["items"][0].pop("created_at"),
        lambda b: b["items"][0].update(status="exploded"),
        lambda b: b["items"][0].update(credits_used=None),
        lambda b: b["items"][0].update(created_at="2026-06-01 12:00"),
        lambda b: b["items"][0].update(id="not-a-uuid"),
        lambda b: b.pop("next_page_token"),
    ):
        broken = copy.deepcopy(runs)
        mutate(broken)
        assert schema_errors(broken, schema), "a broken body passed the schema check"
    nullable = copy.deepcopy(runs)
    nullable["items"][0].update(duration=None, stopped_at=None, status=None)
    assert not schema_errors(nullable, schema)
