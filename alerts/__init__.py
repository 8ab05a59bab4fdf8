"""Alerts after every nightly build: rules on the marts, delivered once through apprise.

Public surface::

    report = evaluate_and_notify(
        settings, "data/warehouse.duckdb", Lake("data/lake"), summary, run_id=flow_run_id
    )  # -> AlertReport
    report.markdown()  # for the run summary
    evaluate(settings, "data/warehouse.duckdb")  # the incidents only

Rules (`rules`): credit anomaly, month-end forecast above a monthly budget (per org, per
team), new flaky test, MTTR regression week over week, failed or partial run; thresholds and
destinations in `Settings.alerts` (TOML ``[alerts]``). Each incident is alerted once per
destination (`history`: lake table ``alert_history``, `fct_alert_history` in the warehouse);
a failed delivery is retried by the next run. Destination URLs are never logged (`deliver`).
"""

from circleci_analytics.alerts.deliver import destination_id
from circleci_analytics.alerts.notify import AlertReport, Message, evaluate, evaluate_and_notify, page_url
from circleci_analytics.alerts.rules import Incident

__all__ = ["AlertReport", "Incident", "Message", "destination_id", "evaluate", "evaluate_and_notify", "page_url"]
