"""Settings: one name per setting everywhere, precedence flags > environment > TOML file >
defaults, the organisations (several, or the one-org shorthand), and a token that never
shows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, get_origin

import pytest
from cli_helpers import run_main
from pydantic import SecretStr, ValidationError, field_validator

from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE
from circleci_analytics.settings import (
    DEFAULT_CONFIG_FILE,
    AlertSettings,
    Settings,
    SettingsError,
    describe_validation_error,
    load_settings,
)
from circleci_analytics.teams import Team

TOKEN = "CCIPAT_settings_test_token_5e1f"
ORG_A = {"id": "1c3f0000-0000-4000-8000-000000000001", "slug": "gh/acme"}
ORG_B = {"id": "1c3f0000-0000-4000-8000-000000000002", "slug": "circleci/9d2e"}


def write_toml(path: Path, text: str = "", **values: str) -> Path:
    path.write_text(text + "".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return path


def orgs_toml(*orgs: dict[str, Any]) -> str:
    out = ""
    for o in orgs:
        out += f'[[orgs]]\nid = "{o["id"]}"\nslug = "{o["slug"]}"\n'
        if "projects" in o:
            out += "projects = [" + ", ".join(f'"{p}"' for p in o["projects"]) + "]\n"
    return out


def org_list(s: Settings) -> list[tuple[str, str, list[str]]]:
    return [(o.id, o.slug, o.projects) for o in s.orgs]


# -- defaults and precedence -------------------------------------------------------------------
def test_defaults(clean_env) -> None:
    s = load_settings()
    assert s.lake_root == "data/lake" and s.warehouse_path == "data/warehouse.duckdb"
    assert s.token is None and s.orgs == [] and s.price_per_credit == Decimal("0.0006")


def test_toml_then_env_then_flags(clean_env, monkeypatch) -> None:
    cfg = clean_env / "settings.toml"
    cfg.write_text(f'org_id = "{ORG_A["id"]}"\norg_slug = "gh/acme"\nlake_root = "toml/lake"\n'
                   'warehouse_path = "toml/w.duckdb"\nprice_per_credit = 0.001\n'
                   'projects = ["gh/acme/web", "gh/acme/api"]\n')  # fmt: skip
    s = load_settings(cfg)
    assert (s.lake_root, s.warehouse_path, s.price_per_credit) == ("toml/lake", "toml/w.duckdb", Decimal("0.001"))
    assert org_list(s) == [(ORG_A["id"], "gh/acme", ["gh/acme/web", "gh/acme/api"])]

    monkeypatch.setenv("CIRCLECI_ANALYTICS_WAREHOUSE_PATH", "env/w.duckdb")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_PROJECTS", '["gh/acme/env"]')
    s = load_settings(cfg)
    assert (s.lake_root, s.warehouse_path) == ("toml/lake", "env/w.duckdb")
    assert org_list(s) == [(ORG_A["id"], "gh/acme", ["gh/acme/env"])]  # the shorthand merges key by key

    s = load_settings(cfg, warehouse_path="flag/w.duckdb", lake_root=None, projects=None)
    assert (s.lake_root, s.warehouse_path, s.orgs[0].projects) == ("toml/lake", "flag/w.duckdb", ["gh/acme/env"])


def test_config_file_from_env_and_from_the_working_directory(clean_env, monkeypatch) -> None:
    write_toml(clean_env / DEFAULT_CONFIG_FILE, lake_root="cwd/lake")
    assert load_settings().lake_root == "cwd/lake"
    other = write_toml(clean_env / "other.toml", lake_root="env-file/lake")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_CONFIG", str(other))
    assert load_settings().lake_root == "env-file/lake"
    explicit = write_toml(clean_env / "explicit.toml", lake_root="explicit/lake")
    assert load_settings(explicit).lake_root == "explicit/lake"
    assert Settings().lake_root == "env-file/lake"  # the explicit file was for that call only


def test_missing_config_file_is_an_error(clean_env) -> None:
    with pytest.raises(SettingsError, match="config file not found: .*missing.toml"):
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
        args[1:1] = ["--warehouse-path", str(clean_env / "flag.duckdb")]
    code, _, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and f"warehouse not found: {clean_env / expected}" in err


# -- one name everywhere -----------------------------------------------------------------------
#: A valid non-default value per setting, as TOML text and as an environment variable.
SAMPLES: dict[str, tuple[str, str, Any]] = {
    "api_base_url": ('"http://127.0.0.1:9/api/v2"', "http://127.0.0.1:9/api/v2", "http://127.0.0.1:9/api/v2"),
    "token_secret_block": ('"my-token"', "my-token", "my-token"),
    "lake_root": ('"x/lake"', "x/lake", "x/lake"),
    "warehouse_path": ('"x/w.duckdb"', "x/w.duckdb", "x/w.duckdb"),
    "dashboard_dir": ('"x/dash"', "x/dash", "x/dash"),
    "render_dashboard": ("false", "false", False),
    "price_per_credit": ("0.0012", "0.0012", Decimal("0.0012")),
    "rightsizing_headroom": ("0.5", "0.5", 0.5),
    "initial_lookback_days": ("60", "60", 60),
    "overlap_days": ("0", "0", 0),
    "tests_lookback_days": ("3", "3", 3),
    "snapshot_refresh_days": ("1", "1", 1),
    "max_concurrency": ("2", "2", 2),
    "export_poll_seconds": ("1.5", "1.5", 1.5),
    "rate_limits": ("{ core = 0, insights = 2.5 }", '{"core": 0, "insights": 2.5}', {"core": 0, "insights": 2.5}),
    "rate_limit_patience_seconds": ("{ insights = 30 }", '{"insights": 30}', {**DEFAULT_PATIENCE, "insights": 30.0}),
    "job_include": ('["test*"]', '["test*"]', ["test*"]),
    "job_exclude": ('["deploy"]', '["deploy"]', ["deploy"]),
    "now": ("2026-06-01T12:00:00Z", "2026-06-01T12:00:00Z", None),
    "schedule_cron": ('"30 2 * * *"', "30 2 * * *", "30 2 * * *"),
    "timezone": ('"Europe/Berlin"', "Europe/Berlin", "Europe/Berlin"),
    "prefect_dir": ('"x/prefect"', "x/prefect", "x/prefect"),
    "prefect_port": ("4300", "4300", 4300),
    "warehouse_storage_version": ('"v1.5.0"', "v1.5.0", "v1.5.0"),
    "lease_wait_seconds": ("30", "30", 30.0),
    "alerts": ("{ mttr_min_recoveries = 5 }", '{"mttr_min_recoveries": 5}', AlertSettings(mttr_min_recoveries=5)),
    "publish_uri": ('"s3://b/published"', "s3://b/published", "s3://b/published"),
    "teams": (
        '[{ name = "web", projects = ["gh/acme/web*"] }]',
        '[{"name": "web", "projects": ["gh/acme/web*"]}]',
        [Team(name="web", projects=["gh/acme/web*"])],
    ),
}
#: Settings without a flag: the token (never on a command line), and those no command takes.
NO_FLAG = {"token", "orgs", "rate_limits", "rate_limit_patience_seconds", "now", "alerts", "teams"}


def test_every_setting_has_a_sample() -> None:
    # owners_file names a file: test_owners_file_by_toml_env_and_flag
    assert set(Settings.model_fields) - {"token", "orgs", "owners_file"} == set(SAMPLES)


def test_owners_file_by_toml_env_and_flag(clean_env, monkeypatch) -> None:
    """The team rules from an owners file (TOML or YAML), named in the TOML file, the
    environment or on the command line; the TOML key, variable and flag are the field name."""
    from circleci_analytics.cli import serve_cmd

    rules = [Team(name="release", jobs=["deploy*"]), Team(name="web", projects=["gh/acme/web*"])]
    (clean_env / "owners.yaml").write_text("teams:\n  - name: release\n    jobs: [deploy*]\n"
                                           "  - name: web\n    projects: [gh/acme/web*]\n")  # fmt: skip
    (clean_env / "owners.toml").write_text('[[teams]]\nname = "release"\njobs = ["deploy*"]\n\n'
                                           '[[teams]]\nname = "web"\nprojects = ["gh/acme/web*"]\n')  # fmt: skip
    assert load_settings(write_toml(clean_env / "c.toml", 'owners_file = "owners.yaml"\n')).teams == rules
    monkeypatch.setenv("CIRCLECI_ANALYTICS_OWNERS_FILE", "owners.toml")
    assert load_settings().teams == rules
    from circleci_analytics.cli import _settings

    params = serve_cmd.make_context("serve", ["--owners-file", "owners.yaml"]).params
    settings = _settings(params.pop("config"), **params)
    assert settings.owners_file == "owners.yaml" and settings.teams == rules
    assert Settings.model_validate(settings.model_dump(mode="json")).teams == rules  # a flow parameter loads again


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_toml_key_and_environment_variable_are_the_field_name(clean_env, monkeypatch, name) -> None:
    toml_value, env_value, expected = SAMPLES[name]
    cfg = write_toml(clean_env / "c.toml", f"{name} = {toml_value}\n")
    from_toml = getattr(load_settings(cfg), name)
    monkeypatch.setenv(f"CIRCLECI_ANALYTICS_{name.upper()}", env_value)
    from_env = getattr(load_settings(), name)
    if expected is None:  # `now`: a datetime
        assert from_toml == from_env and from_toml.isoformat() == "2026-06-01T12:00:00+00:00"
    else:
        assert from_toml == from_env == expected
        assert getattr(Settings.model_construct(), name) != expected  # not the default by chance


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - NO_FLAG))
def test_the_flag_is_the_field_name_with_dashes(clean_env, name) -> None:
    from circleci_analytics.cli import serve_cmd

    by_dest = {p.name: p for p in serve_cmd.params}
    assert name in by_dest, f"serve has no flag for {name}"
    flag = "--" + name.replace("_", "-")
    assert flag in by_dest[name].opts
    _, env_value, expected = SAMPLES[name]
    if get_origin(Settings.model_fields[name].annotation) is list:
        args = [flag, expected[0]]
    elif name == "render_dashboard":
        args = ["--no-render-dashboard"]
    else:
        args = [flag, env_value]
    from circleci_analytics.cli import _settings

    params = serve_cmd.make_context("serve", args).params
    assert getattr(_settings(params.pop("config"), **params), name) == expected


@pytest.mark.parametrize(("old", "new"), [("--api-url", "--api-base-url"), ("--lake", "--lake-root"),
                                          ("--warehouse", "--warehouse-path"), ("--lookback-days", "--initial-lookback-days"),
                                          ("--cron", "--schedule-cron")])  # fmt: skip
def test_old_flag_spellings_still_parse_but_are_not_shown(old, new) -> None:
    from click.testing import CliRunner

    from circleci_analytics.cli import cli, serve_cmd

    value = "5" if "days" in old else "x"
    new_ctx = serve_cmd.make_context("serve", [new, value])
    old_ctx = serve_cmd.make_context("serve", [old, value])
    assert old_ctx.params == new_ctx.params
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert new in help_text and f"{old} " not in help_text and f"{old}," not in help_text


# -- organisations ----------------------------------------------------------------------------
def cli_settings(*args: str) -> Settings:
    """The settings `run <args>` would use (its flags parsed by click, as on a command line)."""
    from circleci_analytics.cli import _settings, run

    params = run.make_context("run", list(args)).params
    return _settings(params.pop("config"), **params)


def test_several_orgs_in_toml(clean_env) -> None:
    cfg = write_toml(clean_env / "c.toml", orgs_toml({**ORG_A, "projects": ["gh/acme/web"]}, ORG_B))
    assert org_list(load_settings(cfg)) == [(ORG_A["id"], "gh/acme", ["gh/acme/web"]), (ORG_B["id"], ORG_B["slug"], [])]


def test_several_orgs_on_the_command_line(clean_env) -> None:
    s = cli_settings("--org", f"gh/acme={ORG_A['id']}", "--org", f"{ORG_B['slug']}={ORG_B['id']}",
                     "--project", "gh/acme/web", "--project", "circleci/9d2e/api")  # fmt: skip
    assert org_list(s) == [
        (ORG_A["id"], "gh/acme", ["gh/acme/web"]),
        (ORG_B["id"], ORG_B["slug"], ["circleci/9d2e/api"]),
    ]


def test_several_orgs_from_the_environment(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORGS", f'[{{"id": "{ORG_A["id"]}", "slug": "gh/acme"}}, '
                                                  f'{{"id": "{ORG_B["id"]}", "slug": "{ORG_B["slug"]}"}}]')  # fmt: skip
    assert [o.slug for o in load_settings().orgs] == ["gh/acme", ORG_B["slug"]]


def test_the_highest_source_that_names_an_org_defines_them_all(clean_env, monkeypatch) -> None:
    cfg = write_toml(clean_env / "c.toml", orgs_toml(ORG_A, ORG_B))
    monkeypatch.setenv("CIRCLECI_ANALYTICS_CONFIG", str(cfg))
    assert len(load_settings().orgs) == 2
    # One org on the command line replaces the file's two ...
    s = cli_settings("--org-id", "1c3f0000-0000-4000-8000-0000000000ff", "--org-slug", "gh/solo")
    assert org_list(s) == [("1c3f0000-0000-4000-8000-0000000000ff", "gh/solo", [])]
    # ... as does the shorthand in the environment.
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORG_ID", "1c3f0000-0000-4000-8000-0000000000ee")
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ORG_SLUG", "bb/env")
    assert org_list(load_settings()) == [("1c3f0000-0000-4000-8000-0000000000ee", "bb/env", [])]


def test_projects_from_a_higher_source_go_to_their_orgs(clean_env) -> None:
    one = write_toml(clean_env / "one.toml", orgs_toml({**ORG_A, "projects": ["gh/acme/old"]}))
    assert load_settings(one).orgs[0].projects == ["gh/acme/old"]
    assert cli_settings("--config", str(one), "--project", "gh/acme/new").orgs[0].projects == ["gh/acme/new"]
    two = write_toml(clean_env / "two.toml", orgs_toml(ORG_A, ORG_B))
    s = cli_settings("--config", str(two), "--project", "gh/acme/web")
    assert org_list(s) == [(ORG_A["id"], "gh/acme", ["gh/acme/web"]), (ORG_B["id"], ORG_B["slug"], [])]
    with pytest.raises(Exception, match="gh/other/x.*belongs to none of the orgs"):
        cli_settings("--config", str(two), "--project", "gh/other/x")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (f'org_id = "{ORG_B["id"]}"\n' + orgs_toml(ORG_A), "either as orgs .* or as org_id/org_slug, not both"),
        ('projects = ["gh/acme/web"]\n' + orgs_toml(ORG_A), "top-level projects together with orgs"),
        ('projects = ["gh/acme/web"]\n', "projects are set .* but no organisation is"),
        (orgs_toml(ORG_A, ORG_A), "the same org id is listed twice"),
        (orgs_toml({"id": "nope", "slug": "gh/acme"}), r"orgs\[0\].id: not a UUID"),
        (orgs_toml({"id": ORG_A["id"], "slug": "gh/../x"}), r"orgs\[0\].slug: not an org slug"),
        (orgs_toml({"id": ORG_A["id"], "slug": "acme"}), r"orgs\[0\].slug: not an org slug"),
        ('[[orgs]]\nid = "' + ORG_A["id"] + '"\nslug = "gh/acme"\nprojcts = []\n', r"orgs\[0\].projcts: unknown setting"),
    ],
    ids=["orgs-and-shorthand", "projects-beside-orgs", "projects-without-org", "duplicate", "bad-uuid", "dot-dot",
         "no-vcs", "unknown-key"],
)  # fmt: skip
def test_org_mistakes_are_named(clean_env, toml, message) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(write_toml(clean_env / "c.toml", toml))


def test_org_flag_needs_slug_and_id(clean_env, monkeypatch, capsys) -> None:
    code, _, err = run_main(["run", "--org", "gh/acme"], monkeypatch, capsys)
    assert code == 2 and "is not SLUG=UUID" in err


# -- the token never shows -------------------------------------------------------------------
def test_token_from_env_is_secret_and_never_dumped(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    s = load_settings()
    assert s.token is not None and s.token.get_secret_value() == TOKEN
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump()), repr(s.model_dump(mode="json"))):
        assert TOKEN not in text and "token'" not in text.replace("token_secret_block", "")


def test_the_token_is_never_read_from_the_toml_file(clean_env) -> None:
    cfg = write_toml(clean_env / "c.toml", token=TOKEN)
    with pytest.raises(SettingsError) as e:
        load_settings(cfg)
    assert "never read from a file" in str(e.value) and TOKEN not in str(e.value)


class _PickySettings(Settings):
    """Settings whose token validator rejects the token (as a format check would)."""

    @field_validator("token")
    @classmethod
    def _reject(cls, value: SecretStr | None) -> SecretStr | None:
        raise ValueError("malformed token")


def test_a_rejected_token_is_masked_in_every_error(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    with pytest.raises(ValidationError) as from_env:
        _PickySettings(lake_root="x", initial_lookback_days=0)
    with pytest.raises(ValidationError) as in_process:
        _PickySettings(token=TOKEN)
    for e in (from_env.value, in_process.value):
        texts = [str(e), repr(e), repr(e.errors()), e.json(), describe_validation_error(e)]
        assert "malformed token" in str(e)
        assert not [t for t in texts if TOKEN in t]
    assert "initial_lookback_days" in describe_validation_error(from_env.value)  # the rest is still reported
