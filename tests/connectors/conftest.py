"""Fixtures for connector tests: a fake sleep and a MockTransport-backed client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from connector_helpers import TOKEN, FakeSleep

from circleci_analytics.connectors import CircleCIClient, RetryPolicy

NO_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export")}


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_client(fake_sleep: FakeSleep) -> Callable[..., CircleCIClient]:
    def factory(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> CircleCIClient:
        kwargs.setdefault("retry", RetryPolicy(max_attempts=4, sleep=fake_sleep, jitter=0.0))
        kwargs.setdefault("rate_limits", NO_LIMITS)
        return CircleCIClient(TOKEN, "https://circleci.test/api/v2", transport=httpx.MockTransport(handler), **kwargs)

    return factory
