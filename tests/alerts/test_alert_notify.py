"""Each incident alerted once per destination, failed deliveries retried the next night (up to
`max_delivery_attempts`), dry runs send and record nothing: hand-built marts, a real lake and a
real webhook receiver on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from circleci_analytics.alerts import destination_id, evaluate_and_notify
from circleci_analytics.alerts.history import load_history
from circleci_analytics.settings import Settings
from circleci_analytics.warehouse import Lake

FLAKY = ("gh/o/web", "unit", "tests.A", "test_{}", 2, "2026-06-09 10:00:00+00", True, 1.5)


def flaky(*names: str) -> list[tuple]:
    return [tuple(v.format(n) if isinstance(v, str) else v for v in FLAKY) for n in names]


def settings(tmp_path: Path, *urls: str, **alerts) -> Settings:
    return Settings(dashboard_dir=str(tmp_path / "dash"),
                    alerts={"rules": ["new_flaky_test"], "destinations": list(urls), **alerts})  # fmt: skip


def sent_tests(posts) -> list[list[str]]:
    return [[line.split(" ")[1] for line in body["message"].splitlines() if line.startswith("- ")]
            for _, body in posts]  # fmt: skip


def test_each_incident_is_sent_once(tmp_path, alert_marts, webhook_receiver) -> None:
    lake = Lake(tmp_path / "lake")
    s = settings(tmp_path, webhook_receiver.url("a"))
    webhook_receiver.take()
    evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a", "b")), lake)
    assert sent_tests(webhook_receiver.take()) == [["test_a", "test_b"]]
    evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a", "b")), lake)
    assert webhook_receiver.take() == []
    report = evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a", "b", "c")), lake)
    assert sent_tests(webhook_receiver.take()) == [["test_c"]]
    assert report.messages[0].title == "circleci-analytics: New flaky tests (1)"
    assert report.messages[0].body.endswith(f"Dashboard: {(tmp_path / 'dash').resolve().as_uri()}/flakiness.html")


def test_a_failed_delivery_is_recorded_and_retried_until_max_attempts(tmp_path, alert_marts, webhook_receiver) -> None:
    lake = Lake(tmp_path / "lake")
    url = webhook_receiver.url("b")
    s = settings(tmp_path, url, max_delivery_attempts=2)
    db = alert_marts(fct_flaky_tests=flaky("a"))
    webhook_receiver.take()
    webhook_receiver.status = 500
    try:
        report = evaluate_and_notify(s, db, lake)
        assert report.failed and "500" in report.failed[0].error and not report.delivered
        (row,) = load_history(lake).values()
        assert row["delivered_at"] is None and row["attempts"] == 1 and "500" in row["error"]
        evaluate_and_notify(s, db, lake)  # second attempt, fails too: the last one
        evaluate_and_notify(s, db, lake)  # given up
        assert len(webhook_receiver.take()) == 2
        (row,) = load_history(lake).values()
        assert row["attempts"] == 2 and row["delivered_at"] is None
    finally:
        webhook_receiver.status = 200
    s3 = settings(tmp_path, url, max_delivery_attempts=3)
    report = evaluate_and_notify(s3, db, lake)
    assert report.delivered and sent_tests(webhook_receiver.take()) == [["test_a"]]
    (row,) = load_history(lake).values()
    assert row["attempts"] == 3 and row["delivered_at"] is not None and row["error"] is None


def test_an_undelivered_incident_is_retried_even_when_it_is_over(tmp_path, alert_marts, webhook_receiver) -> None:
    lake = Lake(tmp_path / "lake")
    s = settings(tmp_path, webhook_receiver.url("c"))
    webhook_receiver.take()
    webhook_receiver.status = 500
    try:
        evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a")), lake)
    finally:
        webhook_receiver.status = 200
    evaluate_and_notify(s, alert_marts(fct_flaky_tests=[]), lake)  # the test is no longer flaky: still told
    assert sent_tests(webhook_receiver.take()) == [["test_a"], ["test_a"]]


def test_destinations_are_independent(tmp_path, alert_marts, webhook_receiver) -> None:
    lake = Lake(tmp_path / "lake")
    db = alert_marts(fct_flaky_tests=flaky("a"))
    first, second = webhook_receiver.url("one"), webhook_receiver.url("two")
    webhook_receiver.take()
    evaluate_and_notify(settings(tmp_path, first), db, lake)
    evaluate_and_notify(settings(tmp_path, first, second), db, lake)
    assert [path for path, _ in webhook_receiver.take()] == ["/one", "/two"]
    assert {d for _, _, d in load_history(lake)} == {destination_id(first), destination_id(second)}


def test_dry_run_sends_and_records_nothing(tmp_path, alert_marts, webhook_receiver) -> None:
    lake = Lake(tmp_path / "lake")
    webhook_receiver.take()
    for s in (settings(tmp_path, webhook_receiver.url("d")), settings(tmp_path)):
        report = evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a")), lake, dry_run=True)
        assert [m.title for m in report.messages] == ["circleci-analytics: New flaky tests (1)"]
        assert not report.messages[0].sent
    assert webhook_receiver.take() == [] and load_history(lake) == {}


def test_without_destinations_nothing_is_recorded(tmp_path, alert_marts) -> None:
    lake = Lake(tmp_path / "lake")
    report = evaluate_and_notify(settings(tmp_path), alert_marts(fct_flaky_tests=flaky("a")), lake)
    assert len(report.incidents) == 1 and report.messages == [] and load_history(lake) == {}
    assert "no destination configured" in report.markdown()


@pytest.mark.parametrize("dashboard_url", ["https://ci-dash.example.com/", "https://ci-dash.example.com"])
def test_dashboard_url_setting_is_the_link_base(tmp_path, alert_marts, dashboard_url) -> None:
    s = settings(tmp_path, dashboard_url=dashboard_url)
    report = evaluate_and_notify(s, alert_marts(fct_flaky_tests=flaky("a")), Lake(tmp_path / "lake"), dry_run=True)
    assert report.messages[0].body.endswith("Dashboard: https://ci-dash.example.com/flakiness.html")
