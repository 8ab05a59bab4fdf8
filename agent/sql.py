"""The read-only SQL tool, behind the `sql` command's guard (`circleci_analytics.query`):
statements are classified by `check_read_only` and run on `open_read_only`'s connection
(through `Warehouse.read`). Answers are bounded: at most `limit` rows, flagged `truncated`."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from circleci_analytics.agent.access import Warehouse, jsonable
from circleci_analytics.agent.arguments import bad, read_only_tool
from circleci_analytics.query import QueryRefused, check_read_only

__all__ = ["DEFAULT_ROWS", "MAX_ROWS", "register"]

DEFAULT_ROWS = 200
MAX_ROWS = 5000


def register(server: MCPServer, warehouse: Warehouse) -> None:
    @read_only_tool(server)
    def run_sql(
        sql: Annotated[
            str,
            Field(
                description="DuckDB SQL over the marts, e.g. select project_slug, sum(total_credits) "
                "from fct_credit_spend_daily group by 1 order by 2 desc."
            ),
        ],  # fmt: skip
        limit: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_ROWS,
                description=f"Most rows returned (1-{MAX_ROWS}); more are cut and `truncated` is true.",
            ),
        ] = DEFAULT_ROWS,  # fmt: skip
    ) -> dict[str, Any]:
        """Run read-only DuckDB SQL on the warehouse and return the columns (name, DuckDB type), the
        rows (lists in column order) and whether the result was cut at `limit` rows.

        Only reads run: SELECT / WITH / VALUES / TABLE / FROM-first, DESCRIBE, SHOW, SUMMARIZE,
        EXPLAIN and reporting PRAGMAs; anything that writes, attaches, loads, exports or changes a
        setting is refused. Several statements may be given; the last one's result is returned.
        Use list_marts / describe_mart for tables and columns, and the other tools first when they
        answer the question. Decimals come back as floats, dates and timestamps as ISO 8601 (UTC).
        """
        try:
            statements = check_read_only(sql)
        except QueryRefused as e:
            raise bad("sql", str(e)) from None
        with warehouse.read() as db:
            for text in statements[:-1]:
                db.con.execute(text).fetchall()
            rel = db.con.sql(statements[-1])
            if rel is None:
                columns, fetched = [], []
            else:
                columns = [{"name": n, "type": str(t)} for n, t in zip(rel.columns, rel.types, strict=True)]
                fetched = rel.limit(limit + 1).fetchall()
        rows = [[jsonable(v) for v in row] for row in fetched[:limit]]
        return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": len(fetched) > limit,
                "limit": limit}  # fmt: skip
