"""Several organisations in one simulator: a GitHub org and a GitHub-App org, each with its
own history, and every endpoint answering from the right one.

`sim` is the default single-org simulator; `sim2` the same config plus a GitHub-App org
(`conftest.GITHUB_APP_ORG`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from sim_helpers import NOW, all_pages, read_csv_part

from circleci_analytics.simulator import OrgSpec, Simulator, write_truth
from circleci_analytics.simulator.insights import REPORTING_WINDOWS

BASE58 = r"[1-9A-HJ-NP-Za-km-z]{22}"


def _rows(table) -> list[dict]:
    return table.to_pylist()


# -- the orgs ---------------------------------------------------------------------------------------
def test_default_config_has_one_github_org(sim, client):
    assert len(sim.orgs) == 1 and sim.orgs[0] is sim.org
    assert client.get("/me/collaborations").json() == [
        {"id": sim.org.id, "vcs-type": "github", "name": "acme-robotics",
         "avatar_url": "https://avatars.example/acme-robotics", "slug": "gh/acme-robotics"},
    ]  # fmt: skip


def test_collaborations_list_a_github_org_and_a_github_app_org(sim2, client2):
    github, app = sim2.orgs
    body = client2.get("/me/collaborations").json()
    assert [(o["id"], o["vcs-type"], o["name"], o["slug"]) for o in body] == [
        (github.id, "github", "acme-robotics", "gh/acme-robotics"),
        (app.id, "circleci", "acme-labs", app.slug),
    ]
    assert re.fullmatch(rf"circleci/{BASE58}", app.slug)
    assert github.id != app.id


def test_github_app_projects_have_opaque_slugs_under_the_org_id(sim2, client2):
    app = sim2.orgs[1]
    projects = sim2.projects_of(app)
    assert len(projects) == 2
    for p in projects:
        assert re.fullmatch(rf"{re.escape(app.slug)}/{BASE58}", p.slug)
        body = client2.get(f"/project/{p.slug}").json()
        assert (body["organization_slug"], body["organization_id"], body["organization_name"]) == (
            app.slug,
            app.id,
            app.name,
        )
        assert body["vcs_info"]["provider"] == "CircleCI" and body["name"] == p.name
    assert not {p.name for p in projects} & {p.name for p in sim2.projects_of(sim2.org)}


def test_adding_an_org_leaves_the_first_org_exactly_as_it_was(sim, sim2, client, client2):
    assert sim2.org == sim.org and sim2.projects_of(sim2.org) == sim.projects
    one, two = sim.truth(), sim2.truth(org=sim2.org)
    for table in ("job_runs", "workflow_runs", "test_runs", "pipelines"):
        assert getattr(one, table)().equals(getattr(two, table)()), table
    for url in (f"/insights/{sim.org.slug}/summary", f"/project/{sim.projects[0].slug}/pipeline",
                f"/insights/pages/{sim.projects[1].slug}/summary"):  # fmt: skip
        assert client.get(url).json() == client2.get(url).json(), url


def test_each_org_has_its_own_history(sim2):
    github, app = (sim2.truth(org=o) for o in sim2.orgs)
    every = sim2.truth()
    for table in ("job_runs", "workflow_runs", "pipelines"):
        a, b, both = (_rows(getattr(t, table)()) for t in (github, app, every))
        assert a and b and len(a) + len(b) == len(both), table
    ids = [{r["job_id"] for r in _rows(t.job_runs())} for t in (github, app)]
    assert not ids[0] & ids[1]
    # The GitHub-App org has the planted patterns too: a cost spike on its first project.
    first = sim2.projects_of(sim2.orgs[1])[0]
    assert any(slug == first.slug for slug, _ in app.anomalies())


def test_extra_orgs_are_deterministic_and_keyed_by_name(sim2, make_sim):
    again = make_sim(extra_orgs=sim2.config.extra_orgs)
    assert again.orgs == sim2.orgs
    assert again.truth(org=again.orgs[1]).job_runs().equals(sim2.truth(org=sim2.orgs[1]).job_runs())
    renamed = make_sim(extra_orgs=(OrgSpec("acme-other", vcs_type="circleci", n_projects=2),))
    assert renamed.orgs[1].id != sim2.orgs[1].id
    assert not renamed.truth(org=renamed.orgs[1]).job_runs().equals(sim2.truth(org=sim2.orgs[1]).job_runs())


def test_truth_by_org_accepts_an_org_its_id_or_its_slug(sim2):
    app = sim2.orgs[1]
    tables = [sim2.truth(org=ref).pipelines() for ref in (app, app.id, app.slug)]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert {r["org_id"] for r in _rows(tables[0])} == {app.id}
    with pytest.raises(ValueError, match="no simulated org"):
        sim2.truth(org="gh/nobody")
    with pytest.raises(ValueError, match="not both"):
        sim2.truth(org=app, projects=sim2.projects)


# -- insights -------------------------------------------------------------------------------------
@pytest.mark.parametrize("org_index", [0, 1])
def test_org_summary_covers_the_org_s_projects_by_name(sim2, client2, org_index):
    org = sim2.orgs[org_index]
    body = client2.get(f"/insights/{org.slug}/summary", params={"reporting-window": "last-30-days"}).json()
    names = sorted(p.name for p in sim2.projects_of(org))
    assert sorted(body["all_projects"]) == names
    assert sorted(r["project_name"] for r in body["org_project_data"]) == names
    since = NOW - REPORTING_WINDOWS["last-30-days"]
    runs = [r for r in _rows(sim2.truth(org=org).workflow_runs()) if since <= r["created_at"] < NOW]
    assert body["org_data"]["metrics"]["total_runs"] == len(runs) > 0
    per_project = Counter(r["project_slug"] for r in runs)
    by_name = {p.name: per_project[p.slug] for p in sim2.projects_of(org)}
    assert {r["project_name"]: r["metrics"]["total_runs"] for r in body["org_project_data"]} == by_name


def test_org_summary_of_a_github_app_org_by_its_organization_id(sim2, client2):
    app = sim2.orgs[1]
    assert (client2.get(f"/insights/circleci/{app.id}/summary").json()
            == client2.get(f"/insights/{app.slug}/summary").json())  # fmt: skip
    assert client2.get("/insights/circleci/NoSuchOrg111111111111111/summary").status_code == 404


def test_pipeline_discovery_agrees_with_the_org_summary(sim2, client2):
    """What project discovery will do: slugs from /pipeline?org-slug=, names from
    /project/{slug}, cross-checked against Insights' org summary, per org."""
    for org in sim2.orgs:
        slugs = {p["project_slug"] for p in all_pages(client2, "/pipeline", {"org-slug": org.slug})}
        names = {client2.get(f"/project/{slug}").json()["name"] for slug in slugs}
        summary = client2.get(f"/insights/{org.slug}/summary").json()
        assert names == set(summary["all_projects"]) == {p.name for p in sim2.projects_of(org)}
        assert slugs == {p.slug for p in sim2.projects_of(org)}


