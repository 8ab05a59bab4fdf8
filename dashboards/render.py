"""Render the dashboard: run `queries/*.sql` read-only against the warehouse, write HTML.

Output (`out_dir`): one page per entry of `spec.PAGES` (`index.html`, `credits.html`, ...)
and `plotly.min.js` written once beside them, so the pages work offline from disk; the dbt
docs site the build wrote beside the warehouse is copied as `dbt-docs.html` and linked.
Each page's rows are in `data/` beside it, as scripts: the page's own file loads with it,
the rows of one project or branch when the reader chooses it (`layout.py` says which rows
go where); `assets/dashboard.js` filters and draws them in the browser.
"""

from __future__ import annotations

import html
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from circleci_analytics.warehouse.build import docs_path

from .layout import DEFAULT_TOP, SCOPE_COLUMNS, Filters, page_data, script
from .queries import QUERY_DIR, QueryFile, QueryResult, dumps, load_queries, run_query
from .spec import PAGES, Page, queries_used

__all__ = ["DashboardResult", "render_dashboard"]

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = "plotly.min.js"
#: The dbt docs site of the warehouse (one offline HTML file), copied beside the pages.
DBT_DOCS = "dbt-docs.html"
FRESHNESS_QUERY = "data_freshness"
#: The folder of data files beside the pages (replaced whole by each render).
DATA_DIR = "data"


@dataclass(slots=True)
class DashboardResult:
    """What `render_dashboard` wrote and how long it took."""

    out_dir: Path
    pages: dict[str, Path]  # page slug -> HTML file
    page_bytes: dict[str, int]  # page slug -> bytes a page loads when opened (HTML and its data file)
    plotly_js: Path
    render_seconds: float
    dbt_docs: Path | None  # the model documentation site, when the build wrote one
    row_counts: dict[str, int]  # query name -> rows returned (0 when it failed)
    query_errors: dict[str, str] = field(default_factory=dict)  # query name -> why it failed
    extracted_at: str | None = None
    data_files: int = 0  # data files written, the on-demand ones included
    data_bytes: int = 0  # their total size

    @property
    def index(self) -> Path:
        return self.pages["index"]

    @property
    def total_page_bytes(self) -> int:
        return sum(self.page_bytes.values())


def _write_plotly(out_dir: Path) -> Path:
    from plotly.offline import get_plotlyjs

    target = out_dir / PLOTLY_JS
    js = get_plotlyjs().encode("utf-8")
    if not target.exists() or target.stat().st_size != len(js):
        target.write_bytes(js)
    return target


def _options(results: dict[str, QueryResult], pages: list[Page]) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    """Filter choices (projects, orgs, teams, the date span of all datasets), every (project,
    branch) pair and every (org, team) pair the datasets hold."""
    date_cols: dict[str, set[str]] = {}
    for page in pages:
        for el in page.get("elements", []):
            if el.get("date"):
                date_cols.setdefault(el["query"], set()).add(el["date"])
    projects: list[pl.Series] = []
    pairs: list[pl.DataFrame] = []
    owners: list[pl.DataFrame] = []
    dates: list[pl.Series] = []
    for name, res in results.items():
        frame = res.frame
        if set(SCOPE_COLUMNS) <= set(frame.columns):
            owners.append(frame.select(pl.col(c).cast(pl.String) for c in SCOPE_COLUMNS).unique())
        if "project_slug" in frame.columns:
            projects.append(frame.get_column("project_slug").cast(pl.String))
            if "branch" in frame.columns:
                pairs.append(
                    frame.select(pl.col("project_slug").cast(pl.String), pl.col("branch").cast(pl.String)).unique()
                )
        for col in date_cols.get(name, ()):
            if col in frame.columns:
                dates.append(frame.get_column(col).cast(pl.String).str.slice(0, 10))
    slugs = pl.concat(projects).drop_nulls().unique().sort().to_list() if projects else []
    branches = (
        pl.concat(pairs).unique().drop_nulls("branch")
        if pairs
        else pl.DataFrame(schema={"project_slug": pl.String, "branch": pl.String})
    )
    days = pl.concat(dates).drop_nulls() if dates else pl.Series([], dtype=pl.String)
    scope_pairs = (pl.concat(owners).unique().drop_nulls() if owners
                   else pl.DataFrame(schema={c: pl.String for c in SCOPE_COLUMNS}))  # fmt: skip
    options = {
        "projects": slugs,
        "orgs": scope_pairs.get_column("org_slug").unique().sort().to_list(),
        "teams": scope_pairs.get_column("team").unique().sort().to_list(),
        "min_date": days.min() if len(days) else None,
        "max_date": days.max() if len(days) else None,
        "has_branches": branches.height > 0,
    }
    return options, branches, scope_pairs


