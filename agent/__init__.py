"""An MCP server over the warehouse, for agents: read-only tools for the questions the
product answers (credits, forecast, flaky tests, MTTR, right-sizing), the marts' catalogue
and a bounded read-only SQL tool.

Public surface::

    server = create_server("data/warehouse.duckdb", lake_dirs=["data/lake"])  # an mcp MCPServer
    serve("data/warehouse.duckdb", transport="stdio")  # or "http" on 127.0.0.1:<port>

The CLI runs it as `circleci-analytics mcp`. Tools only read marts (defined in `sql/`);
the warehouse file is opened read-only for every call (`access`).
"""

from circleci_analytics.agent.access import lake_dirs_for
from circleci_analytics.agent.server import DEFAULT_PORT, create_server, serve

__all__ = ["DEFAULT_PORT", "create_server", "lake_dirs_for", "serve"]
