"""A deployment's token comes from the Prefect Secret block its settings name (no $CIRCLECI_TOKEN
on the worker): the async flows load it."""

from __future__ import annotations

import asyncio

import pytest
from flow_helpers import TOKEN, make_sim, settings

from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")


def test_the_nightly_reads_the_token_from_a_secret_block(prefect_harness, tmp_path, monkeypatch) -> None:
    from prefect.blocks.system import Secret

    from circleci_analytics.flows import nightly

    monkeypatch.delenv("CIRCLECI_TOKEN", raising=False)
    Secret(value=TOKEN).save("circleci-token-test", overwrite=True)
    sim = make_sim()
    with running_server(sim) as url:
        s = settings(sim, url, tmp_path, initial_lookback_days=2, tests_lookback_days=1,
                     token_secret_block="circleci-token-test")  # fmt: skip
        assert s.token is None
        state = asyncio.run(nightly(s, return_state=True))
    assert state.is_completed(), state  # the simulator answers only this token
