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
- ``data/<page>/scope-<s>.js`` (when an org or a team is chosen, no project or branch): what
  each series chart draws for scope `s` of `scopes` (an org, a team, or both), as the page's
  own file has it for everything (top series and "other");
- ``data/branches.js`` and ``data/branches/project-<i>.js``: branch names for the branch
  filter's search, loaded when the reader types in it.

Every file is a script that hands its payload to ``dashboardData(key, payload)``: pages
opened from disk (file://) may load scripts but not fetch() files, and served pages load
the same files. The project and branch files keep each row's org and team (`SCOPE_COLUMNS`),
which the browser filters on like the project. Rows are rolled up the way the browser aggregates them (sums of the
measures a chart uses; all-branch rows where a query provides them for measures that do not
add up), so a chart draws the same figures from any file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from .queries import QueryResult, dumps, frame_json
from .spec import Page

__all__ = ["DEFAULT_TOP", "OTHER", "SCOPE_COLUMNS", "Filters", "PageData", "branch_shard", "page_data", "shard_count"]

#: Series a chart draws before adding the rest up as "other" (spec key `top` overrides it).
DEFAULT_TOP = 10
OTHER = "other"
#: Branches per shard file, about: the shard count grows with the number of branches.
BRANCHES_PER_SHARD = 1000
MAX_SHARDS = 256
#: The columns of the org and team filters (a query without one is not filtered by it).
SCOPE_COLUMNS = ("org_slug", "team")
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


def shard_table(branches: pl.Series, shards: int) -> pl.DataFrame:
    """`branch` -> `__shard` (`branch_shard`) for every distinct name in `branches`."""
    unique = branches.drop_nulls().unique()
    return pl.DataFrame(
        {"branch": unique, "__shard": [branch_shard(n, shards) for n in unique.to_list()]},
        schema={"branch": pl.String, "__shard": pl.Int64},
    )


@dataclass(frozen=True)
class Filters:
    """What the filters choose from: the projects (a project's file is its index here), the
    branch shard count and each branch's shard, and the org/team scopes (a scope's file is
    its index in `scopes`: `[org, team]`, "" where that filter is not set)."""

    projects: list[str]
    shards: int
    branch_shards: pl.DataFrame  # shard_table of every branch
    scopes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, projects: list[str], branches: pl.Series, pairs: pl.DataFrame | None = None) -> Filters:
        """`pairs`: every (org_slug, team) pair the datasets hold."""
        shards = shard_count(branches.drop_nulls().n_unique())
        return cls(projects, shards, shard_table(branches, shards), scopes(pairs))


def scopes(pairs: pl.DataFrame | None) -> tuple[tuple[str, str], ...]:
    """The org/team filter combinations a page may be asked for: each org, each team, and each
    (org, team) pair that has rows."""
    if pairs is None or pairs.is_empty():
        return ()
    pairs = pairs.drop_nulls().unique().sort(["org_slug", "team"])
    orgs = pairs.get_column("org_slug").unique().sort().to_list()
    teams = pairs.get_column("team").unique().sort().to_list()
    return tuple([(o, "") for o in orgs] + [("", t) for t in teams] + [(o, t) for o, t in pairs.iter_rows()])


