"""Dashboards: offline HTML pages rendered from the warehouse marts (read-only).

    from circleci_analytics.dashboards import render_dashboard, serve_dashboard
    result = render_dashboard("data/warehouse.duckdb", "data/dashboard")
    serve_dashboard("data/dashboard", port=8050)     # blocks; Ctrl-C to stop

Every chart's SQL is a file in `dashboards/queries/` (BI tools reuse them); the page
layout is declared in `spec.py`; which rows each page's data files hold is `layout.py`'s
job; filtering and drawing happen in the browser (`assets/dashboard.js`).
"""

from __future__ import annotations

from .queries import QUERY_DIR, QueryFile, QueryResult, load_queries, run_query
from .render import DashboardResult, render_dashboard
from .serve import DashboardServer, serve_dashboard, start_dashboard_server
from .spec import PAGES

__all__ = [
    "PAGES",
    "QUERY_DIR",
    "DashboardResult",
    "DashboardServer",
    "QueryFile",
    "QueryResult",
    "load_queries",
    "render_dashboard",
    "run_query",
    "serve_dashboard",
    "start_dashboard_server",
]
