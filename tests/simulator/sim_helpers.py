"""Helpers for the simulator tests: a sync client over the ASGI app, the OpenAPI schemas
(from the document vendored in `simulator/openapi/`).

Also imported by the contract test, which runs the same schema assertions against the
real API: keep everything here independent of the simulator's internals.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import gzip
import io
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
import jsonschema

from circleci_analytics.simulator.openapi import load_spec as openapi_spec

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
BASE_URL = "http://sim/api/v2"


def tiny_config(**changes: Any) -> Any:
    """The tiny preset at the fixed NOW; rate limits off unless `rate_limits` is given.

    Lives here, not in conftest.py: several test folders have a conftest module, so
    `from conftest import ...` would pick whichever was imported last."""
    from circleci_analytics.simulator import SimConfig

    changes.setdefault("rate_limits", {})
    return SimConfig(seed=7, preset="tiny", now=NOW).with_(**changes)


# -- a synchronous client over the in-process ASGI app ----------------------------------------
class SyncASGIClient:
    """`httpx.AsyncClient(transport=ASGITransport(app))` driven synchronously.

    httpx's ASGITransport is async only; tests read better synchronously, so each request
    runs on a private event loop.
    """

    def __init__(self, app: Any, base_url: str = BASE_URL, headers: dict[str, str] | None = None, **kwargs: Any):
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, headers=headers or {}, **kwargs
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    def __enter__(self) -> SyncASGIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- OpenAPI 3.0 -> JSON Schema ------------------------------------------------------------------
@cache
def _operations() -> dict[str, tuple[str, str, dict]]:
    out = {}
    for path, item in openapi_spec()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                out[op["operationId"]] = (method.upper(), path, op)
    return out


def operation(operation_id: str) -> tuple[str, str, dict]:
    """(METHOD, path template, operation object) of an OpenAPI operation."""
    return _operations()[operation_id]


def _resolve(ref: str) -> Any:
    node: Any = openapi_spec()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _is_nullable(schema: dict) -> bool:
    return bool(schema.get("x-nullable") or schema.get("nullable"))


def to_json_schema(schema: Any, _depth: int = 0) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: $refs inlined, `nullable`/`x-nullable`
    (on the schema or any `allOf` member) turned into "or null", OpenAPI-only keys dropped."""
    if _depth > 60:
        raise RecursionError("schema nesting too deep (recursive $ref?)")
    if isinstance(schema, list):
        return [to_json_schema(s, _depth + 1) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return to_json_schema(_resolve(schema["$ref"]), _depth + 1)
    nullable = _is_nullable(schema) or any(isinstance(m, dict) and _is_nullable(m) for m in schema.get("allOf", ()))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "x-nullable", "example", "examples", "x-go-name", "discriminator", "xml",
                   "externalDocs", "deprecated", "readOnly", "writeOnly"):  # fmt: skip
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(s, _depth + 1) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value, _depth + 1)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(s, _depth + 1) for s in value]
        else:
            out[key] = copy.deepcopy(value)
    if nullable:
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return {"anyOf": [{"type": "null"}, out]}
    return out


def response_schema(operation_id: str, status: int | str = 200) -> dict:
    """The JSON Schema of an operation's `status` (or `default`) JSON response."""
    _, _, op = operation(operation_id)
    responses = op["responses"]
    resp = responses.get(str(status)) or responses["default"]
    if "$ref" in resp:
        resp = _resolve(resp["$ref"])
    return to_json_schema(resp["content"]["application/json"]["schema"])


def snake_case_schema(schema: Any) -> Any:
    """A schema with every property name kebab-case -> snake_case (the live flaky-tests keys)."""
    if isinstance(schema, list):
        return [snake_case_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "properties":
            out[k] = {name.replace("-", "_"): snake_case_schema(s) for name, s in v.items()}
        elif k == "required":
            out[k] = [name.replace("-", "_") for name in v]
        else:
            out[k] = snake_case_schema(v)
    return out


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@FORMAT_CHECKER.checks("uuid", raises=ValueError)
def _check_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    uuid.UUID(value)
    return len(value) == 36


@FORMAT_CHECKER.checks("uri")
def _check_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$", value))


def schema_errors(instance: Any, schema: dict) -> list[str]:
    """Every validation error as "path: message" (empty when valid)."""
    validator = jsonschema.Draft7Validator(schema, format_checker=FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


def assert_conforms(operation_id: str, body: Any, status: int = 200, max_errors: int = 10) -> None:
    errors = schema_errors(body, response_schema(operation_id, status))
    assert not errors, f"{operation_id} {status} does not match the OpenAPI schema:\n" + "\n".join(errors[:max_errors])


# -- usage export parts ----------------------------------------------------------------------------
def read_csv_part(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Gunzip one usage-export part and parse it (header, rows as dicts)."""
    text = gzip.decompress(data).decode()
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    return header, rows


def all_pages(client: Any, url: str, params: dict | list | None = None, max_pages: int = 500) -> list[dict]:
    """Every item of a paginated list, re-sending the filters with each `page-token`."""
    items: list[dict] = []
    token: str | None = None
    seen: set[str] = set()
    base = list(params.items()) if isinstance(params, dict) else list(params or [])
    for _ in range(max_pages):
        q = base + ([("page-token", token)] if token else [])
        r = client.get(url, params=q)
        assert r.status_code == 200, (url, r.status_code, r.text)
        body = r.json()
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items
        assert token not in seen, f"repeated page token on {url}"
        seen.add(token)
    raise AssertionError(f"more than {max_pages} pages on {url}")


def quote_segment(value: str) -> str:
    """Percent-encode a whole path segment, `/` included."""
    from urllib.parse import quote

    return quote(value, safe="")
