"""Alerts after the nightly, end to end: the simulator, the nightly flow, and a real HTTP
server on loopback as the JSON webhook receiver (apprise `json://`).

One sequence of runs on one lake:

A. first nightly (45 days of history): every rule with an incident alerts, one message per rule;
B. the same nightly again: nothing new, nothing sent;
C. eight days later: only the incidents that are new (the next cost spike, June's forecast, ...);
D. that day again with a malformed usage-export row (a simulator fault): the run is partial,
   the receiver answers 500: the run alert is recorded undelivered;
E. that day again, receiver fine: exactly D's run alert is sent;
F. that day again with a token the API refuses: the run fails early, and alerts that.

Every message received is written to test-artifacts/alert-messages.json (git-ignored).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flow_helpers import NOW, TOKEN, capture_logs, make_sim, run_nightly

from circleci_analytics.simulator import FaultRule
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

#: The secret part of the webhook URL: never in a log, the summary, Prefect or the warehouse.
HOOK_SECRET = "hooks/T0ALERTS/B0SECRET/x9Yq7Zr3Kp2Wm5Vn8Lb4"
LATER = NOW + timedelta(days=8)
WRONG_TOKEN = "CCIPAT_wrong_alerts_7c1d9e"
BUDGET = 100_000
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "alert-messages.json"
TITLES = {"Credit anomaly": "credit_anomaly", "Month-end forecast above budget": "forecast_over_budget",
          "New flaky tests": "new_flaky_test", "MTTR regression week over week": "mttr_regression",
          "Nightly run failed or partial": "run_problem"}  # fmt: skip


def alert_settings(url: str) -> dict[str, Any]:
    return {"destinations": [url], "monthly_budget_credits": BUDGET, "anomaly_lookback_days": 45,
            "mttr_regression_ratio": 2.0, "mttr_min_recoveries": 2}  # fmt: skip


@dataclass
class Run:
    state: Any
    posts: list[tuple[str, dict]]
    marts: Path  # a copy of the warehouse's marts as they were after this run

    @property
    def summary(self):
        return self.state.result()

    def by_rule(self) -> dict[str, dict]:
        out = {}
        for _, body in self.posts:
            rule = TITLES[body["title"].removeprefix("circleci-analytics: ").rsplit(" (", 1)[0]]
            assert rule not in out, f"two messages for {rule}"
            out[rule] = body
        return out


@dataclass
class Story:
    root: Path
    runs: dict[str, Run] = field(default_factory=dict)
    logs: str = ""


@pytest.fixture(scope="module")
def story(prefect_harness, tmp_path_factory, webhook_receiver) -> Story:
    from flow_helpers import freeze_models

    root = tmp_path_factory.mktemp("alerts")
    story = Story(root)
    url = webhook_receiver.url(HOOK_SECRET)
    malformed = (FaultRule("malformed_row", route="downloadUsagePart", calls=(1,)),)
    plan = [
        ("A", NOW, (), 200, TOKEN),
        ("B", NOW, (), 200, TOKEN),
        ("C", LATER, (), 200, TOKEN),
        ("D", LATER, malformed, 500, TOKEN),
        ("E", LATER, (), 200, TOKEN),
        ("F", LATER, (), 200, WRONG_TOKEN),
    ]
    with pytest.MonkeyPatch.context() as mp, capture_logs() as logs:
        for name in ("apprise", "urllib3", "requests"):  # their most talkative, URL-quoting level
            mp.setattr(logging.getLogger(name), "level", logging.DEBUG)
            logging.getLogger(name).setLevel(logging.DEBUG)
        for name, now, faults, status, token in plan:
            mp.setenv("CIRCLECI_TOKEN", token)
            sim = make_sim(now, faults=faults)
            webhook_receiver.status = status
            with running_server(sim) as api:
                state = run_nightly(sim, api, root, initial_lookback_days=45, alerts=alert_settings(url))
            marts = freeze_models(root / "warehouse.duckdb", root / f"marts_{name}.duckdb",
                                  prefixes=("fct_", "dim_", "warehouse_meta"))  # fmt: skip
            story.runs[name] = Run(state, webhook_receiver.take(), marts)
    story.logs = logs.text
    ARTIFACT.parent.mkdir(exist_ok=True)
    received = {name: [body for _, body in run.posts] for name, run in story.runs.items()}
    ARTIFACT.write_text(json.dumps(received, indent=2))
    return story


def completed(story: Story) -> list[Run]:
    return [run for name, run in story.runs.items() if name != "F"]


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def lines(message: dict) -> list[str]:
    return [line[2:] for line in message["message"].splitlines() if line.startswith("- ")]


def test_first_run_sends_one_message_per_rule_with_an_incident(story: Story) -> None:
    run = story.runs["A"]
    assert run.summary.status == "success"
    assert {path for path, _ in run.posts} == {"/" + HOOK_SECRET}
    assert set(run.by_rule()) == {"credit_anomaly", "forecast_over_budget", "new_flaky_test", "mttr_regression"}
    report = run.summary.alerts
    assert len(report.delivered) == 4 and not report.failed
    assert "**Alerts**" in run.summary.markdown() and "messages delivered: 4; failed" in run.summary.markdown()


def test_anomaly_alert_is_the_simulated_cost_spike(story: Story) -> None:
    run = story.runs["A"]
    sim = make_sim(NOW)
    assert sim.history.days == 45  # the lake holds the whole simulated history
    # Truth: the simulator's cost spikes with at least 14 days of history before them.
    spikes = {(p.slug, sim.history.day_start(d).date()) for p in sim.projects for d in sim.history.spike_days(p)
              if d >= 14}  # fmt: skip
    assert spikes, "the simulated history has a spike the anomaly rule can see"
    rows = query(run.marts, "select project_slug, spend_date, cast(credits as double), threshold_credits "
                            "from fct_credit_anomalies where is_anomaly")  # fmt: skip
    assert {(slug, day) for slug, day, _, _ in rows} == spikes
    sent = lines(run.by_rule()["credit_anomaly"])
    assert sent == [
        f"{slug} spent {credits:,.1f} credits on {day}, above its anomaly threshold of {threshold:,.1f} "
        "credits (mean + 3 sd of the 28 days before)"
        for slug, day, credits, threshold in rows
    ]
    assert run.by_rule()["credit_anomaly"]["message"].endswith(
        f"Dashboard: {(story.root / 'dashboard').resolve().as_uri()}/credits.html"
    )


def test_budget_alert_names_the_org_forecast_and_budget(story: Story) -> None:
    run = story.runs["A"]
    (forecast, mtd, month), = query(run.marts, "select sum(forecast_credits), sum(mtd_credits), "
                                               "any_value(month_start) from fct_credit_month_to_date")  # fmt: skip
    assert forecast > BUDGET
    org = make_sim(NOW).org.slug
    assert lines(run.by_rule()["forecast_over_budget"]) == [
        f"org {org}: month-end forecast {float(forecast):,.0f} credits for {month:%Y-%m} (month to date "
        f"{float(mtd):,.0f}, 0 day(s) left) exceeds the monthly budget of {BUDGET:,} credits"
    ]


def test_flaky_alert_lists_the_currently_flaky_tests(story: Story) -> None:
    run = story.runs["A"]
    tests = query(run.marts, "select project_slug, job_name, classname, test_name from fct_flaky_tests "
                             "where currently_flaky order by all")  # fmt: skip
    assert tests
    sent = lines(run.by_rule()["new_flaky_test"])
    assert len(sent) == len(tests)
    for (project, job, classname, test), line in zip(tests, sent, strict=True):
        assert line.startswith(f"{test} ({classname}, job {job}) in {project} is flaky: ")


def test_mttr_alert_is_the_scopes_whose_mttr_at_least_doubled(story: Story) -> None:
    run = story.runs["A"]
    # Independently: the last complete week before as_of_date vs the week before, per scope.
    ((as_of,),) = query(run.marts, "select as_of_date from warehouse_meta")
    last = as_of - timedelta(days=(as_of.weekday() + 1) % 7) - timedelta(days=6)
    weeks = {(p, w, b, wk): (m, n) for p, w, b, wk, m, n in query(
        run.marts, "select project_slug, workflow_name, branch, week_start, mttr_mean_seconds, recoveries "
                   "from fct_mttr_weekly")}  # fmt: skip
    expected = []
    for (p, w, b, wk), (m, n) in sorted(weeks.items()):
        before = weeks.get((p, w, b, wk - timedelta(days=7)))
        if wk == last and before and n >= 2 and before[1] >= 2 and m >= 2 * before[0]:
            expected.append(f"{w} on {b} in {p}: MTTR {m / 60:,.1f} min in the week of {wk} ({n} recoveries), "
                            f"{m / before[0]:,.1f}x the week before ({before[0] / 60:,.1f} min, {before[1]} "
                            "recoveries); alerts from 2x with at least 2 recoveries a week")  # fmt: skip
    assert expected
    assert lines(run.by_rule()["mttr_regression"]) == expected


def test_a_rerun_sends_nothing(story: Story) -> None:
    run = story.runs["B"]
    assert run.posts == []
    assert run.summary.alerts.incidents  # the incidents are still there, just not new
    assert run.summary.alerts.messages == []


def test_a_later_run_sends_only_the_new_incidents(story: Story) -> None:
    from circleci_analytics.alerts import evaluate

    first = {key for m in story.runs["A"].summary.alerts.messages for key in m.incident_keys}
    run = story.runs["C"]
    sent = {key for m in run.summary.alerts.messages for key in m.incident_keys}
    tonight = {i.key for i in run.summary.alerts.incidents}
    assert sent == tonight - first
    assert not sent & first
    by_rule = run.by_rule()
    # The next simulated spike (30 days after the first) and June's forecast are new.
    assert any(f"on {date(2026, 6, 8)}" in line for line in lines(by_rule["credit_anomaly"]))
    assert "for 2026-06" in by_rule["forecast_over_budget"]["message"]
    assert all(key in tonight for key in sent)
    # and what the rules find is what the marts say (evaluated again, independently of the run)
    from flow_helpers import settings as flow_settings

    s = flow_settings(make_sim(LATER), "http://unused", story.root, initial_lookback_days=45,
                      alerts=alert_settings("json://127.0.0.1:1/x"))  # fmt: skip
    assert {i.key for i in evaluate(s, run.marts)} == tonight


def test_partial_run_alert_fails_to_deliver_and_is_sent_next_night(story: Story) -> None:
    d, e = story.runs["D"], story.runs["E"]
    quarantined = d.summary.quarantined_rows
    assert d.summary.status == "partial" and quarantined > 0
    run_id = str(d.state.state_details.flow_run_id)
    # D: only the run alert is new; the receiver answered 500, so it is recorded undelivered.
    (message,) = d.summary.alerts.messages
    assert message.rule == "run_problem" and not message.delivered and "500" in message.error
    assert [body["title"] for _, body in d.posts] == ["circleci-analytics: Nightly run failed or partial (1)"]
    assert lines(d.posts[0][1]) == [f"nightly run {run_id} ({make_sim(LATER).org.slug}) is partial: "
                                    f"{quarantined} usage row(s) quarantined"]  # fmt: skip
    # E: complete itself; sends exactly D's run alert (and nothing else).
    assert e.summary.status == "success"
    assert [body for _, body in e.posts] == [body for _, body in d.posts]
    assert [m.incident_keys for m in e.summary.alerts.delivered] == [(f'["{run_id}"]',)]


def test_a_run_that_stops_early_alerts_that_it_failed(story: Story) -> None:
    f = story.runs["F"]
    assert f.state.is_failed()
    run_id = str(f.state.state_details.flow_run_id)
    ((_, body),) = f.posts
    assert body["type"] == "failure"
    (line,) = lines(body)
    assert line.startswith(f"nightly run {run_id} ({make_sim(LATER).org.slug}) failed: stopped by AuthError: ")
    assert WRONG_TOKEN not in body["message"] and TOKEN not in body["message"]


def test_history_is_in_the_lake_and_the_warehouse(story: Story) -> None:
    from circleci_analytics.alerts.history import load_history
    from circleci_analytics.warehouse import Lake

    history = load_history(Lake(story.root / "lake"))
    sent = [k for r in completed(story) for m in r.summary.alerts.messages for k in m.incident_keys]
    sent.append(f'["{story.runs["F"].state.state_details.flow_run_id}"]')  # F's report died with the run
    assert len({(rule, key) for rule, key, _ in history}) == len(history) == len(set(sent))
    assert all(row["delivered_at"] is not None for row in history.values())
    partial_id = str(story.runs["D"].state.state_details.flow_run_id)
    (run_row,) = [row for (rule, key, _), row in history.items() if rule == "run_problem" and partial_id in key]
    assert run_row["attempts"] == 2 and run_row["error"] is None
    # fct_alert_history: a view over the lake table, so the warehouse shows tonight's history too.
    con = duckdb.connect(str(story.root / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("select rule, incident_key, attempts, is_delivered from fct_alert_history").fetchall()
    finally:
        con.close()
    assert sorted((r, k, a, d) for r, k, a, d in rows) == sorted(
        (rule, key, row["attempts"], True) for (rule, key, _), row in history.items()
    )


def test_the_destination_url_is_never_logged_stored_or_shown(story: Story) -> None:
    secret = HOOK_SECRET.rsplit("/", 1)[1]
    assert "apprise" in story.logs and "JSON" in story.logs  # apprise's own debug lines were captured
    assert secret not in story.logs
    for run in completed(story):
        assert secret not in run.summary.markdown()
        assert secret not in repr(run.summary.alerts)
    assert all(secret.encode() not in p.read_bytes() for p in story.root.rglob("*") if p.is_file())
    # nor in the flow run's parameters the Prefect server keeps
    import asyncio

    from prefect.client.orchestration import get_client

    async def parameters(flow_run_id):
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).parameters

    for run in story.runs.values():
        stored = asyncio.run(parameters(run.state.state_details.flow_run_id))
        assert secret not in str(stored)
        assert "destinations" not in str(stored)
