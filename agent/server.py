"""The MCP server: the tools of `credits`, `flaky`, `reliability`, `sizing`, `catalog` and
`sql` on one `MCPServer` (the `mcp` SDK), over stdio or streamable HTTP on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from circleci_analytics import __version__
from circleci_analytics.agent import catalog, credits, flaky, reliability, sizing, sql
from circleci_analytics.agent.access import DEFAULT_QUERY_TIMEOUT_SECONDS, Warehouse
from circleci_analytics.connectors.auth import TOKEN_ENV

__all__ = ["DEFAULT_PORT", "LOOPBACK", "create_server", "serve"]

DEFAULT_PORT = 8766
LOOPBACK = "127.0.0.1"

INSTRUCTIONS = """\
Read-only answers about a CircleCI organisation from its circleci-analytics warehouse: where
the credits go (credits_breakdown, month_end_forecast, right_sizing_savings), which tests are
flaky and what they cost (top_flaky_tests), and how fast workflows recover (mttr_trend,
open_failure_streaks). Call warehouse_overview first: it gives as_of_date (the last complete
day of data; default periods end there) and the project slugs. For anything else,
list_marts / describe_mart, then run_sql (read-only DuckDB SQL, bounded rows).
Conventions: credits are the usage export's billing credits, usd = credits x price_per_credit;
numbers are JSON numbers (decimals as floats); durations in seconds; dates ISO 8601, UTC;
weeks are ISO weeks starting Monday. Lists are top-N with `truncated` when more exist.
"""


def _reject_unknown_arguments(server: MCPServer) -> Callable[..., Any]:
    """Middleware: a tool call with an argument the tool does not take is an error naming it
    (the SDK would drop it silently, and e.g. a misspelt filter would widen the answer)."""

    async def middleware(ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        if ctx.method == "tools/call" and isinstance(params.get("arguments"), Mapping):
            tool = next((t for t in await server.list_tools() if t.name == params.get("name")), None)
            accepted = set((tool.input_schema if tool else {}).get("properties", {}))
            unknown = sorted(set(params["arguments"]) - accepted)
            if tool is not None and unknown:
                text = (f"Error executing tool {tool.name}: unknown argument(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(sorted(accepted)) or 'no arguments'}")  # fmt: skip
                return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        return await call_next(ctx)

    return middleware


def create_server(warehouse: str | Path, lake_dirs: Iterable[str | Path] = (),
                  query_timeout_seconds: float = DEFAULT_QUERY_TIMEOUT_SECONDS) -> MCPServer:  # fmt: skip
    """An MCP server answering from the warehouse file at `warehouse`, opened read-only per call
    (files readable only under `lake_dirs`, where its lake views point)."""
    wh = Warehouse(warehouse, lake_dirs, query_timeout_seconds)
    server = MCPServer("circleci-analytics", title="CircleCI analytics warehouse", version=__version__,
                       instructions=INSTRUCTIONS, log_level="WARNING")  # fmt: skip
    server.middleware.append(_reject_unknown_arguments(server))
    for module in (catalog, credits, flaky, reliability, sizing, sql):
        module.register(server, wh)
    return server


def serve(warehouse: str | Path, *, transport: Literal["stdio", "http"] = "stdio", port: int = DEFAULT_PORT,
          lake_dirs: Iterable[str | Path] = ()) -> None:  # fmt: skip
    """Serve until stdin closes (stdio) or the process is interrupted (HTTP, on 127.0.0.1 only).

    Meant as the process's main: it drops the CircleCI token from this process's environment,
    since nothing here needs it."""
    os.environ.pop(TOKEN_ENV, None)
    server = create_server(warehouse, lake_dirs)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=LOOPBACK, port=port)
