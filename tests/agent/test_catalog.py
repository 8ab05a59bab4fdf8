"""Through the SDK's client over stdio: every tool is listed with a usable schema, and the
catalogue tools (overview, marts, the definitions resource) match the warehouse."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("agent")

TOOLS = {"warehouse_overview", "credits_breakdown", "month_end_forecast", "top_flaky_tests", "mttr_trend",
         "open_failure_streaks", "right_sizing_savings", "run_sql", "list_marts", "describe_mart"}  # fmt: skip


def test_every_tool_is_listed_read_only_with_described_arguments(mcp) -> None:
    tools = {t.name: t for t in mcp.list_tools()}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 100 and not tool.description.startswith(" "), (
            tool.name
        )  # what it answers, the definition, units, period
        assert tool.annotations.read_only_hint and not tool.annotations.open_world_hint
        schema = tool.input_schema
        assert schema["type"] == "object"
        for name, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    credits = tools["credits_breakdown"].input_schema["properties"]
    assert credits["group_by"]["items"]["enum"] == ["project", "org", "workflow", "job", "branch", "resource_class",
                                                    "executor", "team", "credit_type"]  # fmt: skip
    assert credits["group_by"]["default"] == ["project"] and credits["period"]["default"] == "last_30_days"
    assert {"format": "date", "type": "string"} in credits["start_date"]["anyOf"]
    limit = tools["run_sql"].input_schema["properties"]["limit"]
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (200, 1, 5000)
    assert tools["mttr_trend"].input_schema["required"] == ["project", "workflow"]


def test_overview_is_the_build_and_the_projects(mcp, q) -> None:
    got = mcp.answer("warehouse_overview")
    (meta,) = q("select * from warehouse_meta")
    assert got["as_of_date"] == meta["as_of_date"].isoformat() == "2026-05-31"
    assert got["price_per_credit"] == float(meta["price_per_credit"]) == 0.0006
    assert got["rightsizing_headroom"] == meta["headroom"]
    assert got["built_at"] == meta["built_at"].isoformat().replace("+00:00", "Z")
    assert got["credit_data"] == {"first_day": "2026-04-17", "last_day": "2026-05-31"}
    assert got["projects"] == [
        {
            "slug": r["project_slug"],
            "name": r["project_name"],
            "org": r["org_slug"],
            "default_branch": r["default_branch"],
        }
        for r in q("select * from dim_projects order by project_slug")
    ]


def test_list_marts_is_every_mart_in_the_warehouse_with_its_documented_grain(mcp, q) -> None:
    got = {m["name"]: m for m in mcp.answer("list_marts")["marts"]}
    in_warehouse = {r["table_name"]: r["table_type"] for r in q(
        "select table_name, table_type from information_schema.tables where table_name similar to '(fct|dim)_.*|warehouse_meta'")}  # fmt: skip
    assert set(got) == set(in_warehouse)
    for name, mart in got.items():
        assert mart["grain"] and mart["description"], name
        assert mart["kind"] == ("view" if in_warehouse[name] == "VIEW" else "table")
    assert "project x job name x classname x test name" in got["fct_flaky_tests"]["grain"]
    assert got["fct_job_runs"]["kind"] == "view"


def test_describe_mart_columns_are_the_warehouse_s_with_their_documentation(mcp, q) -> None:
    got = mcp.answer("describe_mart", name="fct_recoveries")
    cols = q("select column_name, data_type from information_schema.columns where table_name = 'fct_recoveries' "
             "order by ordinal_position")  # fmt: skip
    assert [(c["name"], c["type"]) for c in got["columns"]] == [(c["column_name"], c["data_type"]) for c in cols]
    assert all(c["description"] for c in got["columns"])
    assert "failure streak" in got["grain"]


def test_describe_an_unknown_mart_lists_the_marts(mcp) -> None:
    message = mcp.error("describe_mart", name="fct_nope")
    assert "name: no documented mart 'fct_nope'" in message and "'fct_recoveries'" in message


def test_the_metric_definitions_resource(mcp) -> None:
    text = mcp.read_resource("circleci-analytics://docs/marts")
    assert "Month-end forecast" in text and "Recovery and MTTR" in text
