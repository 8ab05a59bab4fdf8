"""`sql` is read-only: only reads run, and the connection cannot write, attach, load code or
read files outside the lake; ordinary queries (the README's) still work."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from cli_helpers import run_main

from circleci_analytics.connectors.schemas import PROJECTS
from circleci_analytics.query import open_read_only
from circleci_analytics.warehouse import Lake, build_warehouse

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A real warehouse whose lake views read one landed Parquet table (data/lake beside data/warehouse.duckdb)."""
    root = tmp_path_factory.mktemp("sql") / "data"
    lake = Lake(root / "lake")
    row = {"project_id": "p1", "project_slug": "gh/acme/web", "project_name": "web", "org_id": "o1",
           "org_name": "acme", "org_slug": "gh/acme", "vcs_provider": "github", "vcs_url": "https://x",
           "default_branch": "main", "extracted_at": datetime(2026, 6, 1, tzinfo=UTC)}  # fmt: skip
    lake.land("projects", pa.Table.from_pylist([row], schema=PROJECTS))
    build_warehouse(lake, root / "warehouse.duckdb")
    return root / "warehouse.duckdb"


@pytest.fixture
def sql(clean_env, monkeypatch, capsys, built):
    """`sql(query, *flags)` -> (exit code, stdout, stderr) against the built warehouse."""
    return lambda query, *flags: run_main(
        ["sql", "--warehouse-path", str(built), *flags, "--", query], monkeypatch, capsys
    )


def _lake_file(warehouse: Path) -> Path:
    return next((warehouse.parent / "lake" / "projects").rglob("*.parquet"))


# -- reads still work --------------------------------------------------------------------------
def _readme_examples() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    return [s.strip() for b in blocks for s in b.split(";") if s.strip()]


@pytest.mark.parametrize("query", _readme_examples(), ids=lambda q: q.splitlines()[0][:50])
def test_the_readme_examples_run(sql, query) -> None:
    code, _, err = sql(query)
    assert code == 0, err


@pytest.mark.parametrize("query", [
    "select project_slug from stg_circleci__projects",  # a view over the lake's Parquet
    "with p as (select * from dim_projects) select project_slug from p",
    "describe dim_projects", "show tables", "summarize dim_projects", "explain select * from dim_projects",
    "pragma table_info('dim_projects')", "values ('gh/acme/web')", "table dim_projects", "from dim_projects",
    "select 1 as x; select project_slug from dim_projects",
])  # fmt: skip
def test_read_statements_run(sql, query) -> None:
    code, out, err = sql(query, "--format", "csv")
    assert code == 0, err
    assert "gh/acme/web" in out or "project_slug" in out or "dim_projects" in out


# -- writes are refused ------------------------------------------------------------------------
REFUSED = {
    "copy": "copy (select 1 as x) to '{outside}/x.parquet' (format parquet)",
    "attach": "attach '{outside}/other.duckdb' as v",
    "detach": "detach memory",
    "install": "install httpfs",
    "load": "load httpfs",
    "set": "set threads = 1",
    "reset": "reset threads",
    "use": "use memory",
    "create": "create table t as select 1 as x",
    "create-temp": "create temp table t as select 1 as x",
    "create-secret": "create secret s (type s3, key_id 'k', secret 'v')",
    "insert": "insert into dim_projects select * from dim_projects",
    "update": "update dim_projects set project_name = 'x'",
    "delete": "delete from dim_projects",
    "merge": "merge into dim_projects using dim_projects as s on true when matched then delete",
    "drop": "drop table dim_projects",
    "alter": "alter table dim_projects add column y int",
    "call-checkpoint": "call checkpoint()",
    "checkpoint": "checkpoint",
    "export": "export database '{outside}/export'",
    "import": "import database '{outside}/export'",
    "copy-database": "copy from database memory to memory",
    "pragma-write": "pragma enable_profiling",
    "transaction": "begin transaction",
    "vacuum": "vacuum",
    "prepare": "prepare p as select 1",
    "explain-analyze-write": "explain analyze delete from dim_projects",
    "second-statement": "select 1; drop table dim_projects",
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_write_statements_are_refused(sql, built, tmp_path, kind) -> None:
    before = built.read_bytes()
    code, out, err = sql(REFUSED[kind].format(outside=tmp_path))
    assert code == 2, out + err
    assert "refused" in err and "read-only" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert built.read_bytes() == before
    assert list(tmp_path.iterdir()) == []


def test_copy_over_a_lake_partition_is_refused_and_the_partition_kept(sql, built) -> None:
    # The reported bug: this used to exit 0 and replace the partition with `select 1`.
    target = _lake_file(built)
    before = target.read_bytes()
    code, _, err = sql(f"copy (select 1 as x) to '{target}' (format parquet)")
    assert code == 2 and "COPY statements do not run" in err
    assert target.read_bytes() == before
    assert sql("select project_slug from stg_circleci__projects", "--format", "csv")[1] == "project_slug\ngh/acme/web\n"


def test_attach_and_drop_in_another_database_is_refused(sql, tmp_path) -> None:
    # The reported bug: this used to drop a table in another database.
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("create table keep as select 42 as answer")
    con.close()
    code, _, err = sql(f"attach '{other}' as v (READ_WRITE); drop table v.keep")
    assert code == 2 and "ATTACH statements do not run" in err
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("select answer from keep").fetchall() == [(42,)]
    con.close()


def test_reading_a_file_outside_the_lake_is_refused(sql, tmp_path) -> None:
    outside = tmp_path / "secret.parquet"
    con = duckdb.connect()
    con.execute(f"copy (select 'leak' as x) to '{outside}' (format parquet)")
    con.close()
    for query in (f"select * from read_parquet('{outside}')", "select * from read_text('/etc/hostname')",
                  f"select * from read_parquet('{outside.parent}/../{outside.parent.name}/secret.parquet')"):  # fmt: skip
        code, out, err = sql(query)
        assert code == 2 and "query failed" in err and "disabled by configuration" in err, query
        assert "leak" not in out


# -- the connection itself, without the statement check ----------------------------------------
@pytest.mark.parametrize("statement", [
    "copy (select 1 as x) to '{outside}/x.parquet' (format parquet)",
    "attach '{outside}/other.duckdb' as v",
    "install httpfs",
    "set threads = 1",
    "set enable_external_access = true",
    "set allowed_directories = ['/']",
    "export database '{outside}/export'",
    "select * from read_csv('/etc/passwd')",
])  # fmt: skip
def test_the_connection_cannot_write_attach_load_or_reconfigure(built, tmp_path, statement) -> None:
    con = open_read_only(built, [built.parent / "lake"])
    try:
        with pytest.raises(duckdb.Error):
            con.execute(statement.format(outside=tmp_path)).fetchall()
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_warehouse_is_a_clear_user_error(clean_env, monkeypatch, capsys, tmp_path) -> None:
    bad = tmp_path / "warehouse.duckdb"
    bad.write_bytes(b"this is not a duckdb file" * 200)
    code, out, err = run_main(["sql", "--warehouse-path", str(bad), "select 1"], monkeypatch, capsys)
    assert code == 2 and f"cannot open the warehouse {bad}" in err
    assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1


def test_a_warehouse_path_that_is_a_folder_is_a_clear_user_error(clean_env, monkeypatch, capsys, tmp_path) -> None:
    code, _, err = run_main(["sql", "--warehouse-path", str(tmp_path), "select 1"], monkeypatch, capsys)
    assert code == 2 and "is a folder" in err