def in_scope(frame: pl.DataFrame, scope: tuple[str, str]) -> pl.DataFrame:
    """The rows of `frame` in `scope` (a filter whose column the frame lacks keeps every row)."""
    kept = [pl.col(c) == v for c, v in zip(SCOPE_COLUMNS, scope, strict=True) if v and c in frame.columns]
    return frame.filter(*kept) if kept else frame


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
    other = (
        rest.group_by(other_keys, maintain_order=True)
        .agg(pl.col(m).sum() for m in measures)
        .with_columns(*(pl.lit(OTHER).alias(c) for c in series), pl.lit(True).alias("is_other"))
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


def parts_json(frame: pl.DataFrame, key: str) -> dict[Any, dict[str, Any]]:
    """The dataset payload (`queries.frame_json`) of each part of `frame` by column `key`
    (without it), every text column dictionary-encoded per part: `{dict, codes}`, or just
    `{dict}` when every row holds its one value. Encoded for all parts at once (a file per
    project or shard is thousands of small parts)."""
    text = [c for c, t in frame.schema.items() if t == pl.String and c != key]
    coded = frame.with_columns((pl.col(c).rank("dense").over(key) - 1).alias(c) for c in text)
    dicts = {row[key]: row for row in frame.group_by(key).agg(
        *(pl.col(c).drop_nulls().unique().sort() for c in text), *(pl.col(c).null_count().alias(f"__nulls_{c}") for c in text)
    ).iter_rows(named=True)}  # fmt: skip
    out: dict[Any, dict[str, Any]] = {}
    for (value,), part in coded.partition_by(key, as_dict=True, maintain_order=True).items():
        if value is None:
            continue
        columns: dict[str, Any] = {}
        for c in part.columns:
            if c == key:
                continue
            if c not in text:
                columns[c] = part.get_column(c).to_list()
            elif len(dicts[value][c]) == 1 and not dicts[value][f"__nulls_{c}"]:
                columns[c] = {"dict": dicts[value][c]}
            else:
                columns[c] = {"dict": dicts[value][c], "codes": part.get_column(c).to_list()}
        out[value] = {"columns": columns, "n": part.height, "error": None}
    return out


def _chart_columns(charts: list[dict[str, Any]]) -> list[str]:
    """The columns `charts` draw from, in a stable order."""
    cols: list[str] = []
    for el in charts:
        cols += [c for c in (el.get("x"), el.get("date"), el.get("per_day")) if c]
        cols += [*el["series"], *measure_columns(el["y"]), rank_column(el)]
    return list(dict.fromkeys(cols))


def page_data(page: Page, results: dict[str, QueryResult], filters: Filters) -> PageData:
    """Split the query results `page` uses into its data files (see the module docstring)."""
    from .spec import queries_used

    split = split_queries(page)
    base: dict[str, Any] = {"datasets": {}, "views": {}, "split": {}}
    on_demand: dict[str, dict[str, Any]] = {}
    project_index = pl.DataFrame(
        {"project_slug": filters.projects, "__project": range(len(filters.projects))},
        schema={"project_slug": pl.String, "__project": pl.Int64},
    )

    def add(kind: str, rows: pl.DataFrame, column: str, name: str) -> None:
        for key, payload in parts_json(rows, column).items():
            on_demand.setdefault(f"{page['slug']}/{kind}-{key}", {"datasets": {}})["datasets"][name] = payload

    for name in queries_used(page):
        res = results.get(name)
        if res is None:
            continue
        if name not in split or res.error or res.frame.is_empty():
            base["datasets"][name] = res.as_json()
            continue
        charts = split[name]
        frame = _round_floats(res.frame)
        keep = [c for c in _chart_columns(charts) if c in frame.columns]
        has_project = "project_slug" in frame.columns
        project = ["project_slug"] if has_project and "project_slug" not in keep else []
        keep += [c for c in SCOPE_COLUMNS if c in frame.columns and c not in keep]
        rollup = branch_rollup(frame, charts)
        branch_rows = per_branch(frame)
        scoped = any(c in frame.columns for c in SCOPE_COLUMNS)
        base["split"][name] = {"project": has_project, "branch": branch_rows is not None, "scope": scoped,
                               "n": res.row_count}  # fmt: skip
        for el in charts:
            base["views"][el["id"]] = frame_json(chart_view(rollup, el))
            for i, scope in enumerate(filters.scopes if scoped else ()):
                rows = in_scope(rollup, scope)
                if not rows.is_empty():
                    views = on_demand.setdefault(f"{page['slug']}/scope-{i}", {"datasets": {}, "views": {}})
                    views.setdefault("views", {})[el["id"]] = frame_json(chart_view(rows, el))
        if has_project:
            add("project", rollup.select(keep + project).join(project_index, on="project_slug"), "__project", name)
        if branch_rows is not None:
            rows = branch_rows.select(keep + project + ["branch"]).join(filters.branch_shards, on="branch")
            add("branches", rows, "__shard", name)
    # Every project's and shard's file exists (a page asks for it whatever its rows).
    splits = base["split"].values()
    for kind, count in (("project", len(filters.projects) if any(v["project"] for v in splits) else 0),
                        ("branches", filters.shards if any(v["branch"] for v in splits) else 0),
                        ("scope", len(filters.scopes) if any(v["scope"] for v in splits) else 0)):  # fmt: skip
        for key in range(count):
            on_demand.setdefault(f"{page['slug']}/{kind}-{key}", {"datasets": {}})
    return PageData(base, on_demand)


def script(key: str, payload: dict[str, Any]) -> str:
    """A data file: hands `payload` to the page (see the module docstring)."""
    return f"dashboardData({dumps(key)},{dumps(payload)});\n"
