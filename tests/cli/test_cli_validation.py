"""Bad input is refused before any work: exit 2, one line naming the problem, within seconds,
and nothing written (no lake, no warehouse, no Prefect home). Unexpected errors are one line
(exit 1) unless --debug asks for the traceback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import run_main
from test_cli_demo import console_script

TOKEN = "CCIPAT_validation_test_token_77aa"
ORG = ["--org", "gh/acme=1c3f0000-0000-4000-8000-000000000000"]


def output_flags(root: Path, *, serve: bool = False, **changes: str) -> list[str]:
    """Every output under `root/out` (which must never appear), as flags."""
    outputs = {"lake_root": str(root / "out" / "lake"), "warehouse_path": str(root / "out" / "warehouse.duckdb"),
               "dashboard_dir": str(root / "out" / "dashboard")}  # fmt: skip
    if serve:
        outputs["prefect_dir"] = str(root / "out" / "prefect")
    flags = []
    for name, value in {**outputs, **changes}.items():
        flags += ["--" + name.replace("_", "-"), value]
    return flags


@pytest.fixture
def refused(clean_env, monkeypatch, capsys):
    """`refused(*args) -> stderr`: asserts exit 2, one line, no traceback, seconds, nothing written."""
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)

    def check(*args: str) -> str:
        before = set(clean_env.rglob("*"))
        started = time.perf_counter()
        code, out, err = run_main(list(args), monkeypatch, capsys)
        elapsed = time.perf_counter() - started
        assert code == 2, out + err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err, err
        assert elapsed < 5, f"{elapsed:.1f} s"
        assert set(clean_env.rglob("*")) == before  # nothing written: no lake, warehouse, dashboard or Prefect home
        assert TOKEN not in out + err
        return err

    return check


# -- settings bounds ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--initial-lookback-days", "-5"],
            "initial_lookback_days: Input should be greater than or equal to 1 (got -5)",
        ),
        (["--lookback-days", "0"], "initial_lookback_days: Input should be greater than or equal to 1 (got 0)"),
        (["--initial-lookback-days", "400"], "initial_lookback_days: the usage export keeps 365 days"),
        (["--tests-lookback-days", "0"], "tests_lookback_days: Input should be greater than or equal to 1"),
        (["--price-per-credit", "-1"], "price_per_credit: Input should be greater than 0"),
        (["--price-per-credit", "0"], "price_per_credit: Input should be greater than 0"),
        (["--rightsizing-headroom", "0"], "rightsizing_headroom: Input should be greater than 0"),
        (["--rightsizing-headroom", "1.5"], "rightsizing_headroom: Input should be less than or equal to 1"),
        (["--max-concurrency", "0"], "max_concurrency: Input should be greater than or equal to 1"),
        (["--overlap-days", "-1"], "overlap_days: Input should be greater than or equal to 0"),
        (["--export-poll-seconds", "0"], "export_poll_seconds: Input should be greater than 0"),
        (["--api-base-url", "circleci.com/api/v2"], "api_base_url:"),
        (["--token-secret-block", "My Token"], "token_secret_block: not a Prefect block name"),
        (["--publish-uri", "data/published"], "publish_uri: not an s3:// URI"),
        (["--publish-uri", "s3://"], "publish_uri: not an s3:// URI"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_run_refuses_out_of_bounds_settings(refused, clean_env, flags, message) -> None:
    err = refused("run", *ORG, *output_flags(clean_env), *flags)
    assert message in err


@pytest.mark.parametrize("flag", ["--lake-root", "--publish-uri"])
def test_credentials_in_an_object_store_uri_are_refused_without_showing_them(refused, clean_env, flag) -> None:
    # Settings are logged, shown in run summaries and stored by Prefect: no secret may sit in one.
    uri = "s3://bucket/ci?region=eu-west-1&secret_key=CANARY-SECRET-KEY"
    err = refused("run", *ORG, *output_flags(clean_env), flag, uri)
    assert "holds credentials in its query string" in err
    assert "CANARY" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--schedule-cron", "61 * * * *"], "schedule_cron: not a cron expression"),
        (["--cron", "every night"], "schedule_cron: not a cron expression"),
        (["--timezone", "Mars/Olympus"], "timezone: not an IANA time zone"),
        (["--prefect-port", "70000"], "prefect_port: Input should be less than or equal to 65535"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_serve_refuses_a_bad_schedule(refused, clean_env, flags, message) -> None:
    assert message in refused("serve", *ORG, *output_flags(clean_env, serve=True), *flags)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--org-id", "acme", "--org-slug", "gh/acme"], "orgs[0].id: not a UUID"),
        (["--org-id", "1c3f0000-0000-4000-8000-000000000000", "--org-slug", "gh/../me"], "orgs[0].slug: not an org slug"),
        (["--org", "gh/acme=1c3f0000-0000-4000-8000-000000000000", "--org-id", "1c3f0000-0000-4000-8000-000000000001"],
         "either as orgs (--org, [[orgs]]) or as org_id/org_slug, not both"),
    ],
    ids=["org-id", "org-slug", "both-forms"],
)  # fmt: skip
def test_backfill_refuses_a_bad_org(refused, clean_env, flags, message) -> None:
    err = refused("backfill", "--start", "2026-01-01", "--end", "2026-01-31", *flags, *output_flags(clean_env))
    assert message in err


# -- the owners file ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.toml", None, "owners file missing.toml: cannot read it"),
        ("o.toml", '[[teams]]\nname = "web"\nprojects = "gh/acme/*"\n', "teams[0].projects: Input should be a valid list"),
        ("o.toml", "[[teams]\n", "owners file o.toml: invalid TOML"),
        ("o.yaml", "teams:\n  - name: web\n    project: [gh/acme/*]\n", "teams[0].project: Extra inputs are not permitted"),
        ("o.yaml", "teams:\n  - name: unassigned\n", "'unassigned' is the team of what no rule matches"),
        ("o.yaml", "teams:\n  - name: web\n  - name: web\n", "team 'web' is listed twice"),
        ("o.yaml", "teams:\n  - name: web\n    jobs: ['']\n", "teams[0].jobs: empty glob"),
        ("o.yaml", "owners: []\n", "expected only a list of teams"),
    ],
    ids=["missing", "not-a-list", "bad-toml", "unknown-key", "reserved-name", "twice", "empty-glob", "no-teams"],
)  # fmt: skip
def test_a_bad_owners_file_is_named(refused, clean_env, name, text, message) -> None:
    if text is not None:
        (clean_env / name).write_text(text)
    err = refused("run", *ORG, *output_flags(clean_env), "--owners-file", name)
    assert message in err, err


def test_teams_in_the_toml_and_an_owners_file_is_refused(refused, clean_env) -> None:
    (clean_env / "o.yaml").write_text("teams:\n  - name: web\n")
    cfg = clean_env / "c.toml"
    cfg.write_text('owners_file = "o.yaml"\n\n[[teams]]\nname = "api"\n')
    assert "either as [[teams]] or in owners_file, not both" in refused("run", *ORG, "--config", str(cfg),
                                                                         *output_flags(clean_env))  # fmt: skip


# -- the TOML file -----------------------------------------------------------------------------
def test_malformed_toml_names_the_file_and_line(refused, clean_env) -> None:
    cfg = clean_env / "bad.toml"
    cfg.write_text('lake_root = "x"\nprice_per_credit = = 1\n')
    err = refused("run", "--config", str(cfg))
    assert f"{cfg}: invalid TOML:" in err and "line 2" in err


def test_unknown_toml_key_is_named(refused, clean_env) -> None:
    cfg = clean_env / "c.toml"
    cfg.write_text("lookback_days = 5\n")
    assert "unknown setting 'lookback_days'" in refused("run", *ORG, "--config", str(cfg))


def test_an_invalid_value_in_toml_is_named(refused, clean_env) -> None:
    cfg = clean_env / "c.toml"
    cfg.write_text('tests_lookback_days = 0\n[[orgs]]\nid = "1c3f0000-0000-4000-8000-000000000000"\nslug = "gh/acme"\n')
    assert "tests_lookback_days: Input should be greater than or equal to 1" in refused("run", "--config", str(cfg))


# -- output paths ------------------------------------------------------------------------------
def _read_only_dir(root: Path) -> Path:
    """A folder this user cannot write: a read-only mode, or for root (who ignores modes) /proc/sys."""
    if os.geteuid() == 0:
        return Path("/proc/sys")
    ro = root / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def test_lake_root_that_is_a_file(refused, clean_env) -> None:
    (clean_env / "lake-file").write_text("not a folder")
    err = refused("run", *ORG, *output_flags(clean_env, lake_root=str(clean_env / "lake-file")))
    assert f"lake_root {clean_env / 'lake-file'} is a file, not a folder" in err


def test_lake_root_that_cannot_be_written(refused, clean_env) -> None:
    lake = _read_only_dir(clean_env) / "circleci-lake"
    err = refused("run", *ORG, *output_flags(clean_env, lake_root=str(lake)))
    assert f"lake_root {lake}" in err and "not writable" in err


def test_warehouse_path_that_is_a_folder(refused, clean_env) -> None:
    (clean_env / "wh").mkdir()
    err = refused("run", *ORG, *output_flags(clean_env, warehouse_path=str(clean_env / "wh")))
    assert f"warehouse_path {clean_env / 'wh'} is a folder" in err


def test_warehouse_in_a_folder_that_cannot_be_written(refused, clean_env) -> None:
    warehouse = _read_only_dir(clean_env) / "warehouse.duckdb"
    err = refused("build", "--lake-root", str(clean_env), "--warehouse-path", str(warehouse))
    assert "warehouse_path's folder" in err and "not writable" in err


def test_dashboard_dir_that_is_a_file(refused, clean_env) -> None:
    (clean_env / "dash").write_text("x")
    err = refused("run", *ORG, *output_flags(clean_env, dashboard_dir=str(clean_env / "dash")))
    assert "dashboard_dir" in err and "is a file" in err


# -- before Prefect starts, as a real process --------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", *ORG, "--lookback-days", "-5"], "initial_lookback_days"),
        (["run", *ORG, "--price-per-credit", "-1"], "price_per_credit"),
        (["serve", *ORG, "--cron", "* * *"], "schedule_cron"),
    ],
    ids=["lookback", "price", "cron"],
)
def test_refused_within_seconds_before_prefect_starts(tmp_path, args, message) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    env.update(CIRCLECI_TOKEN=TOKEN, PREFECT_HOME=str(tmp_path / "prefect-home"))
    started = time.perf_counter()
    proc = subprocess.run([*console_script(), *args, *output_flags(tmp_path, serve=args[0] == "serve")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    elapsed = time.perf_counter() - started
    assert proc.returncode == 2 and message in proc.stderr, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout
    # A cold interpreter takes 3-9 s here (20 s on a machine at load 15); the old code ran 72 s
    # (extracting) before failing. That no work started is the empty folder below.
    assert elapsed < 45, f"{elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []  # no lake, no warehouse, no Prefect home


# -- unexpected errors ---------------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise RuntimeError("disk on fire\nsecond line")


def test_an_unexpected_error_is_one_line_and_exit_1(clean_env, monkeypatch, capsys) -> None:
    import circleci_analytics.warehouse as warehouse

    monkeypatch.setattr(warehouse, "build_warehouse", _boom)
    code, out, err = run_main(["build", "--lake-root", str(clean_env)], monkeypatch, capsys)
    assert code == 1
    assert err.strip() == ("Error: unexpected RuntimeError: disk on fire (run with --debug for the traceback)")


def test_debug_shows_the_traceback(clean_env, monkeypatch, capsys) -> None:
    import circleci_analytics.warehouse as warehouse

    monkeypatch.setattr(warehouse, "build_warehouse", _boom)
    code, _, err = run_main(["--debug", "build", "--lake-root", str(clean_env)], monkeypatch, capsys)
    assert code == 1 and "Traceback (most recent call last)" in err and "RuntimeError: disk on fire" in err
