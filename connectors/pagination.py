"""Token pagination for CircleCI list endpoints.

A list response is ``{"items": [...], "next_page_token": str | null}``. The next
page is requested with the ORIGINAL filters plus ``page-token`` (the API forgets
filters otherwise). Iteration stops on a null/missing/empty token. A token seen
twice raises ``PaginationError`` (the API would loop forever), and a 404 on a
page-token request (a known CircleCI bug, circleci-docs #6472) is turned into a
``PaginationError`` saying the token was rejected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from circleci_analytics.connectors.errors import DataError, NotFound, PaginationError

__all__ = ["PAGE_TOKEN_PARAM", "JsonGetter", "Params", "paginate", "paginate_pages"]

PAGE_TOKEN_PARAM = "page-token"
Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


class JsonGetter(Protocol):
    """What pagination needs of a client (``connectors.client.CircleCIClient`` is one)."""

    @property
    def scrub(self) -> Callable[[str], str]: ...

    async def get_json(self, path: str, params: Params | None = None, *, family: str | None = None,
                       resource: str | None = None, priority: int = 0) -> Any: ...  # fmt: skip


async def paginate_pages(
    client: JsonGetter,
    path: str,
    params: Params | None = None,
    *,
    family: str | None = None,
    resource: str | None = None,
    items_key: str = "items",
    max_pages: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield each page's item list; see the module docstring for the rules.

    Each next page asks the client to serve it before requests that are further from their
    end (``priority``): a long listing is never starved by the queue of other requests.
    """
    base: list[tuple[str, Any]] = list(params.items()) if isinstance(params, Mapping) else list(params or [])
    base = [(k, v) for k, v in base if k != PAGE_TOKEN_PARAM]
    seen: set[str] = set()
    token: str | None = None
    pages = 0
    while True:
        query = base + ([(PAGE_TOKEN_PARAM, token)] if token else [])
        try:
            body = await client.get_json(path, query, family=family, resource=resource, priority=-pages)
        except NotFound as exc:
            if token is None:
                raise
            raise PaginationError(
                f"page token rejected by GET {exc.path} (HTTP 404: {exc.message}) after "
                f"{pages} page(s); the token may have expired - restart this extraction",
                path=exc.path,
                pages=pages,
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get(items_key, []), list):
            raise DataError(
                f"GET {client.scrub(path)}: expected an object with a list {items_key!r}, got {type(body).__name__}"
            )
        pages += 1
        yield body.get(items_key) or []
        next_token = body.get("next_page_token")
        if not next_token:
            return
        if next_token in seen:
            raise PaginationError(
                f"GET {client.scrub(path)}: next_page_token repeated after {pages} page(s); "
                "stopping to avoid an endless loop",
                path=client.scrub(path),
                pages=pages,
            )
        if max_pages is not None and pages >= max_pages:
            return
        seen.add(next_token)
        token = next_token


async def paginate(
    client: JsonGetter,
    path: str,
    params: Params | None = None,
    *,
    family: str | None = None,
    resource: str | None = None,
    items_key: str = "items",
    max_pages: int | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield every item of every page."""
    async for page in paginate_pages(
        client,
        path,
        params,
        family=family,
        resource=resource,
        items_key=items_key,
        max_pages=max_pages,
    ):
        for item in page:
            yield item
