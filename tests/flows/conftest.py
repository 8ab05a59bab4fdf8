"""Fixtures for the flow tests: one Prefect test harness per session (helpers: flow_helpers.py).

Prefect's temporary server takes ~30 s to start (more on a busy machine), so there is
exactly one, and every module that runs a flow is marked ``xdist_group("prefect")`` so that
``pytest -n 2 --dist loadgroup`` runs them all on the worker that started it.
"""

from __future__ import annotations

import os

# Before anything imports prefect: a slow first start, and no telemetry offline.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep `xdist_group("prefect")` working on pytest >= 9.2 (pytest-xdist#1386).

    pytest-xdist 3.8 groups tests by appending ``@<group>`` to ``item._nodeid``; pytest 9.2
    keeps node ids in ``item._id``, so the suffix is lost and `--dist loadgroup` spreads the
    group over every worker (each then starting its own Prefect server). Re-apply the suffix
    for the tests in this folder; a no-op where xdist did not set one or pytest honours it.
    """
    for item in items:
        legacy = item.__dict__.get("_nodeid")
        if not legacy or item.nodeid == legacy or not item.path.is_relative_to(HERE):
            continue
        try:
            from _pytest.nodeid import coerce_node_id
        except ImportError:  # pragma: no cover - older pytest honours `_nodeid`
            return
        item._id = coerce_node_id(legacy)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    # The harness defaults to a 30 s start-up timeout; None defers to the setting above.
    with prefect_test_harness(server_startup_timeout=None):
        yield
