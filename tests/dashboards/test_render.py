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


def test_result_describes_what_was_written(rendered):
    assert set(rendered.pages) == {p["slug"] for p in PAGES}
    for slug, path in rendered.pages.items():
        assert path.is_file() and path.stat().st_size == rendered.page_bytes[slug]
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
        assert f"Data extracted: <time id=\"extracted-at\">{rendered.extracted_at}</time>" in html
        for page in PAGES:  # navigation reaches every page
            assert f'href="{page["slug"]}.html"' in html


def test_pages_embed_only_their_own_query_rows(rendered):
    data = _embedded(rendered.pages["flakiness"])
    assert set(data["datasets"]) == {"flaky_tests", "flaky_trend", "flaky_waste_daily"}
    n = data["datasets"]["flaky_tests"]["n"]
    assert n == rendered.row_counts["flaky_tests"] > 0
    assert data["options"]["projects"] and data["options"]["min_date"] <= data["options"]["max_date"]


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


def test_server_refuses_a_directory_without_a_dashboard(tmp_path):
    with pytest.raises(FileNotFoundError, match="render it first"):
        start_dashboard_server(tmp_path)
