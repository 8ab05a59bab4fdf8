"""Prefect retries only where they help: the usage-export task (resumable) is retried for a
transient error only; a deterministic one fails at once. The API tasks are not retried by
Prefect at all (the client retried transient errors already; see test_flow_partial)."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from circleci_analytics.connectors import BadRequest, CircleCIError, DataError, NotFound, ServerError, TransportFailure

pytestmark = pytest.mark.xdist_group("prefect")

tasks_module = importlib.import_module("circleci_analytics.flows.tasks")


def attempts_until_done(errors: list[CircleCIError], monkeypatch: pytest.MonkeyPatch) -> tuple[int, object]:
    """Run the usage-export task (no pause between retries) in a flow whose export raises
    `errors` one call after the other, then succeeds; returns (calls, outcome)."""
    from prefect import flow

    from circleci_analytics.flows import steps

    calls = []

    async def export(*args, **kwargs):
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "exported"

    monkeypatch.setattr(steps, "export_usage_window", export)
    task = tasks_module.usage_export_task.with_options(retry_delay_seconds=0)

    @flow
    async def one_export():
        try:
            return await task(None, None, None, None, None, None, "")
        except CircleCIError as e:
            return e

    outcome = asyncio.run(one_export())
    return len(calls), outcome


@pytest.mark.parametrize("error", [TransportFailure("connection reset"), ServerError(502, "bad gateway", "GET", "/x")])
def test_a_transient_export_error_is_retried(prefect_harness, monkeypatch, error) -> None:
    calls, outcome = attempts_until_done([error, error], monkeypatch)
    assert (calls, outcome) == (3, "exported")


@pytest.mark.parametrize("error", [BadRequest(400, "bad window", "POST", "/x"), NotFound(404, "no org", "POST", "/x"),
                                   DataError("not a usage export")])  # fmt: skip
def test_a_deterministic_export_error_is_not_retried(prefect_harness, monkeypatch, error) -> None:
    calls, outcome = attempts_until_done([error], monkeypatch)
    assert calls == 1 and outcome is error


def test_api_tasks_have_no_prefect_retries() -> None:
    for name in ("resolve_projects_task", "project_streams_task", "job_tests_task"):
        assert getattr(tasks_module, name).retries == 0, name
