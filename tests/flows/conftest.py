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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    # The harness defaults to a 30 s start-up timeout; None defers to the setting above.
    with prefect_test_harness(server_startup_timeout=None):
        yield
