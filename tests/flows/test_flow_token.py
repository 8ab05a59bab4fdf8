"""The token from a Prefect Secret block: resolved inside the async flows (nightly, backfill),
where Prefect's dual sync/async `Block.load` handed back a coroutine (found by mypy)."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.xdist_group("prefect")

BLOCK_TOKEN = "CCIPAT_fromblock_7d2c9e10_canary"


def test_token_from_a_secret_block_inside_an_async_flow(prefect_harness, monkeypatch):
    from prefect import flow
    from prefect.blocks.system import Secret

    from circleci_analytics.flows import resolve_token
    from circleci_analytics.settings import Settings

    monkeypatch.delenv("CIRCLECI_TOKEN", raising=False)
    Secret(value=BLOCK_TOKEN).save("circleci-token-test", overwrite=True)
    settings = Settings(token_secret_block="circleci-token-test")
    assert settings.token is None

    @flow
    async def probe() -> str:
        return await resolve_token(settings)

    assert asyncio.run(probe()) == BLOCK_TOKEN
