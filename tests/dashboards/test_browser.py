"""The dashboard in headless Chromium: no console errors, every chart drawn, KPIs equal the
marts, filters re-draw charts (loading a project's or a branch's data file on demand), the
branch filter searches names it loads when typed in, top series and "other" add up to the
total, week-over-week changes without earlier data show n/a. Screenshot:
test-artifacts/dashboard.png (git-ignored).

Uses the system Chromium (Debian package `chromium`, installed by .ci/run) through
Playwright's Python API; never `playwright install`.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from expected_kpis import expected_kpis

from circleci_analytics.dashboards import PAGES, render_dashboard
from circleci_analytics.dashboards.layout import branch_shard

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("dashboards"),
    pytest.mark.skipif(
        not CHROMIUM.exists() and not shutil.which("chromium"),
        reason="chromium is not installed (apt-get install -y chromium); browser tests need it",
    ),
]


@pytest.fixture(scope="module")
def browser(warehouse_path, week_of_tests_warehouse_path):
    """Chromium (the warehouses are built first: the simulator cannot run inside Playwright's loop)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    executable = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shared_page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    yield pg, problems
    ctx.close()


@pytest.fixture
def page(shared_page):
    """One page for the module (loading plotly.min.js is the slow part); each test fails on
    any console error, uncaught exception or failed request that happened during it."""
    pg, problems = shared_page
    problems.clear()
    yield pg
    assert not problems, problems


def _open(pg, rendered, slug: str, hash_: str = "") -> None:
    """Show page `slug` with filters from `hash_`; reuses the loaded page when possible."""
    url = rendered.pages[slug].as_uri()
    if pg.url.split("#")[0] == url and not hash_:
        pg.click("#f-reset")  # same page: clear the filters (re-draws) instead of reloading
    else:
        pg.goto(url + hash_)
    _drawn(pg)


def _drawn(pg) -> None:
    """Wait until the charts are drawn (a filter change clears the mark until they are)."""
    pg.wait_for_selector("body[data-drawn]")


def _choose_branch(pg, name: str) -> None:
    pg.fill("#f-branch", name)
    pg.dispatch_event("#f-branch", "change")
    _drawn(pg)


def _loaded(pg) -> list[str]:
    """The data files the page has asked for so far (data/<key>.js)."""
    return pg.evaluate("() => window.dashboard.requested.map(key => key + '.js')")


def _kpi(pg, kpi_id: str) -> tuple[float | None, str]:
    el = pg.locator(f'[data-kpi="{kpi_id}"] .kpi-value')
    raw = el.get_attribute("data-value")
    return (float(raw) if raw else None), el.inner_text()


def _trace_names(pg, chart_id: str) -> list[str]:
    return pg.evaluate(f"() => document.getElementById('chart-{chart_id}').data.map(t => t.name)")


@pytest.mark.parametrize("slug", [p["slug"] for p in PAGES])
def test_page_loads_and_every_chart_renders(page, rendered, slug):
    _open(page, rendered, slug)
    assert rendered.extracted_at in page.locator("#extracted-at").inner_text()
    spec = next(p for p in PAGES if p["slug"] == slug)
    for el in spec["elements"]:
        box = page.locator(f'[data-element="{el["id"]}"]')
        assert box.locator(".empty").inner_text() == "", f"{el['id']} shows an empty state on the tiny warehouse"
        if el["type"] == "table":
            assert box.locator("tbody tr").count() > 0, el["id"]
        else:
            assert box.locator(".chart svg.main-svg, .chart canvas").count() > 0, f"{el['id']} has no plot"
            assert page.evaluate(f"() => document.getElementById('chart-{el['id']}').data.length") > 0
    for k in spec.get("kpis", []):
        assert _kpi(page, k["id"])[0] is not None, k["id"]


def test_kpis_equal_the_marts(page, rendered, con):
    _open(page, rendered, "index")
    expected = expected_kpis(con)
    for kpi_id, value in expected.items():
        shown, text = _kpi(page, kpi_id)
        assert value is not None, f"{kpi_id}: the tiny warehouse should have data for it"
        assert math.isclose(shown, value, rel_tol=1e-9, abs_tol=1e-9), (kpi_id, shown, value)
    assert _kpi(page, "credits_mtd")[1] == f"{expected['credits_mtd']:,.0f}"
    assert _kpi(page, "success_rate")[1] == f"{expected['success_rate'] * 100:.1f}%"
    assert _kpi(page, "flaky_tests")[1] == f"{expected['flaky_tests']:.0f}"
    for kpi_id in expected:
        assert "WoW" in page.locator(f'[data-kpi="{kpi_id}"] .kpi-delta').inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def test_project_filter_redraws_charts_and_kpis(page, rendered, con):
    _open(page, rendered, "credits")
    before = _trace_names(page, "credits_project")
    projects = page.evaluate("() => window.dashboard.data.options.projects")
    assert len([n for n in before if n in projects]) == len(projects) > 1
    project = projects[-1]
    page.select_option("#f-project", project)
    _drawn(page)
    after = _trace_names(page, "credits_project")
    assert [n for n in after if n != "anomaly"] == [project]
    assert f"project={project}".replace("/", "%2F") in page.url
    # the project's rows came from its own file, loaded when it was chosen
    assert f"credits/project-{projects.index(project)}.js" in _loaded(page)
    # the filter follows the reader to the overview, whose KPIs now cover that project only
    page.click('nav a[data-page="index.html"]')
    _drawn(page)
    assert page.input_value("#f-project") == project
    expected = expected_kpis(con, project)
    assert math.isclose(_kpi(page, "credits_mtd")[0], expected["credits_mtd"], rel_tol=1e-9)
    assert _kpi(page, "flaky_tests")[0] == expected["flaky_tests"]
    page.click("#f-reset")
    _drawn(page)
    assert math.isclose(_kpi(page, "credits_mtd")[0], expected_kpis(con)["credits_mtd"], rel_tol=1e-9)


def test_date_range_filter_limits_chart_data(page, rendered):
    _open(page, rendered, "index")
    xs = lambda: page.evaluate("() => document.getElementById('chart-overview_credits').data[0].x")  # noqa: E731
    all_days = xs()
    assert len(all_days) > 14
    start, end = sorted(all_days)[3], sorted(all_days)[9]
    page.fill("#f-from", start)
    page.dispatch_event("#f-from", "change")
    page.fill("#f-to", end)
    page.dispatch_event("#f-to", "change")
    _drawn(page)
    days = xs()
    assert days and min(days) >= start and max(days) <= end and len(days) < len(all_days)


def test_branch_filter_uses_per_branch_percentiles(page, rendered):
    _open(page, rendered, "reliability")
    all_y = page.evaluate("() => document.getElementById('chart-duration_p95').data.map(t => t.y)")
    branches = page.evaluate("() => window.dashboard.load('branches').then(index => index.names)")
    assert branches
    _choose_branch(page, branches[0])
    one_y = page.evaluate("() => document.getElementById('chart-duration_p95').data.map(t => t.y)")
    assert one_y != all_y
    shards = page.evaluate("() => window.dashboard.data.options.branch_shards")
    assert f"reliability/branches-{branch_shard(branches[0], shards)}.js" in _loaded(page)


def test_branch_search_loads_names_only_when_typed_in(page, rendered):
    _open(page, rendered, "credits")
    assert "branches.js" not in _loaded(page)  # no page carries the list of branches
    names = page.evaluate("() => window.dashboard.load('branches').then(index => index.names)")
    page.fill("#f-branch", "")
    page.type("#f-branch", "mai")
    page.wait_for_function(
        "() => { const os = Array.from(document.querySelectorAll('#f-branch-list option'));"
        " return os.length > 0 && os.every(o => o.value.toLowerCase().includes('mai')); }"
    )
    suggested = page.eval_on_selector_all("#f-branch-list option", "os => os.map(o => o.value)")
    assert suggested and suggested[0] == "main" and all("mai" in n.lower() for n in suggested)
    assert set(suggested) <= set(names)
    page.fill("#f-branch", suggested[0])  # as when the suggestion is picked
    page.press("#f-branch", "Enter")
    _drawn(page)
    assert "branch=main" in page.url
    # the branch follows the reader to another page
    page.click('nav a[data-page="reliability.html"]')
    _drawn(page)
    assert page.input_value("#f-branch") == "main"


def test_branch_shard_is_the_same_in_python_and_javascript(page, rendered):
    _open(page, rendered, "index")
    names = ["main", "fix/../'quoted\" ünïcode=branch", "emoji-😀-branch", "", "release/2026.05"]
    for shards in (1, 7, 256):
        js = page.evaluate(
            "([names, shards]) => { const o = window.dashboard.data.options, was = o.branch_shards; o.branch_shards = shards;"
            " const r = names.map(n => window.dashboard.shardOf(n)); o.branch_shards = was; return r; }",
            [names, shards],
        )
        assert js == [branch_shard(n, shards) for n in names]


def test_filters_that_match_nothing_say_so(page, rendered):
    _open(page, rendered, "flakiness", "#from=1999-01-01&to=1999-01-31")
    assert "No rows match the current filters" in page.locator('[data-element="flaky_trend"] .empty').inner_text()


def test_top_series_and_other_add_up_to_the_total(browser, warehouse_path, con, tmp_path):
    """With one series shown, "other" holds the rest: per day, the two add up to all projects'
    credits, unfiltered (the page's own file, reduced when rendered) and in the browser."""
    pages = [{**p, "elements": [{**e, "top": 1} for e in p.get("elements", [])]} for p in PAGES]
    result = render_dashboard(warehouse_path, tmp_path / "top1", pages=pages)
    ctx = browser.new_context()
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(result.pages["credits"].as_uri())
    _drawn(pg)
    traces = pg.evaluate("() => document.getElementById('chart-credits_project').data"
                         ".filter(t => t.name !== 'anomaly').map(t => [t.name, t.x, t.y])")  # fmt: skip
    assert [t[0] for t in traces][-1] == "other" and len(traces) == 2
    per_day: dict[str, float] = {}
    for _, xs, ys in traces:
        for x, y in zip(xs, ys):
            per_day[x[:10]] = per_day.get(x[:10], 0.0) + (y or 0.0)
    expected = dict(con.execute(
        "select cast(spend_date as varchar), sum(total_credits)::double from fct_credit_spend_daily group by all"
    ).fetchall())  # fmt: skip
    assert per_day.keys() == expected.keys()
    for day, credits in expected.items():  # tiny's history is all daily periods
        assert math.isclose(per_day[day], credits, rel_tol=1e-6), day
    # a project chosen: its own rows, no "other"
    project = traces[0][0]
    pg.select_option("#f-project", project)
    _drawn(pg)
    assert [n for n in _trace_names(pg, "credits_project") if n != "anomaly"] == [project]
    assert errors == []
    ctx.close()


def test_week_over_week_without_earlier_data_is_na(browser, week_of_tests_warehouse_path, tmp_path):
    """A first demo with a week of test results: "flaky tests" has no week-ago figure."""
    result = render_dashboard(week_of_tests_warehouse_path, tmp_path / "week")
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(result.pages["index"].as_uri())
    _drawn(pg)
    flaky = pg.locator('[data-kpi="flaky_tests"] .kpi-delta')
    assert flaky.inner_text().startswith("n/a WoW") and flaky.get_attribute("data-delta") == ""
    assert _kpi(pg, "flaky_tests")[0] is not None  # the current figure is still shown
    for kpi_id in ("credits_mtd", "success_rate", "mttr"):
        assert not pg.locator(f'[data-kpi="{kpi_id}"] .kpi-delta').inner_text().startswith("n/a"), kpi_id
    ctx.close()


def _per_day(pg, chart_id: str) -> dict[str, float]:
    """A chart's total per day over its traces (anomaly markers left out)."""
    traces = pg.evaluate(f"() => document.getElementById('chart-{chart_id}').data"
                         ".filter(t => t.name !== 'anomaly').map(t => [t.x, t.y])")  # fmt: skip
    out: dict[str, float] = {}
    for xs, ys in traces:
        for x, y in zip(xs, ys):
            out[x[:10]] = out.get(x[:10], 0.0) + (y or 0.0)
    return out


def _spend_per_day(con, where: str, *params) -> dict[str, float]:
    return dict(con.execute(f"select cast(spend_date as varchar), sum(total_credits)::double from fct_credit_spend_daily "
                            f"where {where} group by all having sum(total_credits) <> 0", params).fetchall())  # fmt: skip


def _assert_close(got: dict[str, float], expected: dict[str, float]) -> None:
    got = {d: v for d, v in got.items() if v}
    assert got.keys() == expected.keys()
    for day, credits in expected.items():  # tiny's history is all daily periods
        assert math.isclose(got[day], credits, rel_tol=1e-6), day


def test_team_and_org_filters_show_their_share(page, rendered, con):
    """Choosing a team draws its share of the credits (its scope's file); with an org too, the
    pair's; with a project, the project's rows of that team; KPIs follow."""
    _open(page, rendered, "credits")
    options = page.evaluate("() => window.dashboard.data.options")
    assert options["teams"] == ["quality", "release", "unassigned", "web"]
    assert options["orgs"] == ["circleci/ne2BS2dbjkMrcekRfth3L8", "gh/acme-robotics"]
    everything = _per_day(page, "credits_resource_class")
    _assert_close(everything, _spend_per_day(con, "true"))
    # a job-level rule: a share of two projects' credits
    page.select_option("#f-team", "quality")
    _drawn(page)
    assert "team=quality" in page.url
    quality = _per_day(page, "credits_resource_class")
    _assert_close(quality, _spend_per_day(con, "team = ?", "quality"))
    assert sum(quality.values()) < 0.5 * sum(everything.values())
    scope = options["scopes"].index(["", "quality"])
    assert f"credits/scope-{scope}.js" in _loaded(page)
    # a team in two orgs, narrowed to one
    page.select_option("#f-team", "release")
    page.select_option("#f-org", "gh/acme-robotics")
    _drawn(page)
    _assert_close(_per_day(page, "credits_project"), _spend_per_day(con, "team = ? and org_slug = ?", "release",
                                                                   "gh/acme-robotics"))  # fmt: skip
    assert page.eval_on_selector_all("#f-project option", "os => os.map(o => o.value)") == [
        "",
        "gh/acme-robotics/api-gateway",
        "gh/acme-robotics/web-app",
    ]
    # a project too: its own file, filtered by team in the browser
    page.select_option("#f-project", "gh/acme-robotics/api-gateway")
    _drawn(page)
    _assert_close(_per_day(page, "credits_project"), _spend_per_day(con, "team = ? and project_slug = ?", "release",
                                                                   "gh/acme-robotics/api-gateway"))  # fmt: skip
    # the overview's KPIs follow the team
    page.select_option("#f-project", "")
    page.click('nav a[data-page="index.html"]')
    _drawn(page)
    assert page.input_value("#f-team") == "release"
    (mtd,) = con.execute("select sum(mtd_credits)::double from fct_credit_month_to_date "
                         "where team = 'release' and org_slug = 'gh/acme-robotics'").fetchone()  # fmt: skip
    assert math.isclose(_kpi(page, "credits_mtd")[0], mtd, rel_tol=1e-9)
    page.click("#f-reset")
    _drawn(page)
