"""Client mechanics on httpx.MockTransport: retries, error mapping, encoding, secrets."""

from __future__ import annotations

import logging

import httpx
import pytest
from connector_helpers import TOKEN, run

from circleci_analytics.connectors import (
    ApiStatusError,
    AuthError,
    BadRequest,
    CircleCIClient,
    CircleCIError,
    DataError,
    InvalidPath,
    InvalidToken,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServerError,
    TransportFailure,
    is_transient,
    render_path,
)
from circleci_analytics.connectors.ratelimit import family_for_path


def test_sends_circle_token_header_and_raw_path(make_client):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async def go():
        async with make_client(handler) as client:
            return await client.get_json("/me")

    assert run(go()) == {"ok": True}
    assert seen[0].headers["Circle-Token"] == TOKEN
    assert seen[0].url.raw_path == b"/api/v2/me"


def test_retry_on_429_honours_retry_after(make_client, fake_sleep):
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "Rate limit exceeded."}),
            httpx.Response(200, json={"n": 1}),
        ]
    )

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            body = await client.get_json("/insights/gh/a/b/workflows")
            return body, client.stats

    body, stats = run(go())
    assert body == {"n": 1}
    assert fake_sleep.waits and fake_sleep.waits[0] >= 7.0
    assert stats.calls["insights"] == 2
    assert stats.retries["insights"] == 1


@pytest.mark.parametrize("header", ["RateLimit-Reset", "X-RateLimit-Reset"])
def test_ratelimit_reset_headers_set_minimum_wait(make_client, fake_sleep, header):
    responses = iter([httpx.Response(429, headers={header: "12"}), httpx.Response(200, json={})])

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            await client.get_json("/me")

    run(go())
    assert fake_sleep.waits[0] >= 12.0


def test_5xx_retried_then_server_error(make_client, fake_sleep):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, json={"message": "Internal server error."})

    async def go():
        async with make_client(handler) as client:
            await client.get_json("/project/gh/a/b")

    with pytest.raises(ServerError) as info:
        run(go())
    assert len(calls) == 4  # max_attempts
    assert info.value.status == 503
    assert "Internal server error." in str(info.value)
    # exponential backoff: waits grow
    assert fake_sleep.waits == sorted(fake_sleep.waits) and fake_sleep.waits[0] < fake_sleep.waits[-1]


def test_5xx_then_success(make_client):
    responses = iter([httpx.Response(502), httpx.Response(500), httpx.Response(200, json=[1])])

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            return await client.get_json("/me")

    assert run(go()) == [1]


def test_transport_error_retried(make_client):
    attempts = []

    def handler(request):
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"ok": 1})

    async def go():
        async with make_client(handler) as client:
            return await client.get_json("/me")

    assert run(go()) == {"ok": 1}
    assert len(attempts) == 3


def test_transport_error_exhausted(make_client):
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    async def go():
        async with make_client(handler) as client:
            await client.get_json("/me")

    with pytest.raises(TransportFailure, match="ReadTimeout"):
        run(go())


def test_429_waits_as_told_until_the_patience_is_spent(make_client, fake_sleep):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "Rate limit exceeded."})

    async def go():
        async with make_client(handler, retry=RetryPolicy(max_attempts=2, sleep=fake_sleep, jitter=0.0,
                                                          patience={"insights": 9})) as client:  # fmt: skip
            await client.get_json("/insights/gh/a/b/workflows")

    with pytest.raises(RateLimited) as info:
        run(go())
    # 2 s at a time while 9 s of patience last: 4 waits (8 s), the 5th would pass 9 s
    assert len(calls) == 5
    assert info.value.retry_after == pytest.approx(2.0)
    assert "gave up after 5 rate-limit answer(s) and 8s of waiting (patience for insights: 9s)" in str(info.value)
    assert "Rate limit exceeded." in str(info.value)


def test_429s_do_not_spend_the_attempts_meant_for_server_errors(make_client, fake_sleep):
    responses = iter([httpx.Response(429, headers={"Retry-After": "1"})] * 12 + [httpx.Response(503)] * 3
                     + [httpx.Response(200, json={"ok": True})])  # fmt: skip

    async def go():
        async with make_client(
            lambda r: next(responses), retry=RetryPolicy(max_attempts=4, sleep=fake_sleep)
        ) as client:
            return await client.get_json("/me"), client.stats

    body, stats = run(go())
    assert body == {"ok": True}
    assert stats.calls["core"] == 16 and stats.rate_limited["core"] == 12 and stats.retries["core"] == 15