def test_project_level_answers_name_the_project_s_org(sim2, client2):
    for org in sim2.orgs:
        for p in sim2.projects_of(org):
            assert client2.get(f"/insights/pages/{p.slug}/summary").json()["org_id"] == org.id
            assert client2.get(f"/insights/{p.slug}/branches").json()["org_id"] == org.id
            job = next(j for _, j in sim2.truth(projects=[p], first_day=40).jobs())
            details = client2.get(f"/project/{p.slug}/job/{job.number}").json()
            assert details["organization"] == {"name": org.name} and details["project"]["id"] == p.id


# -- usage export -----------------------------------------------------------------------------------
def _export_rows(sim: Simulator, client, org_id: str, start, end) -> list[dict]:
    r = client.post(
        f"/organizations/{org_id}/usage_export_job", json={"start": start.isoformat(), "end": end.isoformat()}
    )
    assert r.status_code == 201, r.text
    sim.backend.advance_clock(sim.config.export_processing_seconds + 1)
    status = client.get(f"/organizations/{org_id}/usage_export_job/{r.json()['usage_export_job_id']}").json()
    assert status["state"] == "completed", status
    rows = []
    for url in status["download_urls"]:
        rows += read_csv_part(client.get(url).content)[1]
    return rows


def test_each_org_s_usage_export_holds_only_its_jobs(make_sim, make_client):
    s = make_sim(extra_orgs=(OrgSpec("acme-labs", n_projects=2),))
    c = make_client(s)
    start, end = NOW - timedelta(days=8), NOW - timedelta(days=1)
    for org in s.orgs:
        rows = _export_rows(s, c, org.id, start, end)
        truth = [r for r in _rows(s.truth(org=org).job_runs()) if start <= r["started_at"] <= end]
        assert sorted(r["JOB_ID"] for r in rows) == sorted(t["job_id"] for t in truth) and rows
        assert {(r["ORGANIZATION_ID"], r["ORGANIZATION_NAME"]) for r in rows} == {(org.id, org.name)}
        assert {r["PROJECT_ID"] for r in rows} == {p.id for p in s.projects_of(org)}


def test_an_export_job_is_only_visible_under_its_own_org(make_sim, make_client):
    s = make_sim(extra_orgs=(OrgSpec("acme-labs"),))
    c = make_client(s)
    body = {"start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(days=2)).isoformat()}
    job = c.post(f"/organizations/{s.orgs[0].id}/usage_export_job", json=body).json()["usage_export_job_id"]
    assert c.get(f"/organizations/{s.orgs[0].id}/usage_export_job/{job}").status_code == 200
    other = c.get(f"/organizations/{s.orgs[1].id}/usage_export_job/{job}")
    assert other.status_code == 404 and other.json() == {"message": "Usage export job not found"}


# -- configuration ----------------------------------------------------------------------------------
def test_extra_github_org_and_project_count(make_sim):
    s = make_sim(extra_orgs=(OrgSpec("acme-labs", n_projects=4), OrgSpec("acme-oss", vcs_type="github", n_projects=1)))
    assert [(o.slug.split("/")[0], len(s.projects_of(o))) for o in s.orgs] == [("gh", 3), ("circleci", 4), ("gh", 1)]
    assert s.projects_of("gh/acme-oss")[0].slug == "gh/acme-oss/checkout-web"
    assert [p.index for p in s.projects] == list(range(8))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((OrgSpec("acme-robotics"),), "distinct"),
        ((OrgSpec("labs"), OrgSpec("LABS", vcs_type="github")), "distinct"),
        ((OrgSpec("labs", n_projects=0),), "at least 1"),
    ],
)
def test_bad_org_specs_are_refused_with_a_clear_error(make_sim, extra, message):
    with pytest.raises(ValueError, match=message):
        make_sim(extra_orgs=extra)


def test_written_truth_lists_every_org_and_its_projects(sim2, tmp_path):
    write_truth(sim2.history, tmp_path)
    orgs = json.loads((tmp_path / "metrics.json").read_text())["orgs"]
    assert [(o["id"], o["slug"], o["vcs_type"], o["projects"]) for o in orgs] == [
        (o.id, o.slug, o.vcs_type, [p.slug for p in sim2.projects_of(o)]) for o in sim2.orgs
    ]
