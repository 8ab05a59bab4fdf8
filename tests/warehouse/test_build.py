"""The model runner: ordering, data tests, configuration, atomic replacement."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from warehouse_helpers import usage_table

import circleci_analytics.warehouse.build as build_mod
from circleci_analytics.warehouse import DataTestError, Lake, ModelError, build_warehouse, load_models
from circleci_analytics.warehouse.build import BuildError, MATERIALIZATIONS

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@pytest.fixture
def small_lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    lake.land("usage_job_runs", usage_table(30))
    return lake


def _count(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_models_are_ordered_by_refs():
    models = load_models(SQL_DIR)
    position = {m.name: i for i, m in enumerate(models)}
    for m in models:
        for r in m.refs:
            if r in position:
                assert position[r] < position[m.name], (m.name, r)
    layers = {m.layer for m in models}
    assert layers == set(MATERIALIZATIONS)
    assert all(m.name.startswith("stg_") for m in models if m.layer == "staging")
    assert all(m.name.startswith("int_") for m in models if m.layer == "intermediate")
    assert all(m.name.startswith(("fct_", "dim_")) for m in models if m.layer == "marts")


def test_cycles_and_unknown_refs_are_reported(tmp_path):
    sql = tmp_path / "sql"
    (sql / "marts").mkdir(parents=True)
    (sql / "marts" / "fct_a.sql").write_text("select * from {{ ref('fct_b') }}")
    (sql / "marts" / "fct_b.sql").write_text("select * from {{ ref('fct_a') }}")
    with pytest.raises(BuildError, match="cycle: fct_a -> fct_b -> fct_a"):
        load_models(sql)
    (sql / "marts" / "fct_b.sql").write_text("select * from {{ ref('missing') }}")
    with pytest.raises(BuildError, match="unknown model 'missing'"):
        load_models(sql)


def test_every_mart_column_is_documented(small_lake, tmp_path):
    import yaml

    result = build_warehouse(small_lake, tmp_path / "w.duckdb")
    docs = yaml.safe_load((SQL_DIR / "marts" / "schema.yml").read_text())["models"]
    documented = {m["name"]: [c["name"] for c in m["columns"]] for m in docs}
    marts = [m.name for m in result.models if m.layer == "marts"]
    assert sorted(documented) == sorted(marts)
    con = duckdb.connect(str(result.db_path), read_only=True)
    for name in marts:
        cols = [r[0] for r in con.execute(f"describe {name}").fetchall()]
        assert cols == documented[name], name
    con.close()
    readme = (SQL_DIR / "marts" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in marts)


def test_empty_lake_builds_empty_marts(tmp_path):
    result = build_warehouse(tmp_path / "empty-lake", tmp_path / "w.duckdb")
    assert result.failed_tests == []
    assert _count(result.db_path, "select count(*) from fct_credit_spend_daily") == 0


def test_price_and_headroom_are_configurable(small_lake, tmp_path):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db, price_per_credit="0.001", headroom=0.5)
    assert _count(db, "select sum(total_usd) from fct_credit_spend_daily") == Decimal("45") * Decimal("0.001")
    assert _count(db, "select headroom from warehouse_meta") == 0.5
    assert _count(db, "select price_per_credit from warehouse_meta") == Decimal("0.001")
    with pytest.raises(ValueError):
        build_warehouse(small_lake, db, headroom=0)


def test_failing_data_test_names_test_and_rows_and_keeps_old_warehouse(small_lake, tmp_path):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db)
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    (sql / "tests" / "assert_no_medium_jobs.sql").write_text(
        "select job_id, resource_class from {{ ref('fct_job_runs') }} where resource_class = 'medium'"
    )
    lake2 = Lake(tmp_path / "lake")
    lake2.land("usage_job_runs", usage_table(40, prefix="more"))
    with pytest.raises(DataTestError) as err:
        build_warehouse(lake2, db, sql_dir=sql)
    message = str(err.value)
    assert "assert_no_medium_jobs (model fct_job_runs): 70 failing row(s)" in message
    assert "'resource_class': 'medium'" in message
    assert _count(db, "select count(*) from fct_job_runs") == 30  # the previous warehouse
    # Warnings do not fail the build.
    (sql / "tests" / "assert_no_medium_jobs.sql").write_text(
        "-- severity: warn\nselect job_id from {{ ref('fct_job_runs') }} where resource_class = 'medium'"
    )
    result = build_warehouse(lake2, db, sql_dir=sql)
    assert [t.name for t in result.warnings] == ["assert_no_medium_jobs"]
    assert _count(db, "select count(*) from fct_job_runs") == 70


def test_broken_model_is_named_and_old_warehouse_survives(small_lake, tmp_path):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db)
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    (sql / "marts" / "fct_waste_daily.sql").write_text("select no_such_column from {{ ref('fct_job_runs') }}")
    with pytest.raises(ModelError, match=r"model fct_waste_daily \(.*fct_waste_daily.sql\) failed"):
        build_warehouse(small_lake, db, sql_dir=sql)
    assert _count(db, "select count(*) from fct_waste_daily") > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".w.duckdb")] == []


def test_crash_mid_build_leaves_old_warehouse_usable(small_lake, tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    build_warehouse(small_lake, db)
    before = db.read_bytes()
    calls = {"n": 0}
    real = build_mod._run_test

    def crash_on_third_test(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-build")
        return real(*args, **kwargs)

    monkeypatch.setattr(build_mod, "_run_test", crash_on_third_test)
    small_lake.land("usage_job_runs", usage_table(50, prefix="x"))
    with pytest.raises(KeyboardInterrupt):
        build_warehouse(small_lake, db)
    assert db.read_bytes() == before
    assert _count(db, "select count(*) from fct_job_runs") == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "w.duckdb"]
    monkeypatch.undo()
    assert build_warehouse(small_lake, db).failed_tests == []
    assert _count(db, "select count(*) from fct_job_runs") == 80


def test_build_result_reports_models_tests_and_timings(small_lake, tmp_path):
    result = build_warehouse(small_lake, tmp_path / "w.duckdb")
    assert {m.layer for m in result.models} == {"staging", "intermediate", "marts"}
    assert all(m.rows is None for m in result.models if m.layer == "staging")  # views
    assert result.sources["usage_job_runs"] == 2
    assert len(result.tests) > 50 and result.failed_tests == []
    assert set(result.timings) == {"sources", "models", "tests"}
    assert "built" in result.summary()
