"""run_sql over stdio: reads return columns, rows and `truncated`; the row limit holds;
anything that writes, attaches or reaches outside the lake is refused; and no answer ever
carries the CircleCI token that sits in the server's environment."""

from __future__ import annotations

import pytest
from mcp_session import TOKEN_CANARY

pytestmark = pytest.mark.xdist_group("agent")


def test_a_query_returns_columns_rows_and_types(mcp, q) -> None:
    sql = ("select project_slug, sum(total_credits) as credits, max(spend_date) as last_day "
           "from fct_credit_spend_daily group by all order by credits desc")  # fmt: skip
    got = mcp.answer("run_sql", sql=sql)
    assert got["columns"] == [{"name": "project_slug", "type": "VARCHAR"}, {"name": "credits", "type": "DECIMAL(38,6)"},
                              {"name": "last_day", "type": "DATE"}]  # fmt: skip
    assert got["rows"] == [[r["project_slug"], float(r["credits"]), r["last_day"].isoformat()] for r in q(sql)]
    assert (got["row_count"], got["truncated"], got["limit"]) == (3, False, 200)


def test_the_row_limit_truncates(mcp, q) -> None:
    got = mcp.answer("run_sql", sql="select job_id from fct_job_runs order by job_id", limit=7)
    assert got["rows"] == [[r["job_id"]] for r in q("select job_id from fct_job_runs order by job_id limit 7")]
    assert (got["row_count"], got["truncated"]) == (7, True)
    assert mcp.answer("run_sql", sql="select * from fct_job_runs")["row_count"] == 200  # the default
    full = mcp.answer("run_sql", sql="select i from range(7000) as t(i)", limit=5000)
    assert (full["row_count"], full["truncated"], full["rows"][-1]) == (5000, True, [4999])
    exact = mcp.answer("run_sql", sql="select * from dim_projects", limit=3)
    assert (exact["row_count"], exact["truncated"]) == (3, False)


@pytest.mark.parametrize("limit", [0, 5001])
def test_a_limit_out_of_range_is_refused(mcp, limit) -> None:
    message = mcp.error("run_sql", sql="select 1", limit=limit)
    assert "limit\n  Input should be" in message and ("5000" in message or "1" in message)


@pytest.mark.parametrize("sql", [
    "describe fct_recoveries", "show tables", "pragma table_info('dim_projects')",
    "select 1 as x; select count(*) as n from dim_projects",
    "select count(*) as n from stg_circleci__projects",  # a view over the lake's Parquet (data/lake)
])  # fmt: skip
def test_other_reads_run(mcp, sql) -> None:
    got = mcp.answer("run_sql", sql=sql)
    assert got["row_count"] > 0 and got["columns"]


@pytest.mark.parametrize("sql", [
    "delete from fct_flaky_tests",
    "drop table dim_projects",
    "create table notes as select 1 as x",
    "insert into dim_projects select * from dim_projects",
    "update warehouse_meta set price_per_credit = 1",
    "copy (select 1 as x) to '{tmp}/out.csv'",
    "attach '{tmp}/other.duckdb' as other",
    "set enable_external_access = true",
    "select 1; drop table dim_projects",
])  # fmt: skip
def test_writes_are_refused_and_nothing_changes(mcp, warehouse, tmp_path, sql) -> None:
    before = warehouse.read_bytes()
    message = mcp.error("run_sql", sql=sql.format(tmp=tmp_path))
    assert "sql: refused:" in message and "read-only" in message
    assert warehouse.read_bytes() == before
    assert list(tmp_path.iterdir()) == []


def test_files_outside_the_lake_are_not_readable(mcp) -> None:
    for sql in ("select * from read_text('/proc/self/environ')", "select * from read_csv('/etc/passwd')"):
        message = mcp.error("run_sql", sql=sql)
        assert "query failed" in message and "disabled by configuration" in message


def test_a_bad_query_is_a_clear_error(mcp) -> None:
    assert "query failed: Catalog Error: Table with name fct_nope does not exist" in mcp.error(
        "run_sql", sql="select * from fct_nope"
    )
    assert "sql: cannot parse the query: Parser Error" in mcp.error("run_sql", sql="selec 1")


def test_the_token_never_comes_back(mcp) -> None:
    texts = []
    for tool in mcp.list_tools():
        required = tool.input_schema.get("required", [])
        arguments = {"project": "web-app", "workflow": "deploy"} if required == ["project", "workflow"] else {}
        arguments |= {"sql": "select * from duckdb_settings()", "limit": 5000} if tool.name == "run_sql" else {}
        arguments |= {"name": "fct_recoveries"} if tool.name == "describe_mart" else {}
        result = mcp.call(tool.name, arguments)
        assert not result.is_error, (tool.name, result.content[0].text)
        texts.append(result.content[0].text)
    for sql in ("select getenv('CIRCLECI_TOKEN')", "select * from read_text('/proc/self/environ')",
                "select current_setting('home_directory')"):  # fmt: skip
        texts.append(mcp.call("run_sql", {"sql": sql}).content[0].text)
    assert len(texts) == 13 and not any(TOKEN_CANARY in t for t in texts)
