"""The same behaviour through a real loopback HTTP server (uvicorn in a thread): raw-path
handling of `%2F`, streamed usage-export parts, and faults as the network shows them."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from sim_helpers import NOW, quote_segment, tiny_config

from circleci_analytics.simulator import DEFAULT_TOKEN, FaultRule, OrgSpec, SimConfig, Simulator
from circleci_analytics.simulator.server import free_port, running_server

pytestmark = pytest.mark.slow

WEB = "gh/acme-robotics/web-app"
RUNS = f"/insights/{WEB}/workflows/{quote_segment('build & test/e2e')}"


@pytest.fixture(scope="module")
def served():
    sim = Simulator(tiny_config(
        export_rows_per_part=400,
        faults=(
            FaultRule("drop", route="getProjectWorkflowRuns", calls=(2,)),
            FaultRule("status", route="getProjectWorkflowRuns", calls=(3,), status=502),
            FaultRule("slow", route="getCollaborations", calls=(1,), delay_seconds=1.0),
            FaultRule("truncate_part", route="downloadUsagePart", calls=(2,)),
        ),
    ))  # fmt: skip
    with running_server(sim) as base_url:
        with httpx.Client(base_url=base_url, headers={"Circle-Token": sim.token}, timeout=10) as c:
            yield sim, base_url, c


def test_base_url_is_api_v2_on_loopback(served):
    _, base_url, c = served
    assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v2")
    assert c.get("/me").status_code == 200


def test_percent_encoded_slash_in_workflow_name_over_the_network(served):
    """httpx keeps `%2F` in the request line; uvicorn hands the raw path to the app."""
    sim, _, c = served
    r = c.get(f"/insights/{WEB}/workflows/{quote_segment('build & test/e2e')}/summary")
    assert r.status_code == 200 and r.json()["metrics"]["total_runs"] > 0
    assert c.get(f"/insights/{WEB}/workflows/build%20%26%20test/e2e/summary").status_code == 404
    one = c.get(f"/insights/{quote_segment(WEB)}/workflows/{quote_segment('build & test/e2e')}/summary")
    assert one.json() == r.json()
    app_slug = sim.projects[1].slug
    assert c.get(f"/project/{quote_segment(app_slug)}").json()["slug"] == app_slug


def test_faults_as_seen_over_the_network(served):
    _, _, c = served
    assert c.get(RUNS).status_code == 200  # call 1
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        c.get(RUNS)  # call 2: connection dropped mid-body
    assert c.get(RUNS).status_code == 502  # call 3
    assert c.get(RUNS).status_code == 200  # call 4: the client recovers on a new connection


def test_slow_fault_trips_a_client_timeout(served):
    _, base_url, _ = served
    sim = served[0]
    with httpx.Client(base_url=base_url, headers={"Circle-Token": sim.token}, timeout=0.2) as quick:
        with pytest.raises(httpx.ReadTimeout):
            quick.get("/me/collaborations")


def test_usage_export_end_to_end_over_the_network(served):
    sim, base_url, c = served
    body = {"start": (NOW - timedelta(days=10)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat()}
    job = c.post(f"/organizations/{sim.org.id}/usage_export_job", json=body)
    assert job.status_code == 201
    sim.backend.advance_clock(5)
    urls = c.get(f"/organizations/{sim.org.id}/usage_export_job/{job.json()['usage_export_job_id']}").json()[
        "download_urls"
    ]
    assert len(urls) >= 2 and all(u.startswith(base_url.removesuffix("/api/v2")) for u in urls)
    rows = 0
    with httpx.Client(timeout=10) as anon:  # pre-signed: no token
        for i, url in enumerate(urls):
            with anon.stream("GET", url) as r:
                assert r.status_code == 200
                raw = b"".join(r.iter_raw())
            if i == 1:  # download call 2 is truncated
                with pytest.raises((EOFError, gzip.BadGzipFile)):
                    gzip.decompress(raw)
                raw = anon.get(url).content
            lines = gzip.decompress(raw).decode().splitlines()
            assert lines[0].startswith("ORGANIZATION_ID,")
            rows += len(lines) - 1
    truth = [t for t in sim.truth().job_runs().to_pylist()
             if NOW - timedelta(days=10) <= t["started_at"] <= NOW - timedelta(days=1)]  # fmt: skip
    assert rows == len(truth) > 0


def test_cli_serve_with_a_github_app_org_serves_both_orgs():
    """`circleci-analytics simulator serve --github-app-org NAME` as a user runs it."""
    port = free_port()
    cmd = [sys.executable, "-m", "circleci_analytics.cli", "simulator", "serve", "--scale", "tiny", "--seed", "7",
           "--now", NOW.isoformat(), "--port", str(port), "--github-app-org", "acme-labs"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", headers={"Circle-Token": DEFAULT_TOKEN}) as c:
            deadline = time.monotonic() + 30
            while True:
                try:
                    body = c.get("/me/collaborations").json()
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.2)
            app_org = Simulator(SimConfig(seed=7, preset="tiny", now=NOW, extra_orgs=(OrgSpec("acme-labs"),))).orgs[1]
            assert [(o["slug"], o["vcs-type"]) for o in body] == [
                ("gh/acme-robotics", "github"),
                (app_org.slug, "circleci"),
            ]
            assert c.get("/pipeline", params={"org-slug": app_org.slug}).json()["items"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"org={app_org.slug} ({app_org.id})" in err.decode()
