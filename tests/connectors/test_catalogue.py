"""The stream catalogue is consistent, and agrees with CircleCI's own OpenAPI document: every
path of every field map, every fixed parameter and cursor parameter exists in the operation
the stream calls."""

from __future__ import annotations

import importlib
import re
from string import Formatter
from typing import Any

import pyarrow as pa
import pytest

from circleci_analytics.connectors import CATALOGUE, Stream
from circleci_analytics.connectors.streams import TIMESTAMP
from circleci_analytics.simulator.openapi import load_spec

GENERIC = [s for s in CATALOGUE.values() if s.handler is None]


@pytest.mark.parametrize("stream", CATALOGUE.values(), ids=list(CATALOGUE))
def test_a_stream_has_a_derived_schema_its_keys_fit(stream: Stream) -> None:
    schema = stream.schema
    assert schema.field("extracted_at").type == TIMESTAMP and not schema.field("extracted_at").nullable
    assert len(set(schema.names)) == len(schema.names)
    for fld in schema:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", fld.name), fld.name
        if pa.types.is_timestamp(fld.type):
            assert fld.type == TIMESTAMP, fld.name
    columns = set(schema.names) | ({"snapshot_date"} if stream.lake.mode == "snapshot" else set())
    assert set(stream.primary_key) <= columns and stream.primary_key
    assert {col for _, _, col in stream.lake.partition_by} <= columns
    if stream.cursor is not None:
        assert schema.field(stream.cursor.column).type == TIMESTAMP
        assert stream.lake.mode == "merge"  # a cursor's rows are merged, not snapshotted
    assert stream.description


@pytest.mark.parametrize("stream", GENERIC, ids=[s.name for s in GENERIC])
def test_a_generic_stream_is_reachable_from_its_parent(stream: Stream) -> None:
    parent = CATALOGUE[stream.parent]
    assert set(stream.parent_keys) <= set(parent.schema.names), "parent keys are columns of the parent"
    assert stream.endpoint is not None
    path_values = {f for _, f, _, _ in Formatter().parse(stream.endpoint.path) if f}
    assert path_values <= set(stream.parent_keys), "a path value comes from the parent key"
    if any(s.parent == stream.name for s in GENERIC):
        assert stream.refresh == "every run", "a parent is read every run, or its children lose their keys"


@pytest.mark.parametrize("stream", [s for s in CATALOGUE.values() if s.handler], ids=lambda s: s.name)
def test_a_special_stream_names_the_module_that_runs_it(stream: Stream) -> None:
    module = importlib.import_module(f"circleci_analytics.{stream.handler}")
    assert stream.name in (module.__doc__ or "")


# -- against the OpenAPI document ----------------------------------------------------------------
def _operation(stream: Stream) -> dict[str, Any]:
    assert stream.endpoint is not None
    path = re.sub(r"\{(\w+)\}", lambda m: "{" + m.group(1).replace("_", "-") + "}", stream.endpoint.path)
    return load_spec()["paths"][path]["get"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = load_spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _property(schema: dict[str, Any], key: str, snake: bool) -> dict[str, Any] | None:
    for name, sub in _resolve(schema).get("properties", {}).items():
        if (name.replace("-", "_") if snake else name) == key:
            return _resolve(sub)
    return None


def _walk(schema: dict[str, Any], keys: tuple[str, ...], snake: bool) -> dict[str, Any] | None:
    for key in keys:
        found = _property(schema, key, snake)
        if found is None:
            return None
        schema = found
    return schema


@pytest.mark.parametrize("stream", [s for s in CATALOGUE.values() if s.endpoint], ids=lambda s: s.name)
def test_the_field_map_reads_what_the_api_documents(stream: Stream) -> None:
    endpoint = stream.endpoint
    assert endpoint is not None
    operation = _operation(stream)
    body = _resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    snake = endpoint.snake_keys
    if endpoint.paginated:
        assert _walk(body, ("next_page_token",), snake) is not None
        records = [_resolve(_walk(body, ("items",), snake)["items"])]
    elif endpoint.records is None:
        records = [body]
    else:
        keys = [endpoint.records] if isinstance(endpoint.records, str) else list(endpoint.records.values())
        records = [_resolve(_walk(body, (k,), snake)["items"]) for k in keys]
    for fld in stream.fields:
        kind, keys = fld.source()
        if kind == "record":
            assert all(_walk(r, keys, snake) is not None for r in records), f"{fld.column} <- {fld.path}"
        elif kind == "body":
            assert _walk(body, keys, snake) is not None, f"{fld.column} <- {fld.path}"
    params = {p["name"] for p in operation.get("parameters", [])}
    wanted = set(endpoint.params)
    if stream.cursor is not None:
        wanted |= {stream.cursor.start_param, stream.cursor.end_param}
    if any(scope != "default-branch" for scope in stream.scopes):
        wanted |= {"all-branches"}
    assert wanted <= params, wanted - params


def test_context_fields_name_a_path_value_a_parameter_or_the_scope() -> None:
    for stream in GENERIC:
        assert stream.endpoint is not None
        known = set(stream.parent_keys) | {k.replace("-", "_") for k in stream.endpoint.params}
        known |= {"scope"} if stream.scopes else set()
        known |= {"record_set"} if isinstance(stream.endpoint.records, dict) else set()
        for fld in stream.fields:
            kind, (key, *_) = fld.source()
            if kind == "context" and fld.required:
                assert key in known, (stream.name, fld.column)
