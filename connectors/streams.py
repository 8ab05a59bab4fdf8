"""How a stream is declared: the types of the catalogue (``connectors.catalogue``) and what is
derived from a declaration (its Arrow schema, its rows).

A stream is declared once, as data, in the spirit of dlt's ``rest_api`` resources:

* ``endpoint``: path template, fixed query parameters, paginator (CircleCI's page token, or
  none) and record selector (``Endpoint``);
* ``parent`` and ``parent_keys``: the stream whose rows give this one's path values (the
  configured ``projects`` give project slugs; ``workflow_metrics`` gives workflow names);
  ``scopes``: the Insights branch scopes requested, each a request of its own;
* ``fields``: the field map, one ``Field`` per column (column <- JSON path, Arrow type,
  conversion). The Arrow schema is derived from it (``Stream.schema``, with ``extracted_at``);
* ``primary_key``; ``cursor``: what makes the stream incremental (``Cursor``); ``refresh``:
  every run, or on the slow-snapshot cadence (the ``snapshot_refresh_days`` setting);
* ``lake``: the lake layout and write mode (``warehouse.tables`` derives its table specs);
* ``handler``: the module that runs a stream needing special handling (``None``: the generic
  extractor, ``connectors.extract``); ``landed_only``: why no model reads the stream yet.

This module and the catalogue import nothing but pyarrow and the usage export's schema
module: the lake layer reads them without reaching into the HTTP side.

Scopes (Insights ``branch`` / ``all-branches`` parameters): ``"default-branch"`` sends
neither (CircleCI's default), ``"all-branches"`` sends ``all-branches=true``, anything else
is a branch name (``branch=<name>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import pyarrow as pa

from circleci_analytics.connectors.errors import DataError

__all__ = [
    "ALL_BRANCHES",
    "DEFAULT_BRANCH",
    "TIMESTAMP",
    "Batch",
    "Cursor",
    "Endpoint",
    "Field",
    "Layout",
    "Refresh",
    "Stream",
    "WriteMode",
    "blank_to_none",
    "parse_timestamp",
    "scope_params",
]

DEFAULT_BRANCH = "default-branch"
ALL_BRANCHES = "all-branches"
TIMESTAMP = pa.timestamp("us", tz="UTC")
EXTRACTED_AT = pa.field("extracted_at", TIMESTAMP, nullable=False)

Refresh = Literal["every run", "slow snapshot"]
WriteMode = Literal["merge", "snapshot"]


# -- value conversions (by Arrow type, or a field's own) -------------------------------------
def parse_timestamp(value: Any) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or offset, naive = UTC) in UTC; ``None``/``""`` -> ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise DataError(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DataError(f"expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"expected an integer, got {value!r}") from exc


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"expected a number, got {value!r}") from exc


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise DataError(f"expected true or false, got {value!r}")


def blank_to_none(value: Any) -> str | None:
    """Text, with ``""`` as null (the API sends either for a missing file, classname, source)."""
    return None if value is None or value == "" else str(value)


_PARSERS: dict[pa.DataType, Callable[[Any], Any]] = {
    pa.string(): _str,
    pa.int64(): _int,
    pa.float64(): _float,
    pa.bool_(): _bool,
    TIMESTAMP: parse_timestamp,
}


def scope_params(scope: str | None) -> dict[str, Any]:
    """Query parameters of an Insights scope (see the module docstring); ``None``: no scope."""
    if scope is None or scope == DEFAULT_BRANCH:
        return {}
    if scope == ALL_BRANCHES:
        return {"all-branches": True}
    if not scope:
        raise ValueError("scope must be 'default-branch', 'all-branches' or a branch name")
    return {"branch": scope}


# -- the declaration types -------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One column: where its value comes from, its Arrow type and how the raw value converts.

    ``path`` is a dotted JSON path into the record (``metrics.duration_metrics.p95``), or
    ``@name`` for a value of the request's context (a path value such as ``project_slug``, the
    ``scope``, a query parameter with ``_`` for ``-``, ``record_set``), or ``$.a.b`` for a value
    of the response body around the record. ``parse`` converts the raw value (units, blanks);
    by default the type's own conversion (``"12"`` -> 12, ISO text -> UTC timestamp).
    """

    column: str
    path: str
    type: pa.DataType
    required: bool = False
    parse: Callable[[Any], Any] | None = None

    @property
    def arrow(self) -> pa.Field:
        return pa.field(self.column, self.type, nullable=not self.required)

    def convert(self, value: Any) -> Any:
        return (self.parse or _PARSERS[self.type])(value)

    def source(self) -> tuple[str, tuple[str, ...]]:
        """Where the value is read: ("record" | "context" | "body", the keys to follow)."""
        if self.path.startswith("@"):
            return "context", (self.path[1:],)
        if self.path.startswith("$."):
            return "body", tuple(self.path[2:].split("."))
        return "record", tuple(self.path.split("."))