def _branch_index(branches: pl.DataFrame, projects: list[str]) -> dict[str, dict[str, Any]]:
    """The branch filter's search lists: every branch, and the branches of each project."""
    files = {"branches": {"names": branches.get_column("branch").unique().sort().to_list()}}
    index = {p: i for i, p in enumerate(projects)}
    for (project,), part in branches.partition_by("project_slug", as_dict=True).items():
        if project in index:
            files[f"branches/project-{index[project]}"] = {"names": part.get_column("branch").unique().sort().to_list()}
    return files


def _write_data(out: Path, files: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Write each payload as `data/<key>.js`; the number of files and their bytes."""
    total = 0
    for key, payload in files.items():
        target = out / DATA_DIR / f"{key}.js"
        target.parent.mkdir(parents=True, exist_ok=True)
        data = script(key, payload).encode("utf-8")
        target.write_bytes(data)
        total += len(data)
    return len(files), total


def _static_empty(item: dict[str, Any], res: QueryResult | None) -> str:
    """The empty-state text known before any filtering (query failed or returned nothing)."""
    if res is None or res.error:
        why = res.error if res else "query not run"
        return f"Not available: this warehouse has no such mart or column yet ({why})."
    if res.row_count == 0:
        return item.get("empty", "No data.")
    return ""


def _panel(el: dict[str, Any], res: QueryResult | None, query: QueryFile | None) -> str:
    empty = _static_empty(el, res)
    body = (
        '<div class="table-wrap"></div>'
        if el["type"] == "table"
        else f'<div class="chart" id="chart-{el["id"]}"></div>'
    )
    wide = " wide" if el["type"] == "table" or el.get("wide") else ""
    sql = ""
    if query is not None:
        sql = (
            f'<details class="sql"><summary>SQL: dashboards/queries/{html.escape(query.path.name)}</summary>'
            f"<pre>{html.escape(query.sql)}</pre></details>"
        )
    return (
        f'<section class="panel{wide}{" is-empty" if empty else ""}" data-element="{el["id"]}" '
        f'data-query="{el["query"]}"><h3>{html.escape(el["title"])}</h3>{body}'
        f'<p class="empty">{html.escape(empty)}</p>{sql}</section>'
    )


def _kpi(k: dict[str, Any], res: QueryResult | None) -> str:
    empty = _static_empty(k, res)
    return (
        f'<div class="kpi" data-kpi="{k["id"]}" data-query="{k["query"]}">'
        f'<div class="kpi-label">{html.escape(k["label"])}</div>'
        f'<div class="kpi-value" data-value="">–</div><div class="kpi-sub"></div><div class="kpi-delta"></div>'
        f'<p class="empty">{html.escape(empty)}</p></div>'
    )


def _page_html(page: Page, pages: list[Page], results: dict[str, QueryResult], queries: dict[str, QueryFile],
               options: dict[str, Any], extracted: str, docs: bool) -> str:  # fmt: skip
    data = {
        "slug": page["slug"],
        "page": {k: page.get(k, []) for k in ("kpis", "elements")},
        "options": options,
        "extracted_at": extracted,
    }
    payload = dumps(data)
    active = ' class="active" aria-current="page"'
    nav = "".join(
        f'<a data-page="{p["slug"]}.html" href="{p["slug"]}.html"{active if p is page else ""}>'
        f"{html.escape(p['title'])}</a>"
        for p in pages
    ) + (
        f'<a class="docs" href="{DBT_DOCS}" title="dbt docs: every model, column, test and lineage">Model docs</a>'
        if docs
        else ""
    )
    kpis = "".join(_kpi(k, results.get(k["query"])) for k in page.get("kpis", []))
    panels = "".join(_panel(e, results.get(e["query"]), queries.get(e["query"])) for e in page.get("elements", []))
    css = (ASSETS / "dashboard.css").read_text(encoding="utf-8")
    js = (ASSETS / "dashboard.js").read_text(encoding="utf-8").replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page["title"])} · CircleCI analytics</title>
<style>{css}</style>
<script src="{PLOTLY_JS}"></script>
</head><body data-page="{page["slug"]}">
<header><h1>CircleCI analytics</h1><nav>{nav}</nav>
<p class="extracted">Data extracted: <time id="extracted-at">{html.escape(extracted)}</time></p></header>
<section class="filters" aria-label="Filters">
<label>Org<select id="f-org"></select></label>
<label>Team<select id="f-team"></select></label>
<label>Project<select id="f-project"></select></label>
<label>Branch<input type="search" id="f-branch" list="f-branch-list" autocomplete="off" spellcheck="false"
 placeholder="All branches (type to search)"><datalist id="f-branch-list"></datalist></label>
<label>From<input type="date" id="f-from"></label>
<label>To<input type="date" id="f-to"></label>
<button type="button" id="f-reset">Reset</button>
<span class="note">Filters apply where a chart has that dimension (e.g. anomalies, flaky tests and right-sizing have no branch).
A job's team is its first matching ownership rule; workflows, recoveries, queue times and anomalies take their project's team.
Series charts show their top {DEFAULT_TOP} series; the rest are added up as "other".</span>
</section>
<main><h2>{html.escape(page["title"])}</h2><p class="intro">{html.escape(page.get("intro", ""))}</p>
{f'<div class="kpis">{kpis}</div>' if kpis else ""}
<div class="grid">{panels}</div></main>
<footer>Rendered from the warehouse marts by dashboards/render.py; every chart's SQL is in dashboards/queries/.</footer>
<script id="dash-data" type="application/json">{payload}</script>
<script>{js}</script>
</body></html>
"""


UNKNOWN_EXTRACTION = "unknown (the warehouse records no extraction or as-of date)"


def _extracted_at(res: QueryResult | None) -> str:
    """The extraction time if the warehouse records one, else its as-of date (last complete day)."""
    if res is None or res.error or not res.row_count:
        return UNKNOWN_EXTRACTION
    cols = res.columns
    if cols.get("extracted_at", [None])[0] is not None:
        return str(cols["extracted_at"][0]).replace("T", " ")[:16] + " UTC"
    as_of = cols.get("as_of_date", [None])[0]
    if as_of is None:
        return UNKNOWN_EXTRACTION
    built = cols.get("built_at", [None])[0]
    text = f"through {as_of} (last complete UTC day)"
    return text + (f", built {str(built).replace('T', ' ')[:16]} UTC" if built else "")


def render_dashboard(warehouse_path: str | Path, out_dir: str | Path, *, query_dir: Path = QUERY_DIR,
                     pages: list[Page] | None = None) -> DashboardResult:  # fmt: skip
    """Run every query file read-only against `warehouse_path` and write the pages to `out_dir`."""
    started = time.perf_counter()
    warehouse = Path(warehouse_path)
    if not warehouse.is_file():
        raise FileNotFoundError(f"warehouse not found: {warehouse} (build it first: circleci-analytics build)")
    pages = PAGES if pages is None else pages
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    queries = load_queries(query_dir)
    missing = sorted({q for p in pages for q in queries_used(p)} - queries.keys())
    if missing:
        raise ValueError(f"spec uses queries with no file in {query_dir}: {', '.join(missing)}")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        results = {name: run_query(con, q) for name, q in queries.items()}
    options, branches, scope_pairs = _options(results, pages)
    filters = Filters.of(options["projects"], branches.get_column("branch"), scope_pairs)
    options["branch_shards"] = filters.shards
    options["scopes"] = [list(scope) for scope in filters.scopes]
    extracted = _extracted_at(results.get(FRESHNESS_QUERY))
    plotly_js = _write_plotly(out)
    docs_site = docs_path(warehouse)
    dbt_docs = out / DBT_DOCS if docs_site.is_file() else None
    if dbt_docs is not None:
        shutil.copyfile(docs_site, dbt_docs)
    shutil.rmtree(out / DATA_DIR, ignore_errors=True)
    files = _branch_index(branches, options["projects"])
    written: dict[str, Path] = {}
    sizes: dict[str, int] = {}
    base_bytes = 0
    for page in pages:
        layout = page_data(page, results, filters)
        files.update(layout.on_demand)
        base = script(page["slug"], layout.base).encode("utf-8")
        (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
        (out / DATA_DIR / f"{page['slug']}.js").write_bytes(base)
        target = out / f"{page['slug']}.html"
        data = _page_html(page, pages, results, queries, options, extracted, dbt_docs is not None).encode("utf-8")
        target.write_bytes(data)
        written[page["slug"]] = target
        sizes[page["slug"]] = len(data) + len(base)
        base_bytes += len(base)
    count, total = _write_data(out, files)
    return DashboardResult(
        out_dir=out,
        pages=written,
        page_bytes=sizes,
        plotly_js=plotly_js,
        dbt_docs=dbt_docs,
        render_seconds=time.perf_counter() - started,
        row_counts={n: r.row_count for n, r in results.items()},
        query_errors={n: r.error for n, r in results.items() if r.error},
        extracted_at=None if extracted == UNKNOWN_EXTRACTION else extracted,
        data_files=count + len(pages),
        data_bytes=total + base_bytes,
    )
