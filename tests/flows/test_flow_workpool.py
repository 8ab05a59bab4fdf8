"""The project's prefect.yaml on a real Prefect server with a process work pool and a worker:
`prefect deploy --all`, then the `nightly-fanout` deployment runs one `nightly-org` run per org
(two orgs of the simulator, and one the token cannot see, whose run fails) on the worker,
against an s3:// lake on moto's server, builds once and publishes the warehouse and dashboard
beside the lake. The published warehouse holds the same rows as a single-process `nightly` of
the same simulator into a local lake. Timings of each stage are printed (server start, deploy,
runs, total)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import duckdb
import httpx
import pytest
from flow_helpers import NO_LIMITS, TOKEN, warehouse_diffs

from circleci_analytics.serve import LocalPrefectServer
from circleci_analytics.simulator import OrgSpec, SimConfig, Simulator
from circleci_analytics.simulator.server import running_server
from circleci_analytics.warehouse.publish import POINTER, default_publish_uri, fetch_warehouse, read_pointer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "workpool-e2e"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
#: An org the token cannot see (a typo in the config): its run fails, the others are built.
MISSING_ORG = ("1c3f0000-0000-4000-8000-00000000dead", "gh/nobody", ["gh/nobody/nothing"])


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_config(path: Path, url: str, lake_root: str, data: Path, sim: Simulator) -> None:
    """The worker's circleci-analytics.toml: both orgs, the simulator, an s3:// lake."""
    values = {"api_base_url": url, "lake_root": lake_root, "warehouse_path": str(data / "warehouse.duckdb"),
              "dashboard_dir": str(data / "dashboard"), "initial_lookback_days": 3, "tests_lookback_days": 2,
              "export_poll_seconds": 0.2, "rate_limits": NO_LIMITS, "lease_wait_seconds": 120}  # fmt: skip
    lines = [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    lines.append(f"now = {sim.history.now.isoformat()}")
    orgs = [(org.id, org.slug, [p.slug for p in sim.projects_of(org)]) for org in sim.orgs]
    for org_id, slug, projects in [*orgs, MISSING_ORG]:
        lines += ["[[orgs]]", f'id = "{org_id}"', f'slug = "{slug}"', f"projects = {_toml_value(projects)}"]
    path.write_text("\n".join(lines) + "\n")


def run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, " ".join(args) + "\n" + done.stdout[-3000:] + done.stderr[-3000:]


def trigger(api: str, deployment: str, parameters: dict[str, Any]) -> str:
    dep = httpx.get(f"{api}/deployments/name/{deployment}", timeout=10)
    assert dep.status_code == 200, dep.text
    made = httpx.post(f"{api}/deployments/{dep.json()['id']}/create_flow_run", json={"parameters": parameters},
                      timeout=10)  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()["id"]


def wait_done(api: str, run_id: str, timeout: float, worker: subprocess.Popen, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if flow_run["state"]["type"] in TERMINAL:
            return flow_run
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"run {run_id} not done after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def save_secret(api: str, token: str) -> None:
    """The token as the `circleci-token` Secret block (what the docs' one-liner does)."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api}):
        Secret(value=token).save("circleci-token", overwrite=True)


def runs_of(api: str, flow_name: str) -> list[dict[str, Any]]:
    query = {"flows": {"name": {"any_": [flow_name]}}, "sort": "START_TIME_ASC"}
    return httpx.post(f"{api}/flow_runs/filter", json=query, timeout=10).json()


def test_fanout_over_a_process_work_pool_publishes_what_a_single_nightly_builds(tmp_path: Path, s3_endpoint: str,
                                                                                monkeypatch) -> None:  # fmt: skip
    timings: dict[str, float] = {}
    started = time.perf_counter()
    sim = Simulator(SimConfig(seed=7, preset="tiny", token=TOKEN, time_scale=3600.0, export_processing_seconds=0.2,
                              extra_orgs=(OrgSpec("acme-labs"),)))  # fmt: skip
    home, data = tmp_path / "worker-home", tmp_path / "fanout"
    home.mkdir()
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1", **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})  # fmt: skip
    s3.create_bucket(Bucket=BUCKET)
    lake_root = f"s3://{BUCKET}/ci/lake?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    publish_uri = default_publish_uri(lake_root)
    assert publish_uri is not None and publish_uri.startswith(f"s3://{BUCKET}/ci/published?")

    # Every process below starts clean: no Prefect or CircleCI settings, no token anywhere but
    # the Secret block.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_", "AWS_"))}
    env.update(AWS, PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_WORKER_QUERY_SECONDS="1", CIRCLECI_ANALYTICS_HOME=str(home))  # fmt: skip
    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PREFECT_UI_ENABLED", "false")
    for key, value in AWS.items():
        monkeypatch.setenv(key, value)

    server = LocalPrefectServer(tmp_path / "prefect", echo=lambda _: None)
    worker = None
    log = tmp_path / "worker.log"
    bin_dir = Path(sys.executable).parent
    with running_server(sim) as url:
        write_config(home / "circleci-analytics.toml", url, lake_root, data, sim)
        try:
            t0 = time.perf_counter()
            api = server.start()
            timings["server start"] = time.perf_counter() - t0
            env.update(server.environment())

            # The documented commands: a process work pool, the token as a Secret block, `prefect
            # deploy --all`, a worker. The worker starts while the deployments are being made.
            t0 = time.perf_counter()
            prefect = str(bin_dir / "prefect")
            pool = subprocess.Popen([prefect, "work-pool", "create", "circleci-analytics", "--type", "process"],
                                    env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)  # fmt: skip
            save_secret(api, TOKEN)
            assert pool.wait(timeout=180) == 0, pool.stdout.read()
            with open(log, "wb") as out:
                worker = subprocess.Popen([prefect, "worker", "start", "--pool", "circleci-analytics", "--limit", "5"],
                                          env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)  # fmt: skip
            run([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(ROOT / "prefect.yaml")], env, home)
            timings["work pool + secret + deploy"] = time.perf_counter() - t0
            deployments = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
            assert set(deployments) == {"nightly", "nightly-fanout", "nightly-org", "backfill"}

            # The fan-out, and at the same time a single-process nightly of the same simulator into
            # a local lake (no publishing), both on the worker.
            baseline = tmp_path / "single"
            t0 = time.perf_counter()
            fanout_id = trigger(api, "circleci-nightly-fanout/nightly-fanout", {"poll_seconds": 0.5})
            single_id = trigger(api, "circleci-nightly/nightly", {"settings": {
                "token_secret_block": "circleci-token", "lake_root": str(baseline / "lake"),
                "warehouse_path": str(baseline / "warehouse.duckdb"), "render_dashboard": False}})  # fmt: skip
            fanout = wait_done(api, fanout_id, 300, worker, log)
            timings["fan-out run"] = time.perf_counter() - t0
            single = wait_done(api, single_id, 300, worker, log)
            timings["both runs"] = time.perf_counter() - t0
            # Both runs end Partially Completed: the missing org failed, the others were built.
            for done in (fanout, single):
                assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Partially Completed"), done
            org_runs = runs_of(api, "circleci-nightly-org")
            summary = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [
                "circleci-nightly-fanout-summary"]}}}, timeout=10).json()[0]["data"]  # fmt: skip
        finally:
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, 9)
                    worker.wait()
            server.stop()
    timings["total"] = time.perf_counter() - started
    print("\nwork-pool e2e timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print("flow runs (Prefect's run times): " + ", ".join(f"{r['name']} {r['total_run_time']:.1f} s"
                                                        for r in [fanout, single, *org_runs]))  # fmt: skip
    print("fan-out " + next(line for line in summary.splitlines() if line.startswith("- step times")).lstrip("- "))
    assert "org gh/nobody" in summary and "org gh/nobody failed" in fanout["state"]["message"]  # the failed run

    # One nightly-org run per org, each with only its org, all on the worker, linked to the fan-out.
    by_org = {r["parameters"]["settings"]["orgs"][0]["id"]: r for r in org_runs}
    assert sorted(by_org) == sorted([o.id for o in sim.orgs] + [MISSING_ORG[0]])
    assert all(len(r["parameters"]["settings"]["orgs"]) == 1 and r["parent_task_run_id"] for r in org_runs)
    assert {org_id: r["state"]["type"] for org_id, r in by_org.items()} == {
        **{o.id: "COMPLETED" for o in sim.orgs}, MISSING_ORG[0]: "FAILED"}  # fmt: skip

    # What the worker built is published beside the lake: the pointer names a complete build.
    pointer = read_pointer(publish_uri)
    published = fetch_warehouse(publish_uri, tmp_path / "fetched.duckdb")
    assert published == pointer
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/published/")["Contents"]}
    assert {f"ci/published/{POINTER}", "ci/published/index.html", f"ci/published/{pointer.warehouse}",
            f"ci/published/{pointer.dashboard}"} <= keys  # fmt: skip
    con = duckdb.connect(str(tmp_path / "fetched.duckdb"), read_only=True)
    try:
        per_org = dict(con.execute("select org_id, count(*) from fct_job_runs group by org_id").fetchall())
    finally:
        con.close()
    assert set(per_org) == {o.id for o in sim.orgs} and all(per_org.values()), per_org
    # Both orgs' rows, every model, equal those of one nightly of both orgs.
    assert warehouse_diffs(tmp_path / "fetched.duckdb", baseline / "warehouse.duckdb") == {}
    # The token only ever lived in the Secret block (stored encrypted), never in plain text.
    for f in (tmp_path / "prefect").glob("prefect.db*"):
        assert TOKEN.encode() not in f.read_bytes(), f
    assert TOKEN not in log.read_text()