@dataclass(frozen=True)
class Endpoint:
    """An API operation: path template, fixed query parameters, paginator, record selector.

    ``paginated``: CircleCI's token pagination (``items`` + ``next_page_token``, see
    ``connectors.pagination``); else one call whose body holds the records. ``records`` selects
    them from such a body: ``None`` = the body is the record, a key = the list under it, a
    mapping ``{name: key}`` = several lists, each record tagged with its name in the context's
    ``record_set``. ``snake_keys``: the API spells keys in kebab-case or snake_case (flaky
    tests): both become snake_case before selection.
    """

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    paginated: bool = False
    records: str | Mapping[str, str] | None = None
    snake_keys: bool = False


@dataclass(frozen=True)
class Cursor:
    """What makes a stream incremental: each request asks for records whose ``column`` lies in
    ``[start, end)`` (``start_param`` / ``end_param``); ``start`` is the watermark (the newest
    ``column`` value landed for the parent key) minus the ``overlap_days`` setting, or, with no
    watermark, the start of the org's history in the lake, at most ``retention`` ago (how far
    back the API answers). One request spans at most ``max_window``."""

    column: str
    start_param: str = "start-date"
    end_param: str = "end-date"
    max_window: timedelta = timedelta(days=90)
    retention: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class Layout:
    """How a stream lands in the lake (``warehouse.tables`` has the rules).

    ``merge``: rows keyed by the primary key replace their earlier versions; ``snapshot``:
    each extraction lands under ``snapshot_date`` (UTC date of ``extracted_at``), keyed by the
    primary key and that date, so history outlives the API's windows. ``partition_by``:
    ``(partition key, "date" | "value", source column)``.
    """

    mode: WriteMode
    partition_by: tuple[tuple[str, str, str], ...] = ()


#: Records of one request and the context they were asked for (path values, scope, ...).
Batch = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Stream:
    """One stream, declared once (see the module docstring)."""

    name: str
    description: str
    lake: Layout
    fields: tuple[Field, ...] = ()
    primary_key: tuple[str, ...] = ()
    endpoint: Endpoint | None = None
    parent: str | None = None
    parent_keys: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    cursor: Cursor | None = None
    refresh: Refresh = "every run"
    handler: str | None = None
    landed_only: str | None = None
    #: The schema of a handler's stream that has no field map (the usage export's CSV columns).
    arrow_schema: pa.Schema | None = None

    @cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema: the field map's columns, then ``extracted_at``."""
        if self.arrow_schema is not None:
            return self.arrow_schema
        return pa.schema([f.arrow for f in self.fields] + [EXTRACTED_AT])

    def key(self, context: Mapping[str, Any]) -> tuple[str, ...]:
        """The parent key of a request context (what watermarks and refreshes are kept by)."""
        return tuple(str(context[k]) for k in self.parent_keys)

    def table(self, batches: Iterable[Batch], extracted_at: datetime) -> pa.Table:
        """Records -> an Arrow table of the stream's schema, column by column through the field
        map; a value that does not convert, or a null in a required column, raises ``DataError``
        naming the stream and the column."""
        batches = list(batches)
        columns = []
        for fld in self.fields:
            kind, keys = fld.source()
            values: list[Any] = []
            for context, records, body in batches:
                if kind == "record":
                    values += [_follow(record, keys) for record in records]
                else:
                    value = context.get(keys[0]) if kind == "context" else _follow(body or {}, keys)
                    values += [value] * len(records)
            try:
                array = pa.array([fld.convert(v) for v in values], type=fld.type)
            except (DataError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                raise DataError(f"stream {self.name!r}, column {fld.column!r}: {exc}") from exc
            if fld.required and array.null_count:
                raise DataError(f"stream {self.name!r}: required column {fld.column!r} has null values")
            columns.append(array)
        n = sum(len(records) for _, records, _ in batches)
        columns.append(pa.array([extracted_at] * n, TIMESTAMP))
        return pa.Table.from_arrays(columns, schema=self.schema)


def _follow(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
