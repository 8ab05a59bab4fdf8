"""The renderer: offline pages, extraction date, per-query counts, empty states, serving."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from circleci_analytics.dashboards import PAGES, render_dashboard, start_dashboard_server
from circleci_analytics.dashboards.spec import NO_CREDITS, NO_TESTS, NO_WORKFLOWS

pytestmark = pytest.mark.xdist_group("dashboards")


def _embedded(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="dash-data" type="application/json">(.*?)</script>', text, re.S)
    assert match, f"{page.name}: no embedded data"
    return json.loads(match.group(1))


def _data_file(path: Path) -> tuple[str, dict]:
    """The key and payload a data/*.js file hands to the page."""
    match = re.fullmatch(r'dashboardData\(("[^"]*"),(.*)\);\n', path.read_text(encoding="utf-8"), re.S)
    assert match, f"{path}: not a data script"
    return json.loads(match.group(1)), json.loads(match.group(2))


def test_result_describes_what_was_written(rendered):
    assert set(rendered.pages) == {p["slug"] for p in PAGES}
    for slug, path in rendered.pages.items():
        own = rendered.out_dir / "data" / f"{slug}.js"
        assert path.is_file() and path.stat().st_size + own.stat().st_size == rendered.page_bytes[slug]
    files = [f for f in (rendered.out_dir / "data").rglob("*.js")]
    assert len(files) == rendered.data_files and sum(f.stat().st_size for f in files) == rendered.data_bytes
    assert rendered.plotly_js.name == "plotly.min.js" and rendered.plotly_js.stat().st_size > 1_000_000
    assert rendered.index == rendered.out_dir / "index.html"
    assert rendered.query_errors == {}
    assert rendered.row_counts["credits_by_project"] > 0
    assert rendered.render_seconds > 0
    assert rendered.extracted_at and "2026-05-31" in rendered.extracted_at


def test_dbt_docs_ship_with_the_dashboard_and_every_page_links_them(rendered):
    """The build's dbt docs site (one file, no CDN) is copied beside the pages and linked."""
    assert rendered.dbt_docs == rendered.out_dir / "dbt-docs.html"
    docs = rendered.dbt_docs.read_text(encoding="utf-8")
    assert "fct_mttr_weekly" in docs and "unique_combination_of_columns" in docs
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?(https?:)?//""", docs)
    for path in rendered.pages.values():
        assert 'href="dbt-docs.html"' in path.read_text(encoding="utf-8"), path.name


def test_pages_are_offline_and_show_the_extraction_date(rendered):
    for path in rendered.pages.values():
        html = path.read_text(encoding="utf-8")
        assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?(https?:)?//""", html), path.name
        assert '<script src="plotly.min.js"></script>' in html
        assert f'Data extracted: <time id="extracted-at">{rendered.extracted_at}</time>' in html
        for page in PAGES:  # navigation reaches every page
            assert f'href="{page["slug"]}.html"' in html


def test_pages_load_only_their_own_query_rows(rendered):
    page = _embedded(rendered.pages["flakiness"])
    assert "datasets" not in page and page["slug"] == "flakiness"
    assert page["options"]["projects"] and page["options"]["min_date"] <= page["options"]["max_date"]
    key, data = _data_file(rendered.out_dir / "data" / "flakiness.js")
    assert key == "flakiness"
    # tables and bar lists get their rows whole; series charts the rows they draw unfiltered
    assert set(data["datasets"]) == {"flaky_tests"}
    assert data["datasets"]["flaky_tests"]["n"] == rendered.row_counts["flaky_tests"] > 0
    assert set(data["views"]) == {"flaky_trend", "flaky_waste"}
    assert set(data["split"]) == {"flaky_trend", "flaky_waste_daily"}


def test_no_page_carries_every_branch(rendered):
    """Branch names are in data/branches*.js, loaded when the reader searches them; a page
    holds only the branches of the rows it shows whole (the KPIs' last 14 days)."""
    _, index = _data_file(rendered.out_dir / "data" / "branches.js")
    names = index["names"]
    assert names == sorted(names) and "main" in names and len(names) > 2
    for slug, path in rendered.pages.items():
        assert not any(f'"{n}"' in path.read_text(encoding="utf-8") for n in names if n != "main"), slug
        _, data = _data_file(rendered.out_dir / "data" / f"{slug}.js")
        for view in data["views"].values():
            assert "branch" not in view["columns"], slug
        whole = {b for ds in data["datasets"].values() for b in _values(ds["columns"].get("branch", []))}
        assert whole <= set(names)


def _values(column) -> list:
    return [column["dict"][k] for k in column["codes"] if k is not None] if isinstance(column, dict) else column


def test_every_project_and_branch_shard_has_a_file(rendered):
    projects = _embedded(rendered.pages["credits"])["options"]["projects"]
    shards = _embedded(rendered.pages["credits"])["options"]["branch_shards"]
    for slug in ("index", "credits", "reliability", "flakiness"):
        for i in range(len(projects)):
            assert _data_file(rendered.out_dir / "data" / slug / f"project-{i}.js")[0] == f"{slug}/project-{i}"
    for slug in ("index", "credits", "reliability"):
        for k in range(shards):
            assert _data_file(rendered.out_dir / "data" / slug / f"branches-{k}.js")[0] == f"{slug}/branches-{k}"
    assert not (rendered.out_dir / "data" / "rightsizing").exists()


def test_empty_warehouse_pages_say_why(empty_warehouse_path, tmp_path):
    result = render_dashboard(empty_warehouse_path, tmp_path)
    assert result.query_errors == {}
    assert all(n == 0 for name, n in result.row_counts.items() if name != "data_freshness")
    pages = {slug: p.read_text(encoding="utf-8") for slug, p in result.pages.items()}
    assert NO_TESTS in pages["flakiness"]
    assert NO_CREDITS in pages["credits"] and NO_CREDITS in pages["index"]
    assert NO_WORKFLOWS in pages["reliability"]
    assert 'class="panel is-empty"' in pages["rightsizing"] or 'class="panel wide is-empty"' in pages["rightsizing"]


def test_warehouse_without_marts_renders_with_reasons(tmp_path):
    import duckdb

    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()
    result = render_dashboard(bare, tmp_path / "out")
    assert "fct_flaky_tests" in result.query_errors["flaky_tests"]
    assert result.extracted_at is None
    html = result.pages["flakiness"].read_text(encoding="utf-8")
    assert "Not available: this warehouse has no such mart or column yet" in html
    assert "unknown (the warehouse records no extraction" in html


def test_missing_warehouse_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="warehouse not found"):
        render_dashboard(tmp_path / "nope.duckdb", tmp_path / "out")


def test_render_opens_the_warehouse_read_only(warehouse_path, tmp_path):
    before = warehouse_path.stat().st_mtime_ns
    render_dashboard(warehouse_path, tmp_path)
    assert warehouse_path.stat().st_mtime_ns == before
    assert not Path(str(warehouse_path) + ".wal").exists()


def test_server_serves_the_pages(rendered):
    with start_dashboard_server(rendered.out_dir) as server:
        r = httpx.get(server.url)
        assert r.status_code == 200 and "CircleCI analytics" in r.text
        assert httpx.get(server.url.replace("index.html", "plotly.min.js")).status_code == 200
        data = httpx.get(server.url.replace("index.html", "data/index.js"))
        assert data.status_code == 200 and data.text.startswith('dashboardData("index",')


def test_server_refuses_a_directory_without_a_dashboard(tmp_path):
    with pytest.raises(FileNotFoundError, match="render it first"):
        start_dashboard_server(tmp_path)
