"""One failing test-metadata probe never loses the others: whatever outlived the client's
retries is reported per job (and probed again next run); only a refused token is raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from circleci_analytics.connectors import AuthError, JobRef, extract_job_tests

SLUG = "gh/acme/api"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
#: job number -> the answer of its tests endpoint
ANSWERS = {
    1: httpx.Response(
        200, json={"items": [{"name": "t", "classname": "A", "result": "success"}], "next_page_token": None}
    ),
    2: httpx.Response(500, json={"message": "boom"}),
    3: httpx.Response(400, json={"message": "bad job"}),
    4: httpx.Response(200, text="<html>not json</html>"),
    5: httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "slow down"}),
}


def probe(make_client, handler, jobs):
    async def go():
        async with make_client(handler) as client:
            return await extract_job_tests(client, jobs, now=NOW)

    return asyncio.run(go())


def test_failed_probes_are_reported_and_the_rest_lands(make_client) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ANSWERS[int(request.url.path.rstrip("/").split("/")[-2])]

    jobs = [JobRef(SLUG, n, f"job-{n}", job_status="success") for n in ANSWERS]
    result = probe(make_client, handler, jobs)
    assert result.extract.table.column("job_number").to_pylist() == [1]
    failed = {number: error for _, number, error in result.failed}
    assert sorted(failed) == [2, 3, 4, 5]
    assert "HTTP 500" in failed[2] and "HTTP 400" in failed[3] and "HTTP 429" in failed[5]
    assert result.state.seen == {(SLUG, 1)}  # the failed ones are probed again next run


def test_a_refused_token_is_raised(make_client) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Invalid token provided."})

    with pytest.raises(AuthError):
        probe(make_client, handler, [JobRef(SLUG, 1, "unit", job_status="success")])