def test_patience_is_per_family_with_defaults_declared_once():
    from circleci_analytics.connectors import DEFAULT_PATIENCE

    policy = RetryPolicy(patience={"usage_export": 7200})
    assert policy.patience_for("usage_export") == 7200
    assert policy.patience_for("insights") == DEFAULT_PATIENCE["insights"] == RetryPolicy().patience_for("insights")
    assert policy.patience_for("no-such-family") == DEFAULT_PATIENCE["core"]
    assert DEFAULT_PATIENCE["core"] >= 300 and DEFAULT_PATIENCE["usage_export"] >= 3600  # minutes, not seconds
    assert RetryPolicy(patience=5).patience_for("tests") == 5.0
    with pytest.raises(ValueError, match="patience"):
        RetryPolicy(patience={"core": -1})


@pytest.mark.parametrize(("path", "hint"), [("/organizations/x/usage_export_job", 7200), ("/me", 601)])
def test_retry_after_beyond_the_patience_gives_up_immediately(make_client, fake_sleep, path, hint):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": str(hint)})

    async def go():
        async with make_client(handler) as client:
            await client.get_json(path)

    with pytest.raises(RateLimited) as info:
        run(go())
    assert len(calls) == 1 and fake_sleep.waits == []
    assert info.value.retry_after == pytest.approx(hint)
    assert f"the server asks to wait {hint}s more" in str(info.value)


def test_server_error_hint_beyond_the_patience_gives_up_immediately(make_client, fake_sleep):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503, headers={"Retry-After": "3600"})

    async def go():
        async with make_client(handler) as client:
            await client.get_json("/me")

    with pytest.raises(ServerError, match="more than the 600s patience"):
        run(go())
    assert len(calls) == 1 and fake_sleep.waits == []


@pytest.mark.parametrize(
    ("status", "exc", "text"),
    [
        (401, AuthError, "personal"),
        (403, AuthError, "CIRCLECI_TOKEN"),
        (404, NotFound, "project 'gh/a/b'"),
        (400, BadRequest, "Date cannot be in the future."),
        (422, ApiStatusError, "HTTP 422"),
        (409, ApiStatusError, "HTTP 409"),
    ],
)
def test_errors_mapped_not_retried(make_client, status, exc, text):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(status, json={"message": "Date cannot be in the future."})

    async def go():
        async with make_client(handler) as client:
            await client.get_json("/project/gh/a/b", resource="project 'gh/a/b'")

    with pytest.raises(exc) as info:
        run(go())
    assert len(calls) == 1
    assert info.value.status == status
    assert info.value.method == "GET" and info.value.path == "/project/gh/a/b"
    assert text in str(info.value)


def test_workflow_name_encoded_as_one_segment(make_client):
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"items": [], "next_page_token": None})

    path = render_path(
        "/insights/{project_slug}/workflows/{workflow_name}",
        project_slug="gh/my org/repo",
        workflow_name="build/test & deploy",
    )

    async def go():
        async with make_client(handler) as client:
            await client.get_json(path, {"branch": "feature/x", "all-branches": False})

    run(go())
    raw = seen[0].url.raw_path.decode()
    assert raw.startswith("/api/v2/insights/gh/my%20org/repo/workflows/build%2Ftest%20%26%20deploy?")
    assert seen[0].url.params["branch"] == "feature/x"
    assert seen[0].url.params["all-branches"] == "false"


def test_opaque_circleci_slug_kept():
    path = render_path("/project/{project_slug}", project_slug="circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat")
    assert path == "/project/circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat"


def test_token_never_leaks(make_client, caplog):
    def handler(request):
        # a hostile server echoing the token back in its message
        return httpx.Response(401, json={"message": f"bad token {TOKEN}"})

    async def go():
        async with make_client(handler) as client:
            assert TOKEN not in repr(client) and TOKEN not in str(client)
            await client.get_json(f"/me?circle-token={TOKEN}")

    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        run(go())
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value.args)
    assert TOKEN not in info.value.path
    assert TOKEN not in caplog.text


def test_token_not_logged_on_retries(make_client, caplog):
    responses = iter([httpx.Response(500), httpx.Response(200, json={})])
    caplog.set_level(logging.DEBUG)

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            await client.get_json("/me")

    run(go())
    assert "retrying GET /me" in caplog.text
    assert TOKEN not in caplog.text


def test_missing_token_is_clear(monkeypatch):
    monkeypatch.delenv("CIRCLECI_TOKEN", raising=False)
    with pytest.raises(CircleCIError, match="CIRCLECI_TOKEN"):
        CircleCIClient()


