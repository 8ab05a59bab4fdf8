"""What is in the warehouse, for an agent about to write SQL: the build's parameters and
projects, and the marts with their grain and columns.

Descriptions and grains come from the marts' own documentation (the YAML beside the models
under `sql/`, found wherever a `marts` folder holds it); types and the list of what exists
come from the warehouse itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Warehouse, jsonable
from circleci_analytics.agent.arguments import bad, meta, read_only_tool
from circleci_analytics.warehouse.build import DEFAULT_SQL_DIR

__all__ = ["MartDoc", "mart_docs", "marts_readme", "register"]

MARTS_README_URI = "circleci-analytics://docs/marts"


@dataclass(frozen=True, slots=True)
class MartDoc:
    """One mart as documented: description, grain and column descriptions."""

    name: str
    description: str
    grain: str | None
    columns: dict[str, str] = field(default_factory=dict)


def _in_marts(path: Path, sql_dir: Path) -> bool:
    return "marts" in path.relative_to(sql_dir).parts


def mart_docs(sql_dir: Path = DEFAULT_SQL_DIR) -> dict[str, MartDoc]:
    """Every model documented in a YAML file under a `marts` folder of `sql_dir`."""
    docs: dict[str, MartDoc] = {}
    for path in sorted(sql_dir.rglob("*.yml")):
        if not _in_marts(path, sql_dir):
            continue
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []:
            grain = model.get("grain") or (model.get("meta") or {}).get("grain")
            columns = {c["name"]: " ".join(str(c.get("description") or "").split()) for c in model.get("columns") or []}
            docs[model["name"]] = MartDoc(model["name"], " ".join(str(model.get("description") or "").split()),
                                          grain, columns)  # fmt: skip
    return docs


def marts_readme(sql_dir: Path = DEFAULT_SQL_DIR) -> Path | None:
    """The marts' README (grain table and metric definitions), if the package ships one."""
    return next((p for p in sorted(sql_dir.rglob("README.md")) if p.parent.name == "marts"), None)


def register(server: MCPServer, warehouse: Warehouse, sql_dir: Path = DEFAULT_SQL_DIR) -> None:
    docs = mart_docs(sql_dir)
    readme = marts_readme(sql_dir)

    @read_only_tool(server)
    def warehouse_overview() -> dict[str, Any]:
        """Start here: the warehouse's as_of_date (the last complete day of data, UTC; every default
        period ends there), when it was built, the USD price per credit and right-sizing headroom
        it was built with, the first and last day of credit data, and the projects (slug, name,
        org, default branch) that the other tools accept as `project`.
        """
        with warehouse.read() as db:
            m = meta(db)
            data = db.one(
                "select min(spend_date) as first_day, max(spend_date) as last_day from fct_credit_spend_daily"
            )
            projects = db.rows("select project_slug as slug, project_name as name, org_slug as org, default_branch "
                               "from dim_projects order by project_slug limit 1000")  # fmt: skip
        return {
            "as_of_date": m["as_of_date"].isoformat(),
            "built_at": jsonable(m.get("built_at")),
            "price_per_credit": float(m["price_per_credit"]),
            "rightsizing_headroom": m.get("headroom"),
            "credit_data": data,
            "projects": projects,
        }

    @read_only_tool(server)
    def list_marts() -> dict[str, Any]:
        """The marts (tables and views) an agent can query with run_sql, each with its grain (what
        one row is) and what it holds, from the project's documentation. Use describe_mart for the
        columns. Dates are UTC; weeks are ISO weeks starting Monday; credits are usage-export credits.
        The one-row table warehouse_meta holds as_of_date, price_per_credit, headroom and built_at.
        """
        with warehouse.read() as db:
            tables = db.rows("select table_name, any_value(table_type) as table_type "
                             "from information_schema.tables group by all")  # fmt: skip
        present = {r["table_name"]: r["table_type"] for r in tables}
        marts = [{"name": d.name, "kind": "view" if present[d.name] == "VIEW" else "table", "grain": d.grain,
                  "description": d.description} for d in docs.values() if d.name in present]  # fmt: skip
        return {"marts": marts, "definitions": MARTS_README_URI if readme else None}

    @read_only_tool(server)
    def describe_mart(
        name: Annotated[str, Field(description="A mart name from list_marts, e.g. fct_flaky_tests.")],
    ) -> dict[str, Any]:
        """One mart's grain, description and columns (name, DuckDB type, documented meaning with
        units), to write correct SQL for run_sql.
        """
        if name not in docs:
            raise bad("name", f"no documented mart {name!r}", sorted(docs), listed=len(docs))
        with warehouse.read() as db:
            cols = db.rows("select column_name, any_value(data_type) as data_type from information_schema.columns "
                           "where table_name = $t group by column_name order by min(ordinal_position)", t=name)  # fmt: skip
        if not cols:
            raise bad("name", f"{name!r} is documented but not in this warehouse (built by an older version?)")
        doc = docs[name]
        columns = [{"name": c["column_name"], "type": c["data_type"], "description": doc.columns.get(c["column_name"])}
                   for c in cols]  # fmt: skip
        return {"name": name, "grain": doc.grain, "description": doc.description, "columns": columns}

    if readme is not None:

        @server.resource(MARTS_README_URI, name="marts", mime_type="text/markdown",
                         description="The marts' grain table and the metric definitions they implement.")  # fmt: skip
        def marts_definitions() -> str:
            return readme.read_text(encoding="utf-8")
