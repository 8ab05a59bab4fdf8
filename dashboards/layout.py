"""Where a page's data goes: what it loads when it opens, and what it loads on demand.

Thirteen months of a large organisation is millions of chart rows (a row per week, project,
workflow and branch); a page carries only what it draws unfiltered. For each page:

- ``data/<page>.js`` (loaded with the page): datasets used by KPIs, tables and bar lists
  whole (they are small and filtered in the browser), and for each series chart the rows it
  draws with no project or branch chosen: branches rolled up, grouped by the chart's x and
  series, its `top` series kept and the rest added up as ``other``;
- ``data/<page>/project-<i>.js`` (when project `i` of `projects` is chosen): each chart
  dataset's rows of that project, branches rolled up;
- ``data/<page>/branches-<k>.js`` (when a branch is chosen): each chart dataset's per-branch
  rows of every branch whose name falls in shard `k` (`branch_shard`);
- ``data/branches.js`` and ``data/branches/project-<i>.js``: branch names for the branch
  filter's search, loaded when the reader types in it.

Every file is a script that hands its payload to ``dashboardData(key, payload)``: pages
opened from disk (file://) may load scripts but not fetch() files, and served pages load
the same files. Rows are rolled up the way the browser aggregates them (sums of the
measures a chart uses; all-branch rows where a query provides them for measures that do not
add up), so a chart draws the same figures from any file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from .queries import QueryResult, dumps, frame_json
from .spec import Page

__all__ = ["DEFAULT_TOP", "OTHER", "PageData", "branch_shard", "page_data", "shard_count"]

#: Series a chart draws before adding the rest up as "other" (spec key `top` overrides it).
DEFAULT_TOP = 10
OTHER = "other"
#: Branches per shard file, about: the shard count grows with the number of branches.
BRANCHES_PER_SHARD = 400
MAX_SHARDS = 256
#: Decimals kept in chart rows.
_FLOAT_DIGITS = 4


def shard_count(branches: int) -> int:
    """How many branch shard files a dashboard of `branches` distinct branches uses."""
    return max(1, min(MAX_SHARDS, math.ceil(branches / BRANCHES_PER_SHARD)))


def branch_shard(name: str, shards: int) -> int:
    """The shard of branch `name`: 32-bit FNV-1a over its code points, mod `shards`.

    assets/dashboard.js computes the same over a JavaScript string, so a page finds the
    file of any branch (from the URL, say) without loading the list of branches."""
    h = 0x811C9DC5
    for char in name:
        h = ((h ^ ord(char)) * 0x01000193) & 0xFFFFFFFF
    return h % shards


def branch_shards(names: pl.Series, shards: int) -> pl.Series:
    """`branch_shard` of every name in `names` (computed once per distinct name)."""
    unique = names.unique().drop_nulls()
    lookup = pl.DataFrame(
        {"name": unique, "shard": [branch_shard(n, shards) for n in unique.to_list()]},
        schema={"name": pl.String, "shard": pl.Int64},
    )
    return names.to_frame("name").join(lookup, on="name", how="left", maintain_order="left").get_column("shard")


def measure_columns(measure: dict[str, Any]) -> list[str]:
    return [measure["sum"]] if "sum" in measure else list(measure["ratio"])


def rank_column(el: dict[str, Any]) -> str:
    """The column a chart ranks its series by: `rank`, else the sum or the ratio's denominator."""
    return el.get("rank") or measure_columns(el["y"])[-1]


def _is_series(el: dict[str, Any]) -> bool:
    return el.get("type") == "series"


def split_queries(page: Page) -> dict[str, list[dict[str, Any]]]:
    """Queries of `page` whose rows are split into per-chart, per-project and per-branch
    files: those read only by series charts (query -> its charts)."""
    uses: dict[str, list[dict[str, Any]]] = {}
    whole: set[str] = set()
    for item in [*page.get("kpis", []), *page.get("elements", [])]:
        if _is_series(item):
            uses.setdefault(item["query"], []).append(item)
        else:
            whole.add(item["query"])
        if item.get("markers"):
            whole.add(item["markers"]["query"])
    return {q: els for q, els in uses.items() if q not in whole}


def _dimensions(frame: pl.DataFrame, charts: list[dict[str, Any]], measures: list[str]) -> list[str]:
    """Columns a rollup keeps: text, flags and the charts' x/date/period columns."""
    declared = {c for el in charts for c in (el.get("x"), el.get("date"), el.get("per_day")) if c}
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in measures and name != "branch" and (dtype in (pl.String, pl.Boolean) or name in declared)
    ]


