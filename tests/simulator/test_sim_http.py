"""The HTTP layer: authentication, errors, slugs and raw-path handling, pagination, and
parameter validation messages."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sim_helpers import NOW, all_pages, quote_segment

from circleci_analytics.simulator import FaultRule

WEB = "gh/acme-robotics/web-app"
WF = "build & test/e2e"


# -- authentication -------------------------------------------------------------------------------
def test_circle_token_header_authenticates(sim, make_client):
    r = make_client(sim, auth=False).get("/me", headers={"Circle-Token": sim.token})
    assert r.status_code == 200 and r.json()["login"]


def test_basic_auth_with_token_as_username_authenticates(sim, make_client):
    c = make_client(sim, auth=False)
    assert c.get("/me", auth=(sim.token, "")).status_code == 200
    # the password is ignored, as with `curl -u $TOKEN:`
    raw = base64.b64encode(f"{sim.token}:".encode()).decode()
    assert c.get("/me", headers={"Authorization": f"Basic {raw}"}).status_code == 200


def test_deprecated_query_parameter_authenticates(sim, make_client):
    c = make_client(sim, auth=False)
    assert c.get("/me", params={"circle-token": sim.token}).status_code == 200


@pytest.mark.parametrize(
    "how",
    ["none", "wrong header", "wrong basic", "wrong query", "empty header", "basic password only", "garbage basic"],
)
def test_missing_or_wrong_token_is_401_with_a_message(sim, make_client, how):
    c = make_client(sim, auth=False)
    kwargs = {
        "none": {},
        "wrong header": {"headers": {"Circle-Token": "CCIPAT_wrong"}},
        "wrong basic": {"auth": ("CCIPAT_wrong", "")},
        "wrong query": {"params": {"circle-token": "nope"}},
        "empty header": {"headers": {"Circle-Token": ""}},
        "basic password only": {"auth": ("", sim.token)},
        "garbage basic": {"headers": {"Authorization": "Basic !!!notbase64"}},
    }[how]
    for url in ("/me", f"/insights/{WEB}/workflows", f"/organizations/{sim.org.id}/usage_export_job/x"):
        r = c.get(url, **kwargs)
        assert r.status_code == 401, (how, url)
        assert r.json() == {"message": "You must log in first."}
        assert sim.token not in r.text


def test_401_is_also_returned_for_post(sim, make_client):
    r = make_client(sim, auth=False).post(f"/organizations/{sim.org.id}/usage_export_job", json={})
    assert r.status_code == 401


# -- not found ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/project/gh/acme-robotics/no-such-repo",
        "/project/gh/acme-robotics/no-such-repo/pipeline",
        "/insights/gh/acme-robotics/no-such-repo/workflows",
        "/insights/gh/acme-robotics/no-such-repo/flaky-tests",
        "/insights/pages/gh/acme-robotics/no-such-repo/summary",
        "/project/gh/other-org/web-app/job/1",
    ],
)
def test_unknown_project_is_404_project_not_found(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert r.json() == {"message": "Project not found"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/no/such/route", "Not Found"),
        ("/workflow/00000000-0000-4000-8000-000000000000", "Workflow not found"),
        ("/pipeline/not-a-uuid/workflow", "Pipeline not found"),
        (f"/project/{WEB}/job/999999999", "Job not found"),
        ("/insights/gh/another-org/summary", "Organization not found"),
    ],
)
def test_other_404s(client, url, message):
    r = client.get(url)
    assert r.status_code == 404
    assert r.json() == {"message": message}


def test_job_number_must_be_an_integer(client):
    r = client.get(f"/project/{WEB}/job/abc")
    assert r.status_code == 400 and "abc" in r.json()["message"]


# -- slugs and raw paths --------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1])
def test_slug_as_one_encoded_segment_equals_three_segments(sim, client, index):
    slug = sim.projects[index].slug
    encoded = quote_segment(slug)
    assert "%2F" in encoded
    for tail in ("", "/pipeline"):
        plain = client.get(f"/project/{slug}{tail}")
        one = client.get(f"/project/{encoded}{tail}")
        assert plain.status_code == one.status_code == 200
        assert plain.json()["items" if tail else "slug"] == one.json()["items" if tail else "slug"]
    a = client.get(f"/insights/{slug}/workflows").json()
    b = client.get(f"/insights/{encoded}/workflows").json()
    assert a["items"] == b["items"] and a["items"]


def test_vcs_aliases_github_and_gh_name_the_same_project(client):
    a = client.get(f"/project/{WEB}").json()
    b = client.get("/project/github/acme-robotics/web-app").json()
    assert a == b


def test_org_slug_as_one_encoded_segment(sim, client):
    a = client.get(f"/insights/{sim.org.slug}/summary")
    b = client.get(f"/insights/{quote_segment(sim.org.slug)}/summary")
    assert a.status_code == 200
    assert b.status_code == 200, b.text
    assert a.json() == b.json()


def test_workflow_name_with_slash_is_one_encoded_segment(client):
    encoded = quote_segment(WF)
    r = client.get(f"/insights/{WEB}/workflows/{encoded}", params={"all-branches": "true"})
    assert r.status_code == 200 and r.json()["items"]
    for tail in ("/summary", "/jobs", "/test-metrics"):
        assert client.get(f"/insights/{WEB}/workflows/{encoded}{tail}").status_code == 200, tail
    assert client.get(f"/insights/time-series/{WEB}/workflows/{encoded}/jobs").json()["items"]
    # Sent unencoded, the `/` splits the name: no such route.
    unencoded = client.get(f"/insights/{WEB}/workflows/build%20%26%20test/e2e")
    assert unencoded.status_code == 404


def test_workflow_name_is_matched_exactly(client):
    r = client.get(f"/insights/{WEB}/workflows/{quote_segment('build & test')}", params={"all-branches": "true"})
    assert r.status_code == 200 and r.json()["items"] == []


# -- pagination -----------------------------------------------------------------------------------
def test_page_size_is_configurable_and_pages_cover_everything(make_sim, make_client):
    s = make_sim(page_size=7)
    c = make_client(s)
    slug = s.projects[0].slug
    first = c.get(f"/project/{slug}/pipeline").json()
    assert len(first["items"]) == 7 and first["next_page_token"]
    items = all_pages(c, f"/project/{slug}/pipeline")
    expected = sum(len(s.history.pipelines(s.projects[0], d)) for d in range(s.history.days))
    assert len(items) == expected > 7
    assert len({i["id"] for i in items}) == expected
    numbers = [i["number"] for i in items]
    assert numbers == sorted(numbers, reverse=True), "newest first, no overlap between pages"


def test_default_page_size_is_20(client, sim):
    assert len(client.get(f"/project/{sim.projects[0].slug}/pipeline").json()["items"]) == 20


def test_page_tokens_are_opaque_strings(make_sim, make_client):
    s = make_sim(page_size=5)
    c = make_client(s)
    slug = s.projects[0].slug
    tokens = []
    token = None
    for _ in range(4):
        body = c.get(f"/project/{slug}/pipeline", params={"page-token": token} if token else None).json()
        token = body["next_page_token"]
        tokens.append(token)
    assert len(set(tokens)) == 4
    for t in tokens:
        assert isinstance(t, str) and not t.isdigit() and len(t) >= 16
        assert "5" != t and "offset" not in t


@pytest.mark.parametrize("token", ["garbage", "AAAA", "", "eyJvZmZzZXQiOjIwfQ", "1" * 40])
def test_bad_page_token_is_404_not_found(client, token):
    r = client.get(f"/project/{WEB}/pipeline", params={"page-token": token or "=="})
    assert r.status_code == 404
    assert r.json() == {"message": "Not Found"}


def test_tampered_page_token_is_404(client):
    token = client.get(f"/project/{WEB}/pipeline").json()["next_page_token"]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert client.get(f"/project/{WEB}/pipeline", params={"page-token": flipped}).status_code == 404


def test_page_token_requires_the_same_filters(client):
    url = f"/insights/{WEB}/workflows/{quote_segment(WF)}"
    first = client.get(url, params={"all-branches": "true"}).json()
    token = first["next_page_token"]
    assert token
    same = client.get(url, params={"all-branches": "true", "page-token": token})
    assert same.status_code == 200 and same.json()["items"][0]["id"] != first["items"][0]["id"]
    dropped = client.get(url, params={"page-token": token})
    assert dropped.status_code == 404 and dropped.json() == {"message": "Not Found"}
    changed = client.get(url, params={"branch": "main", "page-token": token})
    assert changed.status_code == 404


def test_page_token_is_bound_to_its_endpoint(sim, client):
    token = client.get(f"/project/{WEB}/pipeline").json()["next_page_token"]
    other = client.get(f"/project/{sim.projects[2].slug}/pipeline", params={"page-token": token})
    assert other.status_code == 404


def test_repeat_page_token_fault_hands_back_the_same_token(make_sim, make_client):
    s = make_sim(faults=(FaultRule("repeat_page_token", route="listPipelinesForProject", calls=(2,)),))
    c = make_client(s)
    url = f"/project/{s.projects[0].slug}/pipeline"
    t1 = c.get(url).json()["next_page_token"]
    page2 = c.get(url, params={"page-token": t1}).json()
    assert page2["next_page_token"] == t1, "the fault should repeat the incoming token"
    page2_again = c.get(url, params={"page-token": t1}).json()
    assert page2_again["next_page_token"] not in (None, t1), "only the scripted call repeats"
    assert page2_again["items"] == page2["items"]


def test_tests_pagination_uses_tests_page_size(make_sim, make_client):
    s = make_sim(tests_page_size=4)
    c = make_client(s)
    project = s.projects[0]
    job = next(j for _, j in s.truth(projects=[project], first_day=20).jobs() if j.has_tests)
    body = c.get(f"/project/{project.slug}/{job.number}/tests").json()
    assert len(body["items"]) == 4 and body["next_page_token"]
    assert len(all_pages(c, f"/project/{project.slug}/{job.number}/tests")) == len(job.test_results())


# -- parameter validation ---------------------------------------------------------------------------
VALID_WINDOWS = "last-24-hours, last-7-days, last-30-days, last-60-days, last-90-days"


@pytest.mark.parametrize(
    "url",
    [
        f"/insights/{WEB}/workflows",
        f"/insights/{WEB}/workflows/{quote_segment(WF)}/jobs",
        "/insights/gh/acme-robotics/summary",
        f"/insights/pages/{WEB}/summary",
    ],
)
def test_reporting_window_must_be_one_of_the_enum(client, url):
    r = client.get(url, params={"reporting-window": "last-year"})
    assert r.status_code == 400
    assert r.json() == {"message": f"Invalid reporting-window 'last-year'. Valid values are: {VALID_WINDOWS}."}


@pytest.mark.parametrize("window", VALID_WINDOWS.split(", "))
def test_every_reporting_window_is_accepted(client, window):
    items = client.get(f"/insights/{WEB}/workflows", params={"reporting-window": window}).json()["items"]
    if window != "last-24-hours":
        assert items and items[0]["window_end"] == NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start-date": "yesterday"}, "Invalid start-date: 'yesterday' is not an ISO 8601 date-time."),
        ({"start-date": "2026-05-01T00:00:00Z", "end-date": "soon"}, "Invalid end-date: 'soon' is not an ISO 8601 date-time."),
        ({"end-date": "2026-05-01T00:00:00Z"}, "start-date is required when end-date is provided."),
        ({"start-date": "2026-05-10T00:00:00Z", "end-date": "2026-05-01T00:00:00Z"}, "end-date must be after start-date."),
        ({"start-date": "2026-01-01T00:00:00Z", "end-date": "2026-04-02T00:00:00Z"},
         "end-date must be no more than 90 days after start-date."),
    ],
)  # fmt: skip
def test_workflow_runs_date_validation(client, params, message):
    r = client.get(f"/insights/{WEB}/workflows/{quote_segment(WF)}", params=params)
    assert r.status_code == 400
    assert r.json() == {"message": message}


def test_workflow_runs_exactly_90_days_is_accepted(client):
    r = client.get(f"/insights/{WEB}/workflows/{quote_segment(WF)}",
                   params={"start-date": "2026-03-03T12:00:00Z", "end-date": "2026-06-01T12:00:00Z"})  # fmt: skip
    assert r.status_code == 200


def test_timeseries_granularity_validation(client):
    url = f"/insights/time-series/{WEB}/workflows/{quote_segment(WF)}/jobs"
    r = client.get(url, params={"granularity": "weekly"})
    assert r.status_code == 400 and "weekly" in r.json()["message"]
    old = client.get(url, params={"timeseries-granularity": "hourly"}).json()["items"]
    new = client.get(url, params={"granularity": "hourly"}).json()["items"]
    assert old == new and new


def _export(client, sim, start, end):
    return client.post(f"/organizations/{sim.org.id}/usage_export_job",
                       json={"start": start.isoformat(), "end": end.isoformat()})  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (NOW - timedelta(days=40), NOW - timedelta(days=8), "end must be no more than 31 days after start."),
        (NOW - timedelta(days=400), NOW - timedelta(days=390), "start must be no more than one year ago."),
        (NOW - timedelta(days=2), NOW + timedelta(hours=2), "Date cannot be in the future."),
        (NOW - timedelta(days=2), NOW - timedelta(days=3), "start must be before end."),
    ],
)
def test_usage_export_window_validation(make_sim, make_client, start, end, message):
    s = make_sim()
    r = _export(make_client(s), s, start, end)
    assert r.status_code == 400
    assert r.json() == {"message": message}
    assert not s.backend.exports


def test_usage_export_exactly_31_days_is_accepted(make_sim, make_client):
    s = make_sim()
    assert _export(make_client(s), s, NOW - timedelta(days=32), NOW - timedelta(days=1)).status_code == 201


@pytest.mark.parametrize("body", [{}, {"start": "2026-05-01T00:00:00Z"}, [1, 2], "text", None])
def test_usage_export_bad_body(make_sim, make_client, body):
    s = make_sim()
    r = make_client(s).post(f"/organizations/{s.org.id}/usage_export_job", json=body)
    assert r.status_code == 400
    assert r.json() == {"message": "Unexpected request body provided."}


def test_usage_export_unknown_org_is_404(make_sim, make_client):
    s = make_sim()
    c = make_client(s)
    r = c.post(
        "/organizations/not-my-org/usage_export_job",
        json={"start": "2026-05-01T00:00:00Z", "end": "2026-05-02T00:00:00Z"},
    )
    assert r.status_code == 404
    assert c.get(f"/organizations/{s.org.id}/usage_export_job/nope").status_code == 404
