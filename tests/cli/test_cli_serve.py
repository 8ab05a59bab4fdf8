"""`circleci-analytics serve` on one machine, as real processes: it starts and supervises a
persistent local Prefect server, a per-minute scheduled nightly fires and completes against
the simulator, the server comes back when killed, and a second `serve` on the same data
folder refuses instead of doubling the runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from test_cli_demo import console_script

from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

TOKEN = "CCIPAT_servetest_7c1d93aa_secret"
PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


def wait_for(what: str, check: Callable[[], Any], timeout: float, proc: subprocess.Popen, log: Path) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (with serve's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"serve exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}")


def holder(prefect_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((prefect_dir / "serve.lock").read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def flow_runs(api: str, **state_type: list[str]) -> list[dict[str, Any]]:
    """Flow runs whose state type is (`any_`) or is not (`not_any_`) one of these."""
    query = {"flow_runs": {"state": {"type": state_type}}, "sort": "EXPECTED_START_TIME_ASC", "limit": 200}
    try:
        r = httpx.post(f"{api}/flow_runs/filter", json=query, timeout=10)
        return r.json() if r.status_code == 200 else []
    except httpx.HTTPError:
        return []


def deploy_prefect_yaml(api: str, env: dict[str, str], home: Path) -> dict[str, dict[str, Any]]:
    """`prefect deploy --all` of the project's prefect.yaml against `api`; the deployments by name."""
    prefect = [str(Path(console_script()[0]).parent / "prefect")]
    env = {**env, "PREFECT_API_URL": api, "CIRCLECI_ANALYTICS_HOME": str(home)}
    for args in (["work-pool", "create", "circleci-analytics", "--type", "process"],
                 ["--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)]):  # fmt: skip
        done = subprocess.run([*prefect, *args], env=env, cwd=home, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    return {d["name"]: d for d in found if d["name"] != "circleci-nightly"}


def write_config(path: Path, url: str, data: Path, sim: Simulator) -> None:
    projects = ", ".join(f'"{p.slug}"' for p in sim.projects)
    path.write_text(
        f'api_base_url = "{url}"\nlake_root = "{data / "lake"}"\nwarehouse_path = "{data / "warehouse.duckdb"}"\n'
        f'dashboard_dir = "{data / "dashboard"}"\nprefect_dir = "{data / "prefect"}"\nrender_dashboard = false\n'
        'initial_lookback_days = 2\ntests_lookback_days = 1\nexport_poll_seconds = 0.2\nschedule_cron = "* * * * *"\n'
        "rate_limits = { core = 0, insights = 0, tests = 0, usage_export = 0 }\n"
        f'[[orgs]]\nid = "{sim.org.id}"\nslug = "{sim.org.slug}"\nprojects = [{projects}]\n'
    )  # fmt: skip


def test_serve_runs_the_nightly_every_tick_once_and_survives_its_server(tmp_path: Path) -> None:
    started = time.perf_counter()
    sim = Simulator(SimConfig(seed=7, preset="tiny", token=TOKEN, time_scale=3600.0, export_processing_seconds=0.2))
    data, cfg, log = tmp_path / "data", tmp_path / "circleci-analytics.toml", tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    # No UI in the test (the API and scheduler are what is tested): it starts faster.
    env.update(CIRCLECI_TOKEN=TOKEN, PREFECT_UI_ENABLED="false", PREFECT_HOME=str(tmp_path / "unused-home"))
    with running_server(sim) as url:
        write_config(cfg, url, data, sim)
        with open(log, "wb") as out:
            serve = subprocess.Popen([*console_script(), "serve", "--config", str(cfg)], env=env, cwd=tmp_path,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            first = wait_for("the Prefect API", lambda: (h := holder(data / "prefect")).get("server_pid")
                             and healthy(h["api_url"]) and h, 240, serve, log)  # fmt: skip
            api = first["api_url"]
            assert first["pid"] == serve.pid and (data / "prefect" / "prefect.db").is_file()

            # A second serve on the same data folder refuses at once, naming the first.
            t0 = time.perf_counter()
            second = subprocess.run([*console_script(), "serve", "--config", str(cfg)], env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=120)  # fmt: skip
            assert second.returncode == 2, second.stdout + second.stderr
            assert f"pid {serve.pid}" in second.stderr and api in second.stderr and "already serving" in second.stderr
            assert time.perf_counter() - t0 < 30

            # The server dies; serve starts it again on the same address.
            wait_for("the deployment", lambda: httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json(),
                     60, serve, log)  # fmt: skip
            os.killpg(first["server_pid"], signal.SIGKILL)
            wait_for("the restarted server", lambda: holder(data / "prefect").get("server_pid") != first["server_pid"]
                     and healthy(api), 240, serve, log)  # fmt: skip

            # A scheduled run fires and completes against the simulator.
            done = wait_for("a completed scheduled run", lambda: flow_runs(api, any_=["COMPLETED"]), 240, serve, log)
            runs = flow_runs(api, not_any_=["SCHEDULED"])  # every run that started
            deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
            # The same server takes the project's prefect.yaml deployments.
            yaml_deployments = deploy_prefect_yaml(api, env, tmp_path)
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
    wall = time.perf_counter() - started
    print(f"\nserve test: {wall:.0f} s wall time")
    assert not healthy(api)  # stopping serve stops its server

    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from fct_job_runs").fetchone()[0] > 0
    finally:
        con.close()
    assert any((data / "lake").rglob("*.parquet"))
    # One run per schedule tick (a second serve never doubled them) ...
    assert [d["name"] for d in deployments] == ["circleci-nightly"]
    assert deployments[0]["global_concurrency_limit"]["limit"] == 1
    # prefect.yaml: the deployments' run limits, the token only as a Secret block name.
    assert set(yaml_deployments) == {"nightly", "backfill", "nightly-fanout", "nightly-org"}
    for name, entrypoint, limit in (("nightly", "circleci_analytics.flows.nightly:nightly", 1),
                                    ("backfill", "circleci_analytics.flows.backfill:backfill", 1),
                                    ("nightly-fanout", "circleci_analytics.flows.fanout:nightly_fanout", 1),
                                    ("nightly-org", "circleci_analytics.flows.fanout:nightly_org", 4)):  # fmt: skip
        d = yaml_deployments[name]
        assert d["entrypoint"] == entrypoint and d["global_concurrency_limit"]["limit"] == limit
        assert d["parameters"] == {"settings": {"token_secret_block": "circleci-token"}}
    # One nightly schedule is active: the single-process one (the fan-out's is there, off).
    assert [(s["schedule"]["cron"], s["active"]) for s in yaml_deployments["nightly"]["schedules"]] == [
        ("0 3 * * *", True)
    ]
    assert [s["active"] for s in yaml_deployments["nightly-fanout"]["schedules"]] == [False]
    ticks = Counter(r["expected_start_time"] for r in runs)
    assert ticks and max(ticks.values()) == 1, ticks
    # ... with the settings as parameters, and the token nowhere in Prefect's database.
    params = done[0]["parameters"]["settings"]
    assert params["lake_root"] == str(data / "lake") and params["orgs"][0]["id"] == sim.org.id
    assert "token" not in params and TOKEN not in json.dumps(params)
    for f in (data / "prefect").glob("prefect.db*"):
        assert TOKEN.encode() not in f.read_bytes(), f
    assert TOKEN not in log.read_text()
