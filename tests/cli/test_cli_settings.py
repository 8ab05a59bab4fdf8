"""Settings precedence: command-line flags > environment > TOML file > defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_helpers import run_main

from circleci_analytics.settings import DEFAULT_CONFIG_FILE, load_settings

TOKEN = "CCIPAT_settings_test_token_5e1f"


def write_toml(path: Path, **values: str) -> Path:
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return path


def test_defaults(clean_env) -> None:
    s = load_settings()
    assert s.lake_root == "data/lake" and s.warehouse_path == "data/warehouse.duckdb"
    assert s.token is None and s.projects == [] and s.price_per_credit == 0.0006


def test_toml_then_env_then_flags(clean_env, monkeypatch) -> None:
    cfg = clean_env / "settings.toml"
    cfg.write_text('lake_root = "toml/lake"\nwarehouse_path = "toml/w.duckdb"\nprice_per_credit = 0.001\n'
                   'projects = ["gh/acme/web", "gh/acme/api"]\n')  # fmt: skip
    s = load_settings(cfg)
    assert (s.lake_root, s.warehouse_path, s.price_per_credit) == ("toml/lake", "toml/w.duckdb", 0.001)
    assert s.projects == ["gh/acme/web", "gh/acme/api"]

    monkeypatch.setenv("CIRCLECI_ANALYTICS_WAREHOUSE_PATH", "env/w.duckdb")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_PROJECTS", '["gh/acme/env"]')
    s = load_settings(cfg)
    assert (s.lake_root, s.warehouse_path, s.projects) == ("toml/lake", "env/w.duckdb", ["gh/acme/env"])

    s = load_settings(cfg, warehouse_path="flag/w.duckdb", lake_root=None, projects=None)
    assert (s.lake_root, s.warehouse_path, s.projects) == ("toml/lake", "flag/w.duckdb", ["gh/acme/env"])


def test_config_file_from_env_and_from_the_working_directory(clean_env, monkeypatch) -> None:
    write_toml(clean_env / DEFAULT_CONFIG_FILE, lake_root="cwd/lake")
    assert load_settings().lake_root == "cwd/lake"
    other = write_toml(clean_env / "other.toml", lake_root="env-file/lake")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_CONFIG", str(other))
    assert load_settings().lake_root == "env-file/lake"
    explicit = write_toml(clean_env / "explicit.toml", lake_root="explicit/lake")
    assert load_settings(explicit).lake_root == "explicit/lake"
    assert "_CIRCLECI_ANALYTICS_TOML" not in os.environ  # the internal hand-over is cleaned up


def test_token_from_env_is_secret(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    s = load_settings()
    assert s.token is not None and s.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in s.model_dump_json()


def test_missing_config_file_is_an_error(clean_env) -> None:
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_settings(clean_env / "missing.toml")


@pytest.mark.parametrize(
    ("env", "flag", "expected"),
    [(False, False, "toml.duckdb"), (True, False, "env.duckdb"), (True, True, "flag.duckdb")],
    ids=["toml", "env-over-toml", "flag-over-env"],
)
def test_precedence_through_the_cli(clean_env, monkeypatch, capsys, env, flag, expected) -> None:
    # `sql` names the warehouse it looked for, which shows which setting won.
    cfg = write_toml(clean_env / "c.toml", warehouse_path=str(clean_env / "toml.duckdb"))
    if env:
        monkeypatch.setenv("CIRCLECI_ANALYTICS_WAREHOUSE_PATH", str(clean_env / "env.duckdb"))
    args = ["sql", "--config", str(cfg), "select 1"]
    if flag:
        args[1:1] = ["--warehouse", str(clean_env / "flag.duckdb")]
    code, _, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and f"warehouse not found: {clean_env / expected}" in err


def test_serve_passes_every_pipeline_setting_to_the_deployment(clean_env, monkeypatch, capsys) -> None:
    from circleci_analytics.flows import nightly

    cfg = clean_env / "serve.toml"
    cfg.write_text('org_id = "1c3f0000-0000-4000-8000-000000000000"\norg_slug = "gh/acme"\nprojects = ["gh/acme/web"]\n'
                   'lake_root = "s3://bucket/lake"\ntests_lookback_days = 5\noverlap_days = 4\nmax_concurrency = 3\n'
                   'export_poll_seconds = 400.0\njob_include = ["test*"]\njob_exclude = ["deploy"]\n'
                   'schedule_cron = "30 2 * * *"\ntimezone = "Europe/Berlin"\ninitial_lookback_days = 60\n')  # fmt: skip
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    served = {}
    monkeypatch.setattr(nightly, "serve", lambda **kwargs: served.update(kwargs))
    code, out, err = run_main(["serve", "--config", str(cfg)], monkeypatch, capsys)
    assert code == 0, err
    params = served["parameters"]
    assert (served["schedule"].cron, served["schedule"].timezone) == ("30 2 * * *", "Europe/Berlin")
    assert params["initial_lookback_days"] == 60
    assert params["orgs"] == [{"id": "1c3f0000-0000-4000-8000-000000000000", "slug": "gh/acme", "projects": ["gh/acme/web"]}]
    assert params["lake_root"] == "s3://bucket/lake"
    assert (params["tests_lookback_days"], params["overlap_days"], params["max_concurrency"]) == (5, 4, 3)
    assert params["export_poll_seconds"] == 400.0
    assert (params["job_include"], params["job_exclude"]) == (["test*"], ["deploy"])
    assert TOKEN not in repr(served) + out + err  # the token is never a flow parameter
