"""Tool arguments shared by several tools: their types (what the input schema shows an
agent) and how a value is checked against the warehouse (a bad one is a tool error that
names the argument and lists what would have worked)."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Literal, overload

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from circleci_analytics.agent.access import Reader

__all__ = ["READ_ONLY", "EndDate", "Period", "Project", "StartDate", "TopN", "bad", "meta", "read_only_tool",
           "resolve_period", "resolve_project"]  # fmt: skip

#: Every tool only reads the warehouse: same arguments, same answer (until the next build).
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def read_only_tool(server: MCPServer) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function as a tool: its docstring (dedented) is the description agents read."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        server.add_tool(fn, description=inspect.getdoc(fn), annotations=READ_ONLY)
        return fn

    return register


Project = Annotated[str | None, Field(
    description="Project slug (e.g. gh/acme/web or circleci/<org-id>/<project-id>) or project name, as "
                "warehouse_overview lists them; omit for every project.")]  # fmt: skip
TopN = Annotated[int, Field(ge=1, le=100, description="How many rows to return (1-100), largest first.")]
Period = Literal["last_7_days", "last_30_days", "last_90_days", "month_to_date", "previous_month", "all"]
StartDate = Annotated[dt.date | None, Field(
    description="First day, inclusive (ISO date, UTC, e.g. 2026-05-01). With start_date or end_date, "
                "`period` is ignored: start defaults to the first day of data, end to as_of_date.")]  # fmt: skip
EndDate = Annotated[dt.date | None, Field(description="Last day, inclusive (ISO date, UTC); default as_of_date.")]

_PERIOD_DAYS = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}
_LISTED = 15


def bad(argument: str, message: str, known: list[Any] | None = None, listed: int = _LISTED) -> ToolError:
    """A tool error naming the argument, with up to `listed` values that exist."""
    if known is not None:
        shown = ", ".join(repr(k) for k in known[:listed])
        more = f" and {len(known) - listed} more" if len(known) > listed else ""
        message += f"; known: {shown}{more}" if known else "; the warehouse has none"
    return ToolError(f"{argument}: {message}")


def meta(db: Reader) -> dict[str, Any]:
    """The build's parameters (`warehouse_meta`: as_of_date, price_per_credit, headroom, built_at), as Python values."""
    found = db.raw("select * from warehouse_meta")
    row = found[0] if found else None
    if row is None or row.get("as_of_date") is None:
        raise ToolError(
            "the warehouse has no as_of_date (warehouse_meta is empty): nothing has been built from data yet"
        )
    return row


@overload
def resolve_project(db: Reader, value: str, argument: str = ...) -> str: ...
@overload
def resolve_project(db: Reader, value: str | None, argument: str = ...) -> str | None: ...
def resolve_project(db: Reader, value: str | None, argument: str = "project") -> str | None:
    """The project slug for a slug or a (unique) project name; None stays None."""
    if value is None:
        return None
    projects = db.rows("select project_slug, project_name from dim_projects order by project_slug")
    if any(p["project_slug"] == value for p in projects):
        return value
    named = [p["project_slug"] for p in projects if p["project_name"] == value]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise bad(argument, f"{len(named)} projects are named {value!r}; pass the slug", named)
    raise bad(argument, f"unknown project {value!r}", [p["project_slug"] for p in projects])


def resolve_period(period: Period, start: dt.date | None, end: dt.date | None, as_of: dt.date,
                   first_day: dt.date | None) -> tuple[dt.date, dt.date]:  # fmt: skip
    """Inclusive (start, end) days: explicit dates win over the named period, which is
    relative to `as_of` (the warehouse's last complete day)."""
    if start is not None or end is not None:
        start, end = start or first_day or as_of, end or as_of
        if start > end:
            raise bad("start_date", f"{start.isoformat()} is after end_date {end.isoformat()}")
        return start, end
    if period in _PERIOD_DAYS:
        return as_of - dt.timedelta(days=_PERIOD_DAYS[period] - 1), as_of
    if period == "month_to_date":
        return as_of.replace(day=1), as_of
    if period == "previous_month":
        last = as_of.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    return min(first_day or as_of, as_of), as_of
