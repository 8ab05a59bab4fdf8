"""Commands end to end in-process (`main()`, as the console script runs them): outputs,
exit codes (0 ok, 1 pipeline failure, 2 user error) and clear messages."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from cli_helpers import SQL_ROWS, run_main

from circleci_analytics.simulator import DEFAULT_TOKEN

ORG = ["--org-id", "1c3f0000-0000-4000-8000-000000000000", "--org-slug", "gh/acme"]


@pytest.fixture
def cli(clean_env, monkeypatch, capsys):
    """`cli(*args)` -> (exit code, stdout, stderr), in a clean environment."""
    return lambda *args: run_main(list(args), monkeypatch, capsys)


def test_version_and_help_exit_zero(cli) -> None:
    code, out, _ = cli("--version")
    assert code == 0 and "circleci-analytics" in out
    code, out, _ = cli("--help")
    assert code == 0 and "demo" in out and "sql" in out


def test_unknown_command_is_a_usage_error(cli) -> None:
    code, _, err = cli("frobnicate")
    assert code == 2 and "frobnicate" in err


# -- simulator ---------------------------------------------------------------------------------
def test_simulator_token(cli) -> None:
    assert cli("simulator", "token")[:2] == (0, DEFAULT_TOKEN + "\n")


def test_simulator_truth_writes_parquet_and_metrics(cli, tmp_path) -> None:
    out = tmp_path / "truth"
    code, stdout, err = cli("simulator", "truth", "--scale", "tiny", "--seed", "7",
                            "--now", "2026-06-01T12:00:00Z", "--out", str(out))  # fmt: skip
    assert code == 0, err
    counts = {}
    for line in stdout.splitlines():
        name, sep, n = line.partition(":")
        if sep and n.strip().isdigit():
            counts[name.strip()] = int(n)
    for name in ("job_runs", "test_runs", "workflow_runs"):
        assert pq.read_metadata(out / f"{name}.parquet").num_rows == counts[name] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["org"]["slug"] == "gh/acme-robotics"
    assert metrics["window"]["end"].startswith("2026-06-01")
    assert len(metrics["recoveries"]) == counts["recoveries"] > 0
    assert len(metrics["flaky_tests"]) == counts["flaky_tests"] > 0


def test_simulator_truth_rejects_a_bad_now(cli, tmp_path) -> None:
    code, _, err = cli("simulator", "truth", "--scale", "tiny", "--now", "yesterday", "--out", str(tmp_path))
    assert code == 2 and "ISO 8601" in err


# -- sql ---------------------------------------------------------------------------------------
QUERY = "select project_slug, credits, day from fct_demo order by credits desc"


def test_sql_table_format(cli, small_warehouse) -> None:
    code, out, err = cli("sql", "--warehouse", str(small_warehouse), QUERY)
    assert code == 0, err
    assert "project_slug" in out and "gh/acme/web" in out and "12.50" in out
    assert out.index("gh/acme/web") < out.index("gh/acme/api")  # ordered as asked


def test_sql_csv_format(cli, small_warehouse) -> None:
    code, out, err = cli("sql", "--warehouse", str(small_warehouse), "--format", "csv", QUERY)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["project_slug"], Decimal(r["credits"]), r["day"]) for r in rows] == [
        (slug, credits, day.isoformat()) for slug, credits, day in sorted(SQL_ROWS, key=lambda r: -r[1])
    ]


def test_sql_json_format(cli, small_warehouse) -> None:
    code, out, err = cli("sql", "--warehouse", str(small_warehouse), "--format", "json", QUERY)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["project_slug"] for r in rows] == ["gh/acme/web", "gh/acme/api", 'circleci/O/P, "quoted"']
    assert Decimal(str(rows[0]["credits"])) == Decimal("12.50")


def test_sql_warehouse_from_the_environment(cli, small_warehouse, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_ANALYTICS_WAREHOUSE_PATH", str(small_warehouse))
    code, out, _ = cli("sql", "--format", "csv", "select count(*) as n from fct_demo")
    assert (code, out) == (0, "n\n3\n")


def test_sql_bad_query_is_a_clear_user_error(cli, small_warehouse) -> None:
    code, out, err = cli("sql", "--warehouse", str(small_warehouse), "select * from no_such_table")
    assert code == 2 and "query failed" in err and "no_such_table" in err
    assert "Traceback" not in out + err


def test_sql_missing_warehouse_exit_2(cli, tmp_path) -> None:
    missing = tmp_path / "nope" / "warehouse.duckdb"
    code, _, err = cli("sql", "--warehouse", str(missing), "select 1")
    assert code == 2
    assert f"warehouse not found: {missing}" in err and "circleci-analytics demo" in err
    assert not missing.exists()  # not created by the attempt


# -- build and dashboard -----------------------------------------------------------------------
def test_build_missing_lake_is_a_user_error(cli, tmp_path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    code, _, err = cli("build", "--lake", str(tmp_path / "no-lake"), "--warehouse", str(warehouse))
    assert code == 2 and "lake not found" in err and "no-lake" in err
    assert not warehouse.exists()


def test_dashboard_missing_warehouse_exit_2(cli, tmp_path) -> None:
    code, _, err = cli("dashboard", "--warehouse", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "d"))
    assert code == 2 and "warehouse not found" in err


# -- run / backfill / serve: refuse early without a token or an org ---------------------------
PIPELINE_COMMANDS = [["run"], ["backfill", "--start", "2026-01-01", "--end", "2026-01-31"], ["serve"]]


@pytest.mark.parametrize("command", PIPELINE_COMMANDS, ids=lambda c: c[0])
def test_pipeline_commands_without_a_token_exit_2(cli, monkeypatch, command) -> None:
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORG_ID", "1c3f0000-0000-4000-8000-000000000000")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORG_SLUG", "gh/acme")
    code, out, err = cli(*command)
    assert code == 2
    assert "CIRCLECI_TOKEN" in err and "Traceback" not in out + err


@pytest.mark.parametrize("command", PIPELINE_COMMANDS, ids=lambda c: c[0])
def test_pipeline_commands_without_an_org_id_exit_2(cli, monkeypatch, command) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", "CCIPAT_cli_test_token_abc123")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORG_SLUG", "gh/acme")
    code, out, err = cli(*command)
    assert code == 2
    assert "--org-id" in err and "CIRCLECI_ANALYTICS_ORG_ID" in err
    assert "CCIPAT_cli_test_token_abc123" not in out + err


def test_backfill_requires_dates(cli, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", "t")
    code, _, err = cli("backfill", *ORG, "--start", "2026-01-01")
    assert code == 2 and "--end" in err


def test_missing_config_file_exit_2(cli, tmp_path) -> None:
    code, _, err = cli("sql", "--config", str(tmp_path / "missing.toml"), "select 1")
    assert code == 2 and "config file not found" in err


def test_invalid_config_key_exit_2(cli, tmp_path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('warehouse_pth = "x.duckdb"\n')
    code, out, err = cli("sql", "--config", str(cfg), "select 1")
    assert code == 2 and f"{cfg}: unknown setting 'warehouse_pth' (did you mean 'warehouse_path'?)" in err