def test_token_from_env(monkeypatch):
    monkeypatch.setenv("CIRCLECI_TOKEN", "from-env-token")
    seen = []

    def handler(request):
        seen.append(request.headers["circle-token"])
        return httpx.Response(200, json={})

    async def go():
        async with CircleCIClient(transport=httpx.MockTransport(handler)) as client:
            await client.get_json("/me")

    run(go())
    assert seen == ["from-env-token"]


def test_families():
    assert family_for_path("/insights/gh/a/b/workflows") == "insights"
    assert family_for_path("/project/gh/a/b/123/tests") == "tests"
    assert family_for_path("/project/gh/a/b/job/123") == "core"
    assert family_for_path("/organizations/o/usage_export_job/j") == "usage_export"


def test_concurrency_is_bounded(make_client):
    import asyncio

    state = {"now": 0, "max": 0}

    class SlowTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            state["now"] -= 1
            return httpx.Response(200, json={})

    async def go():
        async with CircleCIClient(
            TOKEN,
            transport=SlowTransport(),
            max_concurrency=3,
            retry=RetryPolicy(max_attempts=1),
            rate_limits={"core": None},
        ) as client:
            await asyncio.gather(*(client.get_json("/me") for _ in range(12)))
            return client.stats.calls["core"]

    assert run(go()) == 12
    assert state["max"] == 3


def test_retry_after_preferred_over_window_reset(make_client, fake_sleep):
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2", "RateLimit-Reset": "60", "X-RateLimit-Reset": "60"}),
            httpx.Response(200, json={}),
        ]
    )

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            await client.get_json("/me")

    run(go())
    assert 2.0 <= fake_sleep.waits[0] < 60


def test_429_pauses_the_whole_family(make_client, fake_sleep):
    responses = iter([httpx.Response(429, headers={"Retry-After": "30"})] + [httpx.Response(200, json={})] * 3)

    async def go():
        async with make_client(lambda r: next(responses)) as client:
            await client.get_json("/insights/gh/a/b/workflows")
            before = len(fake_sleep.waits)
            await client.get_json("/insights/gh/a/b/branches")  # another request, same family
            after = fake_sleep.waits[before:]
            await client.get_json("/me")  # other family: not paused
            return after, fake_sleep.waits[before + len(after) :]

    paused, other = run(go())
    assert paused and paused[0] == pytest.approx(30, abs=1)
    assert other == []


def test_asgi_server_receives_percent_2f():
    """The raw path reaches an ASGI server unchanged (``%2F`` is not decoded to ``/``)."""
    received: list[bytes] = []

    async def app(scope, receive, send):
        received.append(scope["raw_path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    path = render_path(
        "/insights/{project_slug}/workflows/{workflow_name}/summary", project_slug="gh/o/r", workflow_name="a/b c&d"
    )

    async def go():
        async with CircleCIClient(TOKEN, "http://sim/api/v2", transport=httpx.ASGITransport(app=app)) as client:
            await client.get_json(path)

    run(go())
    assert received == [b"/api/v2/insights/gh/o/r/workflows/a%2Fb%20c%26d/summary"]


def test_per_call_retry_override(make_client):
    calls = []

    def handler(request):
        calls.append(request.method)
        return httpx.Response(500, json={"message": "Internal server error."})

    async def go():
        async with make_client(handler) as client:
            await client.request_json(
                "POST", "/organizations/o/usage_export_job", json={}, retry=RetryPolicy(max_attempts=1)
            )

    with pytest.raises(ServerError, match="gave up after 1 attempt"):
        run(go())
    assert calls == ["POST"]


def test_a_malformed_answer_is_not_retried(make_client):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"})

    async def go():
        async with make_client(handler) as client:
            await client.get_json("/me")

    with pytest.raises(DataError, match="not JSON"):
        run(go())
    assert len(calls) == 1


def test_only_transport_429_and_5xx_are_transient():
    transient = [TransportFailure("x"), RateLimited(429, "m", "GET", "/"), ServerError(503, "m", "GET", "/")]
    permanent = [AuthError(401, "m", "GET", "/"), NotFound(404, "m", "GET", "/"), BadRequest(400, "m", "GET", "/"),
                 ApiStatusError(422, "m", "GET", "/"), DataError("x"), InvalidPath("x"), InvalidToken("x"),
                 ValueError("x")]  # fmt: skip
    assert all(map(is_transient, transient)) and not any(map(is_transient, permanent))
