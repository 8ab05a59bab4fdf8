"""The flows take one Settings parameter: the token passed in-process never reaches Prefect's
storage, a deployment's parameters (a dict) become Settings from the worker's environment, and
backfill goes through every org, one failing org not stopping the others."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from flow_helpers import TOKEN, make_sim, settings

from circleci_analytics.settings import Org, Settings
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

#: Never in the environment: only ever passed in-process.
IN_PROCESS_TOKEN = "CCIPAT_inprocess_4b8e1f2a_canary"
MISSING_ORG = Org(id="1c3f0000-0000-4000-8000-00000000dead", slug="gh/nobody", projects=["gh/nobody/nothing"])


def _database_files() -> list[Path]:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    url = PREFECT_API_DATABASE_CONNECTION_URL.value()
    assert url and url.startswith("sqlite"), url
    db = Path(url.split("///", 1)[1])
    return [p for p in db.parent.glob(db.name + "*") if p.is_file()]


def test_an_in_process_token_is_used_but_never_stored(prefect_harness, tmp_path, monkeypatch) -> None:
    from prefect.client.orchestration import get_client

    from circleci_analytics.flows import nightly

    monkeypatch.delenv("CIRCLECI_TOKEN", raising=False)
    sim = make_sim(token=IN_PROCESS_TOKEN)
    with running_server(sim) as url:
        s = settings(sim, url, tmp_path, initial_lookback_days=3, tests_lookback_days=1, token=IN_PROCESS_TOKEN)
        assert s.token is not None  # the simulator only answers this token: the run proves it was used
        state = asyncio.run(nightly(s, return_state=True))
    assert state.is_completed(), state

    async def stored_parameters() -> dict:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).parameters

    params = asyncio.run(stored_parameters())
    assert params["settings"]["lake_root"] == str(tmp_path / "lake")  # the settings are stored ...
    assert "token" not in params["settings"] and IN_PROCESS_TOKEN not in str(params)  # ... without the token
    files = _database_files()
    assert files
    for f in files:
        assert IN_PROCESS_TOKEN.encode() not in f.read_bytes(), f


def test_deployment_parameters_become_settings_from_the_environment(monkeypatch, tmp_path) -> None:
    from circleci_analytics.flows import backfill, nightly

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    monkeypatch.setenv("CIRCLECI_ANALYTICS_LAKE_ROOT", "worker/lake")
    (tmp_path / "circleci-analytics.toml").write_text(
        'warehouse_path = "worker/w.duckdb"\n[[orgs]]\nid = "1c3f0000-0000-4000-8000-000000000000"\nslug = "gh/acme"\n'
    )
    s = nightly.validate_parameters({"settings": {"token_secret_block": "circleci-token"}})["settings"]
    assert isinstance(s, Settings)
    assert (s.lake_root, s.warehouse_path, s.token_secret_block) == ("worker/lake", "worker/w.duckdb", "circleci-token")
    assert [o.slug for o in s.orgs] == ["gh/acme"] and s.token.get_secret_value() == TOKEN
    b = backfill.validate_parameters({"start": "2026-01-01", "end": "2026-01-31", "settings": {}})
    assert b["settings"].warehouse_path == "worker/w.duckdb"


def test_backfill_goes_through_every_org_despite_one_failing(prefect_harness, tmp_path, monkeypatch) -> None:
    from circleci_analytics.flows import backfill

    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    sim = make_sim()
    start, end = (sim.history.end - timedelta(days=5)).date(), (sim.history.end - timedelta(days=1)).date()
    with running_server(sim) as url:
        s = settings(sim, url, tmp_path)
        s = s.model_copy(update={"orgs": [MISSING_ORG, *s.orgs]})  # the failing org first
        state = asyncio.run(backfill(start, end, s, return_state=True))
    assert state.is_completed() and state.name == "Partially Completed", state
    summary = state.result()
    assert list(summary.failed_org_calls) == ["org gh/nobody"]
    assert summary.rows_landed["usage_job_runs"] > 0  # the good org landed anyway
    assert summary.usage_windows
