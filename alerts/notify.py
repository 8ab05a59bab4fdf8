"""Evaluate the rules on the marts, send what is new, remember what was sent.

Per destination, what is sent tonight = tonight's incidents never delivered there, plus
earlier ones whose delivery failed (retried up to `max_delivery_attempts` nights) - one
message per rule. Every attempt is recorded in the lake's alert history, so a re-run
sends nothing twice and a failed delivery goes out the next night.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from circleci_analytics.alerts import rules
from circleci_analytics.alerts.deliver import Notification, deliver, destination_id
from circleci_analytics.alerts.history import load_history, save_history
from circleci_analytics.settings import Settings
from circleci_analytics.warehouse import Lake

__all__ = ["AlertReport", "Message", "evaluate", "evaluate_and_notify"]

#: Each rule's message title and severity.
TITLES = {"credit_anomaly": ("Credit anomaly", "warning"),
          "forecast_over_budget": ("Month-end forecast above budget", "warning"),
          "new_flaky_test": ("New flaky tests", "warning"),
          "mttr_regression": ("MTTR regression week over week", "warning"),
          "run_problem": ("Nightly run failed or partial", "failure")}  # fmt: skip
#: Incidents listed in one message; the rest are counted (all are in fct_alert_history).
MAX_LINES = 20
NO_DESTINATION = "(no destination)"


@dataclass(frozen=True)
class Message:
    """One message of one rule to one destination (by id, never the URL)."""

    rule: str
    destination: str
    title: str
    body: str
    incident_keys: tuple[str, ...]
    error: str | None = None
    sent: bool = False

    @property
    def delivered(self) -> bool:
        return self.sent and self.error is None


@dataclass
class AlertReport:
    """What the rules found and what was sent; `markdown()` goes into the run summary."""

    incidents: list[rules.Incident] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    destinations: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> list[Message]:
        return [m for m in self.messages if m.delivered]

    @property
    def failed(self) -> list[Message]:
        return [m for m in self.messages if m.sent and m.error is not None]

    def markdown(self) -> str:
        counts: dict[str, int] = {}
        for i in self.incidents:
            counts[i.rule] = counts.get(i.rule, 0) + 1
        found = ", ".join(f"{rule} {n}" for rule, n in counts.items()) or "none"
        lines = ["**Alerts**", "", f"- incidents found: {found}"]
        if self.dry_run:
            lines.append(f"- dry run: {len(self.messages)} message(s) would be sent")
        elif not self.destinations:
            lines.append("- no destination configured (alerts.destinations): nothing sent")
        else:
            lines.append(f"- messages delivered: {len(self.delivered)}; failed (retried next night): "
                         f"{len(self.failed)}")  # fmt: skip
            lines += [f"  - {m.destination} {m.rule}: {m.error}" for m in self.failed]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


def evaluate(settings: Settings, warehouse_path: str | Path, summary: Any = None, run_id: str | None = None,
             error: BaseException | None = None) -> list[rules.Incident]:  # fmt: skip
    """Every incident the enabled rules find in the warehouse (and in `summary`, the run's).
    A run stopped by `error` is judged alone: its warehouse is yesterday's, or none."""
    cfg = settings.alerts
    enabled = set(cfg.rules)
    if error is not None:
        if "run_problem" in enabled and summary is not None and run_id is not None:
            return rules.run_problems(summary, run_id, cfg, error)
        return []
    out: list[rules.Incident] = []
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        if "credit_anomaly" in enabled:
            out += rules.credit_anomalies(con, cfg)
        if "forecast_over_budget" in enabled:
            if cfg.monthly_budget_credits is not None:
                slugs = {o.id: o.slug for o in settings.orgs}
                out += rules.forecast_over_budget(con, "org_id", lambda _: cfg.monthly_budget_credits, "org", slugs)
            if cfg.team_monthly_budget_credits:
                out += rules.forecast_over_budget(con, "team", cfg.team_monthly_budget_credits.get, "team")
        if "new_flaky_test" in enabled:
            out += rules.new_flaky_tests(con, cfg)
        if "mttr_regression" in enabled:
            out += rules.mttr_regressions(con, cfg)
    finally:
        con.close()
    if "run_problem" in enabled and summary is not None and run_id is not None:
        out += rules.run_problems(summary, run_id, cfg)
    return out


def page_url(settings: Settings, page: str) -> str:
    """The dashboard page an alert links to: under `alerts.dashboard_url`, else the local file."""
    base = settings.alerts.dashboard_url or Path(settings.dashboard_dir).expanduser().resolve().as_uri()
    return f"{base.rstrip('/')}/{page}.html"


def render(settings: Settings, rule: str, incidents: list[rules.Incident]) -> Notification:
    """One rule's message: a title with the count, one line per incident, the dashboard link."""
    title, severity = TITLES[rule]
    lines = [f"- {i.line}" for i in incidents[:MAX_LINES]]
    if len(incidents) > MAX_LINES:
        lines.append(f"- ... and {len(incidents) - MAX_LINES} more (table fct_alert_history)")
    pages = dict.fromkeys(i.page for i in incidents)
    links = [f"Dashboard: {page_url(settings, page)}" for page in pages]
    return Notification(f"circleci-analytics: {title} ({len(incidents)})", "\n".join([*lines, "", *links]), severity)


def _from_row(row: dict[str, Any]) -> rules.Incident:
    names = ("rule", "incident_key", "subject", "figure", "threshold", "unit", "line", "page", "as_of_date")
    return rules.Incident(*(row[n] for n in names))


def _by_rule(incidents: Iterable[rules.Incident]) -> dict[str, list[rules.Incident]]:
    out: dict[str, list[rules.Incident]] = {}
    for i in incidents:
        out.setdefault(i.rule, []).append(i)
    return {rule: out[rule] for rule in TITLES if rule in out}


def evaluate_and_notify(settings: Settings, warehouse_path: str | Path, lake: Lake, summary: Any = None, *,
                        run_id: str | None = None, error: BaseException | None = None,
                        dry_run: bool = False) -> AlertReport:  # fmt: skip
    """Evaluate the rules, send each destination what it has not had (one message per rule),
    and record every attempt in the lake's alert history (not with `dry_run`: then the
    report's messages are what would be sent). `error`: what stopped the run early."""
    cfg = settings.alerts
    incidents = evaluate(settings, warehouse_path, summary, run_id, error)
    report = AlertReport(incidents=incidents, destinations=len(cfg.destinations), dry_run=dry_run)
    history = load_history(lake)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    urls: list[str | None] = [u.get_secret_value() for u in cfg.destinations]
    if not urls and dry_run:
        urls = [None]
    for url in urls:
        dest = destination_id(url) if url else NO_DESTINATION
        pending = _pending(incidents, history, dest, cfg.max_delivery_attempts)
        for rule, group in _by_rule(pending).items():
            note = render(settings, rule, group)
            failure = None if dry_run or url is None else deliver(url, note)
            report.messages.append(Message(rule, dest, note.title, note.body, tuple(i.key for i in group), failure,
                                           sent=not dry_run))  # fmt: skip
            rows += [_row(i, dest, history.get((i.rule, i.key, dest)), run_id, now, failure) for i in group]
    if not dry_run:
        save_history(lake, rows)
    return report


def _pending(incidents: list[rules.Incident], history: dict, dest: str, max_attempts: int) -> list[rules.Incident]:
    """Tonight's incidents not yet delivered to `dest`, then earlier undelivered ones (retries)."""

    def due(key: tuple[str, str, str]) -> bool:
        row = history.get(key)
        return row is None or (row["delivered_at"] is None and row["attempts"] < max_attempts)

    tonight = {(i.rule, i.key) for i in incidents}
    out = [i for i in incidents if due((i.rule, i.key, dest))]
    out += [_from_row(row) for (rule, key, d), row in history.items()
            if d == dest and (rule, key) not in tonight and due((rule, key, d))]  # fmt: skip
    return out


def _row(i: rules.Incident, dest: str, before: dict[str, Any] | None, run_id: str | None, now: datetime,
         error: str | None) -> dict[str, Any]:  # fmt: skip
    return {"rule": i.rule, "incident_key": i.key, "destination": dest, "subject": i.subject, "figure": i.figure,
            "threshold": i.threshold, "unit": i.unit, "line": i.line, "page": i.page,
            "as_of_date": i.as_of_date if isinstance(i.as_of_date, date) else None,
            "run_id": before["run_id"] if before else run_id,
            "first_attempt_at": before["first_attempt_at"] if before else now,
            "attempts": (before["attempts"] if before else 0) + 1,
            "delivered_at": None if error else now, "error": error, "extracted_at": now}  # fmt: skip
