"""build_warehouse: dbt builds and tests the project, swaps the file in only when all passed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from warehouse_helpers import T0, usage_table

import circleci_analytics.warehouse.build as build_mod
from circleci_analytics.warehouse import DataTestError, Lake, LakeFileError, ModelError, build_warehouse, docs_path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
LAYER_PREFIXES = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("fct_", "dim_", "warehouse_meta")}


@pytest.fixture
def small_lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    lake.land("usage_job_runs", usage_table(30))
    return lake


@pytest.fixture
def sql_copy(tmp_path) -> Path:
    """A copy of the dbt project to break on purpose."""
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return target


def _count(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _model_docs() -> dict[str, tuple[Path, dict]]:
    docs = {}
    for yml in SQL_DIR.glob("models/**/*.yml"):
        for model in yaml.safe_load(yml.read_text()).get("models", []):
            docs[model["name"]] = (yml, model)
    return docs


def test_models_follow_the_layers_and_each_has_its_own_yml():
    models = sorted(SQL_DIR.glob("models/**/*.sql"))
    assert len(models) > 30
    docs = _model_docs()
    for sql in models:
        layer = sql.relative_to(SQL_DIR / "models").parts[0]
        assert sql.stem.startswith(LAYER_PREFIXES[layer]), sql
        yml, model = docs[sql.stem]
        assert yml == sql.with_suffix(".yml"), f"{sql.stem} is documented in {yml}, not beside its SQL"
        assert "Grain:" in model["description"] and model["meta"]["grain"], sql.stem
    assert sorted(docs) == sorted(p.stem for p in models)


def test_every_column_is_documented(small_lake, tmp_path):
    result = build_warehouse(small_lake, tmp_path / "w.duckdb", docs=False)
    docs = _model_docs()
    con = duckdb.connect(str(result.db_path), read_only=True)
    for m in result.models:
        if m.layer == "seeds":
            continue
        cols = [r[0] for r in con.execute(f"describe {m.name}").fetchall()]
        documented = [c["name"] for c in docs[m.name][1]["columns"]]
        assert cols == documented, m.name
        assert all(c.get("description") for c in docs[m.name][1]["columns"]), m.name
    con.close()
    readme = (SQL_DIR / "models" / "marts" / "README.md").read_text()
    assert all(f"`{m.name}`" in readme for m in result.models if m.layer == "marts")


def test_empty_lake_builds_empty_typed_marts(tmp_path):
    result = build_warehouse(tmp_path / "empty-lake", tmp_path / "w.duckdb", docs=False)
    assert result.failed_tests == []
    assert _count(result.db_path, "select count(*) from fct_credit_spend_daily") == 0

    # The empty sources have the lake's types (from warehouse/tables.py), not VARCHAR/NULL.
    def type_of(table: str, column: str) -> str:
        return _count(result.db_path, f"select data_type from information_schema.columns "
                                      f"where table_name = '{table}' and column_name = '{column}'")  # fmt: skip

    assert type_of("usage_job_runs", "total_credits") == "DECIMAL(18,6)"
    assert type_of("usage_job_runs", "job_run_started_at") == "TIMESTAMP WITH TIME ZONE"
    assert type_of("fct_credit_spend_daily", "total_credits") == "DECIMAL(38,6)"


def test_price_and_headroom_are_configurable(small_lake, tmp_path):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, price_per_credit="0.001", headroom=0.5, docs=False)
    assert _count(db, "select sum(total_usd) from fct_credit_spend_daily") == Decimal("45") * Decimal("0.001")
    assert _count(db, "select headroom from warehouse_meta") == 0.5
    assert _count(db, "select price_per_credit from warehouse_meta") == Decimal("0.001")
    with pytest.raises(ValueError):
        build_warehouse(small_lake, db, headroom=0)


def test_failing_data_test_names_test_and_rows_and_keeps_old_warehouse(small_lake, tmp_path, sql_copy):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    (sql_copy / "tests" / "assert_no_medium_jobs.sql").write_text(
        "select job_id, resource_class from {{ ref('fct_job_runs') }} where resource_class = 'medium'"
    )
    lake2 = Lake(tmp_path / "lake")
    lake2.land("usage_job_runs", usage_table(40, prefix="more"))
    with pytest.raises(DataTestError) as err:
        build_warehouse(lake2, db, sql_dir=sql_copy, docs=False)
    message = str(err.value)
    assert "assert_no_medium_jobs (model fct_job_runs): 70 failing row(s)" in message
    assert "'resource_class': 'medium'" in message
    assert _count(db, "select count(*) from fct_job_runs") == 30  # the previous warehouse
    # Warnings do not fail the build.
    (sql_copy / "tests" / "assert_no_medium_jobs.sql").write_text(
        "{{ config(severity='warn') }}\nselect job_id from {{ ref('fct_job_runs') }} where resource_class = 'medium'"
    )
    result = build_warehouse(lake2, db, sql_dir=sql_copy, docs=False)
    assert [t.name for t in result.warnings] == ["assert_no_medium_jobs"]
    assert _count(db, "select count(*) from fct_job_runs") == 70


def test_broken_model_is_named_and_old_warehouse_survives(small_lake, tmp_path, sql_copy):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    (sql_copy / "models" / "marts" / "fct_waste_daily.sql").write_text(
        "select no_such_column from {{ ref('fct_job_runs') }}"
    )
    with pytest.raises(
        ModelError, match=r"(?s)model fct_waste_daily \(.*fct_waste_daily.sql\) failed: .*no_such_column"
    ):
        build_warehouse(small_lake, db, sql_dir=sql_copy, docs=False)
    assert _count(db, "select count(*) from fct_waste_daily") > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".w.duckdb")] == []


def test_crash_mid_build_leaves_old_warehouse_usable(small_lake, tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    before = db.read_bytes()
    real = build_mod._Dbt.invoke

    def crash_when_testing(self, *args, **overrides):
        if args[0] == "test":
            raise KeyboardInterrupt("killed mid-build")
        return real(self, *args, **overrides)

    monkeypatch.setattr(build_mod._Dbt, "invoke", crash_when_testing)
    small_lake.land("usage_job_runs", usage_table(50, prefix="x"))
    with pytest.raises(KeyboardInterrupt):
        build_warehouse(small_lake, db, docs=False)
    assert db.read_bytes() == before
    assert _count(db, "select count(*) from fct_job_runs") == 30
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".dbt")) == ["lake", "w.duckdb"]
    monkeypatch.undo()
    assert build_warehouse(small_lake, db, docs=False).failed_tests == []
    assert _count(db, "select count(*) from fct_job_runs") == 80


def test_stale_building_files_of_dead_processes_are_removed(small_lake, tmp_path):
    """A killed build leaves ``.w.duckdb.<pid>.<id>.building`` (+ .wal); the next build removes it."""
    db = tmp_path / "w.duckdb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = [
        tmp_path / f".w.duckdb.{dead_pid}.0123abcd.building",
        tmp_path / f".w.duckdb.{dead_pid}.0123abcd.building.wal",
    ]
    alive = tmp_path / f".w.duckdb.{os.getppid()}.89abcdef.building"  # a build still running elsewhere
    other = tmp_path / f".other.duckdb.{dead_pid}.0123abcd.building"  # another warehouse's
    for p in (*stale, alive, other):
        p.write_bytes(b"x" * 1024)
    build_warehouse(small_lake, db, docs=False)
    assert not any(p.exists() for p in stale)
    assert alive.exists() and other.exists()


def test_corrupt_lake_file_is_named_and_old_warehouse_survives(small_lake, tmp_path):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    victim = Path(small_lake.files("usage_job_runs")[0])
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated, as by a crash mid-copy
    with pytest.raises(LakeFileError) as err:
        build_warehouse(small_lake, db, docs=False)
    assert str(victim) in str(err.value)
    assert "Traceback" not in str(err.value)
    assert _count(db, "select count(*) from fct_job_runs") == 30


def test_build_result_reports_models_tests_timings_and_docs(small_lake, tmp_path):
    result = build_warehouse(small_lake, tmp_path / "w.duckdb")
    assert {m.layer for m in result.models} == {"seeds", "staging", "intermediate", "marts"}
    assert {m.materialization for m in result.models if m.layer == "staging"} == {"view"}
    assert result.sources["usage_job_runs"] == 2
    assert len(result.tests) > 100 and result.failed_tests == []
    assert {t.kind for t in result.tests} == {"data", "unit"}
    assert {"parse", "models", "tests", "docs"} <= set(result.timings)
    assert "built" in result.summary()
    # The dbt docs site: one file, no network (no http(s) script, style or font loads).
    assert result.docs_path == docs_path(result.db_path) and result.docs_path.is_file()
    html = result.docs_path.read_text()
    assert "fct_mttr_weekly" in html
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)
    assert '"send_anonymous_usage_stats": false' in html  # so its tracker script is never loaded


def test_storage_version_setting_defaults_to_the_builds_default():
    from circleci_analytics.settings import Settings
    from circleci_analytics.warehouse import DEFAULT_STORAGE_VERSION

    assert Settings().warehouse_storage_version == DEFAULT_STORAGE_VERSION == "v1.4.0"
    profile = yaml.safe_load((SQL_DIR / "profiles.yml").read_text())
    compat = profile["circleci_analytics"]["outputs"]["warehouse"]["config_options"]["storage_compatibility_version"]
    assert f"'{DEFAULT_STORAGE_VERSION}'" in compat  # the by-hand default


def test_unit_tests_and_docs_rerun_only_when_the_definitions_change(small_lake, tmp_path, sql_copy):
    """Unit tests check logic on fixed inputs and the docs show the definitions: an
    incremental build on unchanged definitions reuses both; any change to sql/ redoes both."""
    db = tmp_path / "w.duckdb"
    first = build_warehouse(small_lake, db, sql_dir=sql_copy)
    assert any(t.kind == "unit" for t in first.tests) and "docs" in first.timings
    docs_written = docs_path(db).stat().st_mtime_ns
    small_lake.land("usage_job_runs", usage_table(40, prefix="more"))
    second = build_warehouse(small_lake, db, sql_dir=sql_copy)
    assert second.incremental and second.failed_tests == []
    assert [t for t in second.tests if t.kind == "unit"] == [] and any(t.kind == "data" for t in second.tests)
    assert "docs" not in second.timings and docs_path(db).stat().st_mtime_ns == docs_written
    assert second.docs_path == docs_path(db)
    yml = sql_copy / "models" / "marts" / "fct_waste_daily.yml"
    yml.write_text(yml.read_text().replace("Grain:", "Waste. Grain:", 1))
    third = build_warehouse(small_lake, db, sql_dir=sql_copy)
    assert third.incremental and any(t.kind == "unit" for t in third.tests) and "docs" in third.timings
    assert "Waste. Grain:" in docs_path(db).read_text()


def test_incremental_build_tests_the_rows_it_rebuilt(small_lake, tmp_path):
    """Rows of days an incremental build leaves alone were tested when they were written."""
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    with duckdb.connect(str(db)) as con:  # an old row that no longer passes a test
        con.execute("update int_job_runs_keyed set project_slug = null where job_id = 'job-0'")
    small_lake.land("usage_job_runs", usage_table(5, start=T0 + timedelta(days=20), prefix="later"))
    result = build_warehouse(small_lake, db, docs=False)
    assert result.incremental and result.failed_tests == []
    assert _count(db, "select count(*) from int_job_runs_keyed where project_slug is null") == 1
    compiled = (db.with_name(db.name + ".dbt") / "target" / "compiled").rglob("not_null_int_job_runs_keyed_job_id.sql")
    assert "job_run_date >= cast(date_trunc('week', date '" in next(compiled).read_text()
    # a full build tests every row
    full = build_warehouse(small_lake, db, docs=False, full_refresh=True)
    compiled = (db.with_name(db.name + ".dbt") / "target" / "compiled").rglob("not_null_int_job_runs_keyed_job_id.sql")
    assert "date_trunc" not in next(compiled).read_text() and full.failed_tests == []


def test_other_team_rules_rebuild_the_marts_that_store_the_team(small_lake, tmp_path):
    """The team is stored in incremental marts: a build with other rules rebuilds them whole,
    one with the same rules stays incremental; no rules: 'unassigned'."""
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, docs=False)
    assert _count(db, "select string_agg(distinct team) from fct_credit_spend_daily") == "unassigned"
    rules = [{"name": "testers", "projects": ["gh/acme/*"], "jobs": ["te?t"]}]
    first = build_warehouse(small_lake, db, docs=False, teams=rules)
    assert not first.incremental
    assert _count(db, "select string_agg(distinct team) from fct_credit_spend_daily") == "testers"
    assert build_warehouse(small_lake, db, docs=False, teams=rules).incremental
    assert not build_warehouse(small_lake, db, docs=False).incremental
    assert _count(db, "select string_agg(distinct team) from fct_credit_spend_daily") == "unassigned"
