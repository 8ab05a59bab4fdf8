"""`circleci-analytics alerts`: evaluate the rules on a warehouse, send (or, with --dry-run,
print) what is new, against a real webhook receiver."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from circleci_analytics.cli import cli

FLAKY = [("gh/o/web", "unit", "tests.A", "test_a", 2, "2026-06-09 10:00:00+00", True, 1.5)]


def write_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'warehouse_path = "{tmp_path / "warehouse.duckdb"}"\nlake_root = "{tmp_path / "lake"}"\n'
                   f'[alerts]\nrules = ["new_flaky_test"]\ndestinations = ["{url}"]\n')  # fmt: skip
    (tmp_path / "lake").mkdir()
    return cfg


def test_dry_run_prints_the_message_and_sends_nothing(tmp_path, alert_marts, webhook_receiver, monkeypatch) -> None:
    monkeypatch.delenv("CIRCLECI_ANALYTICS_CONFIG", raising=False)
    alert_marts(fct_flaky_tests=FLAKY)
    url = webhook_receiver.url("cli/Zq8Wx3Lp0Rt6")
    cfg = write_config(tmp_path, url)
    webhook_receiver.take()
    out = CliRunner().invoke(cli, ["alerts", "--config", str(cfg), "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "would send to json#" in out.output and "New flaky tests (1)" in out.output
    assert "- test_a (tests.A, job unit) in gh/o/web is flaky: 2 flaked failure(s)" in out.output
    assert webhook_receiver.take() == [] and "Zq8Wx3Lp0Rt6" not in out.output
    sent = CliRunner().invoke(cli, ["alerts", "--config", str(cfg)])
    assert sent.exit_code == 0 and "messages delivered: 1" in sent.output
    assert [body["title"] for _, body in webhook_receiver.take()] == ["circleci-analytics: New flaky tests (1)"]
    again = CliRunner().invoke(cli, ["alerts", "--config", str(cfg), "--dry-run"])
    assert "would send" not in again.output  # already delivered


def test_a_failed_delivery_exits_1(tmp_path, alert_marts, webhook_receiver, monkeypatch) -> None:
    monkeypatch.delenv("CIRCLECI_ANALYTICS_CONFIG", raising=False)
    alert_marts(fct_flaky_tests=FLAKY)
    cfg = write_config(tmp_path, webhook_receiver.url("cli-fail"))
    webhook_receiver.status = 500
    try:
        out = CliRunner().invoke(cli, ["alerts", "--config", str(cfg)])
    finally:
        webhook_receiver.status = 200
    assert out.exit_code == 1 and "failed (retried next night): 1" in out.output


def test_missing_warehouse_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CIRCLECI_ANALYTICS_CONFIG", raising=False)
    out = CliRunner().invoke(cli, ["alerts", "--warehouse-path", str(tmp_path / "none.duckdb"), "--dry-run"])
    assert out.exit_code == 2 and "warehouse not found" in out.output
