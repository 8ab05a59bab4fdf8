"""Rate limits (429 with Retry-After and RateLimit-* headers, per family and org, time scale)
and injected faults (scripted statuses, probabilistic, slow, dropped connections) in process."""

from __future__ import annotations

import httpx
import pytest
from sim_helpers import quote_segment

from circleci_analytics.simulator import FamilyLimit, FaultRule, SimConfig

WEB = "gh/acme-robotics/web-app"
RUNS = f"/insights/{WEB}/workflows/{quote_segment('build & test/e2e')}"
EXPORT_BODY = {"start": "2026-05-20T00:00:00Z", "end": "2026-05-25T00:00:00Z"}


# -- rate limits ------------------------------------------------------------------------------
def test_429_with_retry_after_and_ratelimit_headers(make_sim, make_client):
    s = make_sim(rate_limits={"insights": FamilyLimit(3, 60)})
    c = make_client(s)
    ok = [c.get(f"/insights/{WEB}/workflows") for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [int(r.headers["RateLimit-Remaining"]) for r in ok] == [2, 1, 0]
    assert all(r.headers["RateLimit-Limit"] == "3" for r in ok)
    limited = c.get(f"/insights/{WEB}/workflows")
    assert limited.status_code == 429
    assert limited.json() == {"message": "Rate limit exceeded."}
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 20  # one token refills in 60/3 s
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert int(limited.headers["RateLimit-Reset"]) >= retry
    assert "X-RateLimit-Limit" in limited.headers
    s.backend.advance_clock(retry)
    assert c.get(f"/insights/{WEB}/workflows").status_code == 200


def test_families_have_separate_buckets(make_sim, make_client):
    s = make_sim(rate_limits={"insights": FamilyLimit(1, 60), "core": FamilyLimit(100, 60)})
    c = make_client(s)
    assert c.get(f"/insights/{WEB}/workflows").status_code == 200
    assert c.get(RUNS).status_code == 429
    core = c.get(f"/project/{WEB}")
    assert core.status_code == 200 and core.headers["RateLimit-Limit"] == "100"


def test_unauthenticated_calls_do_not_spend_the_budget(make_sim, make_client):
    s = make_sim(rate_limits={"insights": FamilyLimit(1, 60)})
    anon = make_client(s, auth=False)
    for _ in range(3):
        assert anon.get(f"/insights/{WEB}/workflows").status_code == 401
    assert make_client(s).get(f"/insights/{WEB}/workflows").status_code == 200


def test_usage_export_post_is_10_per_hour_per_org_by_default(make_sim, make_client):
    s = make_sim(rate_limits=SimConfig().rate_limits)  # the defaults
    c = make_client(s)
    url = f"/organizations/{s.org.id}/usage_export_job"
    statuses = [c.post(url, json=EXPORT_BODY).status_code for _ in range(11)]
    assert statuses == [201] * 10 + [429]
    limited = c.post(url, json=EXPORT_BODY)
    assert limited.status_code == 429
    assert 300 <= int(limited.headers["Retry-After"]) <= 360  # one per 6 minutes
    # another org has its own bucket (and is then unknown: 404, not 429)
    assert c.post("/organizations/other-org/usage_export_job", json=EXPORT_BODY).status_code == 404
    # GET has its own bucket of 10
    job = s.backend.export_posts[0][3]
    gets = [c.get(f"{url}/{job}").status_code for _ in range(11)]
    assert gets == [200] * 10 + [429]


def test_time_scale_makes_hourly_limits_fast(make_sim, make_client):
    # 10 per hour / 36 = 10 per 100 s: slow enough that real time cannot refill the bucket
    # during the test, fast enough that the clock jump below is short.
    s = make_sim(rate_limits={"usage_export_post": FamilyLimit(10, 3600)}, time_scale=36.0)
    c = make_client(s)
    url = f"/organizations/{s.org.id}/usage_export_job"
    assert [c.post(url, json=EXPORT_BODY).status_code for _ in range(11)][-1] == 429
    limited = c.post(url, json=EXPORT_BODY)
    # One request every 360 s / 36 = 10 s, less what real time refilled during the test.
    assert 8 <= int(limited.headers["Retry-After"]) <= 10
    s.backend.advance_clock(10.5)
    assert c.post(url, json=EXPORT_BODY).status_code == 201


# -- faults -----------------------------------------------------------------------------------
def test_scripted_statuses_by_call_number(make_sim, make_client):
    s = make_sim(faults=(
        FaultRule("status", route="getProjectWorkflowRuns", calls=(1,), status=500),
        FaultRule("status", route="getProjectWorkflowRuns", calls=(2,), status=502),
        FaultRule("status", route="getProjectWorkflowRuns", calls=(4,), status=503),
    ))  # fmt: skip
    c = make_client(s)
    got = [c.get(RUNS) for _ in range(5)]
    assert [r.status_code for r in got] == [500, 502, 200, 503, 200]
    assert got[0].json() == {"message": "Internal server error."}
    assert got[1].json()["message"] and got[3].json()["message"]
    assert c.get(f"/insights/{WEB}/workflows").status_code == 200, "other routes unaffected"


def test_wildcard_fault_with_a_limit(make_sim, make_client):
    s = make_sim(faults=(FaultRule("status", route="*", probability=1.0, limit=2, status=503),))
    c = make_client(s)
    assert [c.get("/me").status_code for _ in range(2)] == [503, 503]
    assert c.get(f"/project/{WEB}").status_code == 200


def test_probabilistic_faults_are_seeded(make_sim, make_client):
    def statuses():
        s = make_sim(faults=(FaultRule("status", route="getCurrentUser", probability=0.4, status=502),))
        c = make_client(s)
        return [c.get("/me").status_code for _ in range(30)]

    a, b = statuses(), statuses()
    assert a == b
    assert 3 <= a.count(502) <= 25 and a.count(200) >= 5


def test_slow_fault_still_answers(make_sim, make_client):
    s = make_sim(faults=(FaultRule("slow", route="getCurrentUser", calls=(1,), delay_seconds=0.05),))
    r = make_client(s).get("/me")
    assert r.status_code == 200 and r.json()["login"]


def test_drop_fault_is_a_transport_error_in_process(make_sim, make_client):
    s = make_sim(faults=(FaultRule("drop", route="getProjectWorkflowRuns", calls=(1,)),))
    c = make_client(s)
    with pytest.raises(httpx.RemoteProtocolError):
        c.get(RUNS).json()
    assert c.get(RUNS).status_code == 200


def test_download_fault_statuses(make_sim, make_client):
    s = make_sim(faults=(FaultRule("status", route="downloadUsagePart", calls=(1,), status=503),))
    c = make_client(s)
    job = c.post(f"/organizations/{s.org.id}/usage_export_job", json=EXPORT_BODY).json()["usage_export_job_id"]
    s.backend.advance_clock(5)
    url = c.get(f"/organizations/{s.org.id}/usage_export_job/{job}").json()["download_urls"][0]
    assert c.get(url).status_code == 503
    assert c.get(url).status_code == 200
