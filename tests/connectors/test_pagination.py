"""Pagination rules on httpx.MockTransport."""

from __future__ import annotations

import httpx
import pytest
from connector_helpers import run

from circleci_analytics.connectors import NotFound, PaginationError


def _collect(client, path, params=None):
    async def go():
        async with client:
            return [item async for item in client.paginate(path, params)]

    return run(go())


def test_filters_resent_with_page_token(make_client):
    seen: list[httpx.QueryParams] = []
    pages = {None: ([1, 2], "t1"), "t1": ([3], "t2"), "t2": ([4], None)}

    def handler(request):
        seen.append(request.url.params)
        items, nxt = pages[request.url.params.get("page-token")]
        return httpx.Response(200, json={"items": items, "next_page_token": nxt})

    items = _collect(
        make_client(handler), "/insights/gh/a/b/workflows", {"branch": "main", "reporting-window": "last-7-days"}
    )
    assert items == [1, 2, 3, 4]
    assert [p.get("page-token") for p in seen] == [None, "t1", "t2"]
    assert all(p["branch"] == "main" and p["reporting-window"] == "last-7-days" for p in seen)


def test_missing_next_page_token_stops(make_client):
    items = _collect(make_client(lambda r: httpx.Response(200, json={"items": [1]})), "/x")
    assert items == [1]


def test_repeated_token_detected(make_client):
    def handler(request):
        return httpx.Response(200, json={"items": [1], "next_page_token": "same"})

    with pytest.raises(PaginationError, match="repeated"):
        _collect(make_client(handler), "/x")


def test_404_on_page_token_is_pagination_error(make_client):
    def handler(request):
        if request.url.params.get("page-token"):
            return httpx.Response(404, json={"message": "Not Found"})
        return httpx.Response(200, json={"items": [1], "next_page_token": "t1"})

    with pytest.raises(PaginationError, match="page token rejected") as info:
        _collect(make_client(handler), "/project/gh/a/b/pipeline")
    assert info.value.pages == 1


def test_404_on_first_page_stays_not_found(make_client):
    with pytest.raises(NotFound):
        _collect(make_client(lambda r: httpx.Response(404, json={"message": "Project not found"})), "/x")
