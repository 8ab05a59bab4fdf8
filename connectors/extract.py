"""The one generic extractor: runs any catalogued stream for one parent key.

``extract_stream(client, stream, context)`` renders the endpoint's path from the context (the
parent key: project slug, workflow name), asks once per scope and, for an incremental stream,
once per window of ``[since, now)`` (each at most the cursor's ``max_window``, the API's
limit), all concurrently; pages are followed by ``connectors.pagination``; records are
selected as the endpoint declares and mapped through the field map (``Stream.table``).

A stream with a ``handler`` (projects, job tests, the usage export) is run by that module,
which uses ``fetch_records`` and ``Stream.table`` for the parts it shares with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from circleci_analytics.connectors.encoding import render_path
from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.streams import Batch, Stream, parse_timestamp, scope_params

if TYPE_CHECKING:
    from circleci_analytics.connectors.client import CircleCIClient

__all__ = ["Extract", "extract_stream", "fetch_records", "gather", "run_windows", "utcnow"]


@dataclass(frozen=True)
class Extract:
    """One extracted table, and what it was extracted for."""

    stream: str
    table: pa.Table
    extracted_at: datetime
    context: Mapping[str, Any] = field(default_factory=dict)  # the parent key (project slug, ...)
    start: datetime | None = None  # incremental: the window asked for, [start, end)
    end: datetime | None = None
    watermark: datetime | None = None  # incremental: newest cursor value seen (or the old one)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_windows(start: datetime, end: datetime, max_window: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` as consecutive windows no longer than ``max_window``."""
    windows = []
    cursor = start
    while cursor < end:
        stop = min(cursor + max_window, end)
        windows.append((cursor, stop))
        cursor = stop
    return windows


def _resource(context: Mapping[str, Any]) -> str:
    """What a 404 names: the most specific parent of the request."""
    if "job_number" in context:
        return f"job {context['job_number']} of project {context['project_slug']!r}"
    if "workflow_name" in context:
        return f"workflow {context['workflow_name']!r} of project {context['project_slug']!r}"
    if "project_slug" in context:
        return f"project {context['project_slug']!r}"
    return "the resource in the path"


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).replace("-", "_"): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


async def fetch_records(
    client: CircleCIClient, stream: Stream, context: Mapping[str, Any], params: Mapping[str, Any] | None = None
) -> list[Batch]:
    """One request of `stream` (every page): its records, as batches tagged with their context."""
    endpoint = stream.endpoint
    if endpoint is None:
        raise ValueError(f"stream {stream.name!r} has no endpoint (it is run by {stream.handler})")
    path = render_path(endpoint.path, **context)
    query = {**endpoint.params, **(params or {})}
    resource = _resource(context)
    if endpoint.paginated:
        items = [item async for item in client.paginate(path, query, resource=resource)]
        return [(context, _snake(items) if endpoint.snake_keys else items, None)]
    body = await client.get_json(path, query, resource=resource)
    if not isinstance(body, dict):
        raise DataError(f"stream {stream.name!r}: expected a JSON object, got {type(body).__name__}")
    if endpoint.snake_keys:
        body = _snake(body)
    selector = endpoint.records
    if selector is None:
        return [(context, [body], body)]
    sets = {None: selector} if isinstance(selector, str) else dict(selector)
    batches: list[Batch] = []
    for name, key in sets.items():
        records = body.get(key) or []
        if not isinstance(records, list):
            raise DataError(f"stream {stream.name!r}: {key!r} is not a list")
        batches.append(({**context, "record_set": name} if name else context, records, body))
    return batches


async def extract_stream(
    client: CircleCIClient,
    stream: Stream,
    context: Mapping[str, Any],
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    watermark: datetime | None = None,
) -> Extract:
    """Every record of `stream` for the parent key `context`: each scope, and for an incremental
    stream each window of ``[since, now)``, fetched concurrently. ``Extract.watermark`` is the
    newest cursor value seen, or `watermark` (the previous one) if that is newer or nothing came."""
    at = utcnow()
    params = {k.replace("-", "_"): v for k, v in (stream.endpoint.params if stream.endpoint else {}).items()}
    base = {**params, **context}
    cursor = stream.cursor
    windows: list[tuple[datetime, datetime] | None] = [None]
    if cursor is not None:
        if since is None or now is None:
            raise ValueError(f"stream {stream.name!r} is incremental: give since and now")
        windows = list(run_windows(since, now, cursor.max_window))
    requests = []
    for scope in stream.scopes or (None,):
        ctx = {**base, "scope": scope} if scope else base
        for window in windows:
            query = dict(scope_params(scope))
            if window is not None and cursor is not None:
                query |= {cursor.start_param: window[0], cursor.end_param: window[1]}
            requests.append(fetch_records(client, stream, ctx, query))
    batches = [batch for result in await gather(*requests) for batch in result]
    table = stream.table(batches, at)
    newest = None
    if cursor is not None:
        newest = pc.max(table.column(cursor.column)).as_py() if table.num_rows else None
        known = parse_timestamp(watermark)
        newest = max(filter(None, [newest, known]), default=None)
    return Extract(stream.name, table, at, dict(context), since, now if cursor else None, newest)


async def gather(*aws: Any) -> list[Any]:
    """Results in order; on the first error the others are cancelled and that error is raised
    as is (as a sequence of awaits would), not as an ExceptionGroup."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
