"""`GET /pipeline` (listPipelines) and the crawl it starts: pipelines -> workflows -> jobs.

A client that lists an org's pipelines, then each pipeline's workflows, then each workflow's
jobs, must get exactly the simulator's ground truth: the GitHub-App org is crawled over a real
HTTP server on loopback, the GitHub org in process (the same app; half the time). Also: order,
pages, `mine`, org scoping, the org-slug errors, and agreement with the per-project list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from sim_helpers import all_pages

from circleci_analytics.simulator import Simulator, backend
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.slow  # starts a server on loopback


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def http(sim2: Simulator) -> Iterator[httpx.Client]:
    """A real HTTP client talking to the two-org simulator on loopback."""
    with running_server(sim2) as base, httpx.Client(base_url=base, headers={"Circle-Token": sim2.token}) as c:
        yield c


@pytest.fixture(scope="module")
def crawls(sim2: Simulator, client2, http: httpx.Client) -> dict[str, dict]:
    """Per org slug: what a client crawling /pipeline -> /pipeline/{id}/workflow ->
    /workflow/{id}/job collected, page by page."""
    out = {}
    for org, client in zip(sim2.orgs, (client2, http), strict=True):
        pipelines = all_pages(client, "/pipeline", {"org-slug": org.slug})
        workflows, jobs = [], {}
        for pl in pipelines:
            for wf in all_pages(client, f"/pipeline/{pl['id']}/workflow"):
                workflows.append(wf)
                jobs[wf["id"]] = all_pages(client, f"/workflow/{wf['id']}/job")
        out[org.slug] = {"pipelines": pipelines, "workflows": workflows, "jobs": jobs}
    return out


@pytest.mark.parametrize("org_index", [0, 1])
def test_crawl_gets_exactly_the_pipelines_of_the_org(sim2, crawls, org_index):
    org = sim2.orgs[org_index]
    got = crawls[org.slug]["pipelines"]
    truth = sim2.truth(org=org).pipelines().to_pylist()
    assert len(got) == len({p["id"] for p in got}) == len(truth) > 100
    want = {t["id"]: (t["project_slug"], t["number"], _iso(t["created_at"]), t["branch"], t["revision"],
                      t["trigger_type"], t["actor_login"]) for t in truth}  # fmt: skip
    have = {p["id"]: (p["project_slug"], p["number"], p["created_at"], p["vcs"]["branch"], p["vcs"]["revision"],
                      p["trigger"]["type"], p["trigger"]["actor"]["login"]) for p in got}  # fmt: skip
    assert have == want


@pytest.mark.parametrize("org_index", [0, 1])
def test_crawl_gets_every_workflow_with_its_status_and_stop_time(sim2, crawls, org_index):
    org = sim2.orgs[org_index]
    got = crawls[org.slug]["workflows"]
    truth = sim2.truth(org=org).workflow_runs().to_pylist()
    want = {t["id"]: (t["project_slug"], t["pipeline_id"], t["workflow_name"], t["status"], _iso(t["stopped_at"]))
            for t in truth}  # fmt: skip
    have = {w["id"]: (w["project_slug"], w["pipeline_id"], w["name"], w["status"], w["stopped_at"]) for w in got}
    assert len(got) == len(have) == len(want) > 100
    assert have == want
    assert {s for *_, s, _ in want.values()} >= {"success", "failed"}


@pytest.mark.parametrize("org_index", [0, 1])
def test_crawl_gets_every_job_of_every_workflow(sim2, crawls, org_index):
    org = sim2.orgs[org_index]
    got = crawls[org.slug]["jobs"]
    truth = sim2.truth(org=org)
    want: dict[str, list] = defaultdict(list)
    for t in truth.workflow_jobs().to_pylist():
        want[t["workflow_id"]].append((t["job_id"], t["job_number"], t["job_name"], t["type"], t["status"]))
    have = {wf: [(j["id"], j.get("job_number"), j["name"], j["type"], j["status"]) for j in jobs]
            for wf, jobs in got.items() if jobs}  # fmt: skip
    assert have == dict(want)
    # Every executed job run (one per usage-export row) is reachable, by project and number.
    executed = {
        (t["project_slug"], t["job_number"], t["job_name"], t["job_status"]) for t in truth.job_runs().to_pylist()
    }
    crawled = {(j["project_slug"], j["job_number"], j["name"], j["status"])
               for jobs in got.values() for j in jobs if "job_number" in j}  # fmt: skip
    assert crawled == executed and executed


def test_pipelines_are_newest_first_in_pages_of_20(sim2, http, crawls):
    org = sim2.org
    first = http.get("/pipeline", params={"org-slug": org.slug}).json()
    assert len(first["items"]) == 20 and first["next_page_token"]
    items = crawls[org.slug]["pipelines"]
    assert items[:20] == first["items"]
    created = [p["created_at"] for p in items]
    assert created == sorted(created, reverse=True)
    assert len({p["project_slug"] for p in first["items"]}) > 1, "projects are interleaved by time"


def test_org_list_agrees_with_each_project_list(sim2, client2, crawls):
    """The same pipelines, with the same JSON, as /project/{slug}/pipeline lists them."""
    for org in sim2.orgs:
        by_project = defaultdict(list)
        for p in crawls[org.slug]["pipelines"]:
            by_project[p["project_slug"]].append(p)
        assert set(by_project) == {p.slug for p in sim2.projects_of(org)}
        for slug, items in by_project.items():
            listed = all_pages(client2, f"/project/{slug}/pipeline")
            assert sorted(listed, key=lambda p: p["id"]) == sorted(items, key=lambda p: p["id"])


def test_mine_keeps_the_pipelines_the_current_user_triggered(sim2, client2):
    me = client2.get("/me").json()
    for org in sim2.orgs:
        mine = all_pages(client2, "/pipeline", {"org-slug": org.slug, "mine": "true"})
        every = sim2.truth(org=org).pipelines().to_pylist()
        want = {t["id"] for t in every if t["actor_id"] == me["id"]}
        assert {p["id"] for p in mine} == want
        assert 0 < len(want) < len(every)
        assert {p["trigger"]["actor"]["login"] for p in mine} == {me["login"]}
        assert all_pages(client2, "/pipeline", {"org-slug": org.slug, "mine": "false"}) == all_pages(
            client2, "/pipeline", {"org-slug": org.slug}
        )


def test_project_pipeline_mine_is_the_project_list_filtered_to_the_user(sim2, client2):
    me = client2.get("/me").json()
    for project in (sim2.projects_of(sim2.orgs[0])[0], sim2.projects_of(sim2.orgs[1])[0]):
        every = all_pages(client2, f"/project/{project.slug}/pipeline")
        mine = all_pages(client2, f"/project/{project.slug}/pipeline/mine")
        assert mine == [p for p in every if p["trigger"]["actor"]["login"] == me["login"]] and mine


def test_get_pipeline_by_id_equals_the_listed_item(sim2, client2, crawls):
    for org in sim2.orgs:
        for item in crawls[org.slug]["pipelines"][::97]:
            r = client2.get(f"/pipeline/{item['id']}")
            assert r.status_code == 200 and r.json() == item
    r = client2.get("/pipeline/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json() == {"message": "Pipeline not found"}


def test_each_org_lists_only_its_own_projects(sim2, crawls):
    first, second = sim2.orgs
    assert {p["project_slug"] for p in crawls[second.slug]["pipelines"]} == {p.slug for p in sim2.projects_of(second)}
    assert all(p["project_slug"].startswith(second.slug + "/") for p in crawls[second.slug]["pipelines"])
    ids = [{p["id"] for p in crawls[o.slug]["pipelines"]} for o in (first, second)]
    assert not ids[0] & ids[1]


def test_org_slug_aliases_and_default(sim2, client2):
    first, second = sim2.orgs
    canonical = client2.get("/pipeline", params={"org-slug": first.slug}).json()["items"]
    for alias in (f"github/{first.name}", f"circleci/{first.id}", first.slug.upper()):
        assert client2.get("/pipeline", params={"org-slug": alias}).json()["items"] == canonical, alias
    # A GitHub-App org by the organization id shown in its settings.
    assert (client2.get("/pipeline", params={"org-slug": f"circleci/{second.id}"}).json()["items"]
            == client2.get("/pipeline", params={"org-slug": second.slug}).json()["items"])  # fmt: skip
    # Without org-slug: the first org of /me/collaborations.
    assert client2.get("/pipeline").json()["items"] == canonical
    assert client2.get("/me/collaborations").json()[0]["slug"] == first.slug


@pytest.mark.parametrize(
    ("org_slug", "status", "message"),
    [
        ("gh/no-such-org", 404, "Organization not found"),
        ("circleci/3Xq9UJm4hR6ffHhSgGcCHP", 404, "Organization not found"),
        ("acme-robotics", 400, "Invalid org-slug 'acme-robotics': expected vcs-slug/org-name "
                                "(circleci/<organization id> for GitHub App and GitLab orgs)."),
        ("gh/acme-robotics/web-app", 400, "Invalid org-slug 'gh/acme-robotics/web-app': expected vcs-slug/org-name "
                                          "(circleci/<organization id> for GitHub App and GitLab orgs)."),
        ("", 400, "Invalid org-slug '': expected vcs-slug/org-name "
                  "(circleci/<organization id> for GitHub App and GitLab orgs)."),
    ],
)  # fmt: skip
def test_unknown_or_malformed_org_slug(client2, org_slug, status, message):
    r = client2.get("/pipeline", params={"org-slug": org_slug})
    assert r.status_code == status
    assert r.json() == {"message": message}


def test_page_token_is_bound_to_the_org_slug(sim2, client2):
    first, second = sim2.orgs
    token = client2.get("/pipeline", params={"org-slug": first.slug}).json()["next_page_token"]
    assert client2.get("/pipeline", params={"org-slug": first.slug, "page-token": token}).status_code == 200
    r = client2.get("/pipeline", params={"org-slug": second.slug, "page-token": token})
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}


def test_only_the_most_recently_built_projects_are_listed(make_sim, make_client, monkeypatch):
    """ "The most recently built projects (max 250)": with the cap at 2, the least recently
    built of the 3 projects drops out."""
    monkeypatch.setattr(backend, "FOLLOWED_PROJECTS_LIMIT", 2)
    s = make_sim(page_size=500)
    last = s.history.last_build_finished_at
    stale = min(s.projects, key=lambda p: last[p.index])
    items = all_pages(make_client(s), "/pipeline", {"org-slug": s.org.slug})
    assert {p["project_slug"] for p in items} == {p.slug for p in s.projects} - {stale.slug}