def branch_rollup(frame: pl.DataFrame, charts: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows with branches rolled up: the all-branch rows where the query has them, else the
    charts' measures summed over branches (the columns no chart uses are dropped)."""
    if "all_branches" in frame.columns:
        return frame.filter(pl.col("all_branches"))
    measures = sorted({c for el in charts for c in [*measure_columns(el["y"]), rank_column(el)]} & set(frame.columns))
    dims = _dimensions(frame, charts, measures)
    if "branch" not in frame.columns:
        return frame.select(dims + measures)
    return frame.group_by(dims, maintain_order=True).agg(pl.col(m).sum() for m in measures)


def per_branch(frame: pl.DataFrame) -> pl.DataFrame | None:
    """Rows of single branches (None when the query has no branch dimension)."""
    if "branch" not in frame.columns:
        return None
    if "all_branches" in frame.columns:
        return frame.filter(~pl.col("all_branches"))
    return frame.filter(pl.col("branch").is_not_null())


def chart_view(rollup: pl.DataFrame, el: dict[str, Any], top: int | None = None) -> pl.DataFrame:
    """What series chart `el` draws with no project or branch chosen: `rollup` grouped by x
    and series, its top series by `rank_column` and, where the measures add up, the rest
    as one series "other" (`is_other` true; its series columns hold "other")."""
    top = el.get("top", DEFAULT_TOP) if top is None else top
    keys = [c for c in (el["x"], el.get("per_day")) if c] + list(el["series"])
    measures = list(dict.fromkeys([*measure_columns(el["y"]), rank_column(el)]))
    additive = not el.get("branch_rollup")
    if additive:
        grouped = rollup.group_by(keys, maintain_order=True).agg(pl.col(m).sum() for m in measures)
    else:  # one row per x and series (all-branch rows of a query's grouping sets)
        grouped = rollup.select(keys + measures)
    grouped = grouped.with_columns(pl.lit(False).alias("is_other"))
    series = list(el["series"])
    if not series:
        return grouped
    totals = grouped.group_by(series).agg(pl.col(rank_column(el)).sum().alias("__rank"))
    if totals.height <= top:
        return grouped
    kept = totals.sort(["__rank", *series], descending=[True] + [False] * len(series), nulls_last=True).head(top)
    shown = grouped.join(kept.select(series), on=series, how="semi", nulls_equal=True)
    if not additive:
        return shown
    rest = grouped.join(kept.select(series), on=series, how="anti", nulls_equal=True)
    other_keys = [c for c in keys if c not in series]
    other = rest.group_by(other_keys, maintain_order=True).agg(pl.col(m).sum() for m in measures).with_columns(
        *(pl.lit(OTHER).alias(c) for c in series), pl.lit(True).alias("is_other")
    )
    return pl.concat([shown, other.select(shown.columns)], how="vertical_relaxed")


def _round_floats(frame: pl.DataFrame) -> pl.DataFrame:
    """Chart rows need no more than a few decimals (KPIs and tables keep every digit)."""
    return frame.with_columns(pl.col(n).round(_FLOAT_DIGITS) for n, t in frame.schema.items() if t.is_float())


@dataclass
class PageData:
    """The data files of one page: its own (`base`) and those loaded on demand (key -> payload)."""

    base: dict[str, Any]
    on_demand: dict[str, dict[str, Any]]


def page_data(page: Page, results: dict[str, QueryResult], projects: list[str], shards: int) -> PageData:
    """Split the query results `page` uses into its data files (see the module docstring)."""
    from .spec import queries_used

    split = split_queries(page)
    base: dict[str, Any] = {"datasets": {}, "views": {}, "split": {}}
    on_demand: dict[str, dict[str, Any]] = {}
    project_index = {p: i for i, p in enumerate(projects)}
    for name in queries_used(page):
        res = results.get(name)
        if res is None:
            continue
        if name not in split or res.error or res.frame.is_empty():
            base["datasets"][name] = res.as_json()
            continue
        charts = split[name]
        frame = _round_floats(res.frame)
        rollup = branch_rollup(frame, charts)
        branch_rows = per_branch(frame)
        has_project = "project_slug" in frame.columns
        base["split"][name] = {"project": has_project, "branch": branch_rows is not None, "n": res.row_count}
        for el in charts:
            base["views"][el["id"]] = frame_json(chart_view(rollup, el))
        if has_project:
            for key, part in _parts(rollup, "project_slug", lambda p: project_index.get(p)):
                on_demand.setdefault(f"{page['slug']}/project-{key}", {"datasets": {}})["datasets"][name] = frame_json(part)
        if branch_rows is not None:
            shard = branch_shards(branch_rows.get_column("branch"), shards).alias("__shard")
            for key, part in _parts(branch_rows.with_columns(shard), "__shard", lambda k: k):
                on_demand.setdefault(f"{page['slug']}/branches-{key}", {"datasets": {}})["datasets"][name] = frame_json(
                    part.drop("__shard")
                )
    # Every project's and shard's file exists (a page asks for it whatever its rows).
    splits = base["split"].values()
    for kind, count in (("project", len(projects) if any(v["project"] for v in splits) else 0),
                        ("branches", shards if any(v["branch"] for v in splits) else 0)):  # fmt: skip
        for key in range(count):
            on_demand.setdefault(f"{page['slug']}/{kind}-{key}", {"datasets": {}})
    return PageData(base, on_demand)


def _parts(frame: pl.DataFrame, column: str, key_of: Any) -> Iterator[tuple[Any, pl.DataFrame]]:
    for (value,), part in frame.partition_by(column, as_dict=True, maintain_order=True).items():
        key = key_of(value)
        if key is not None:
            yield key, part


def script(key: str, payload: dict[str, Any]) -> str:
    """A data file: hands `payload` to the page (see the module docstring)."""
    return f"dashboardData({dumps(key)},{dumps(payload)});\n"
