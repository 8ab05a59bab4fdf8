"""What a run did, as data (for the CLI) and as one markdown artifact (for Prefect).

A run that missed anything - a failed or unknown project, a failed org-level call, a failed
test-metadata probe, a quarantined usage row - is *partial*, and the summary says which of
those the next run heals by itself and which need someone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

from circleci_analytics.connectors import ClientStats, JobTestsResult
from circleci_analytics.dashboards.queries import load_queries

__all__ = ["RunSummary", "warehouse_highlights"]


@dataclass
class RunSummary:
    flow: str
    orgs: list[str]
    rows_landed: dict[str, int] = field(default_factory=dict)
    failed_projects: dict[str, str] = field(default_factory=dict)  # slug -> error
    unknown_projects: list[str] = field(default_factory=list)
    projects_per_org: dict[str, int] = field(default_factory=dict)  # org slug -> projects run
    discovery_mismatches: list[str] = field(default_factory=list)  # "org: project: which source lacks it"
    failed_org_calls: dict[str, str] = field(default_factory=dict)  # what -> error (org summaries, usage export)
    usage_windows: list[str] = field(default_factory=list)
    quarantined_rows: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    tests_jobs_probed: int = 0
    tests_jobs_skipped: dict[str, int] = field(default_factory=dict)  # reason -> jobs
    tests_jobs_failed: int = 0  # probes that failed (probed again next run)
    tests_failures: list[str] = field(default_factory=list)  # the first few, "slug job N: error"
    tests_jobs_deferred: int = 0  # jobs of failed projects, not probed (probed next run)
    cleaned_up: dict[str, list[str]] = field(default_factory=dict)  # what a dead run left -> removed/marked
    models_built: int = 0
    data_tests: int = 0
    data_tests_failed: list[str] = field(default_factory=list)
    highlights: dict[str, Any] = field(default_factory=dict)
    lake_root: str = ""
    warehouse_path: str = ""
    dashboard_path: str | None = None
    published: str | None = None  # where the warehouse and dashboard were published (object storage)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    alerts: Any = None  # alerts.AlertReport of the rules evaluated after the build

    @property
    def status(self) -> str:
        if self.data_tests_failed:
            return "failed"
        return "partial" if self.partial_reasons() else "success"

    def partial_reasons(self) -> list[str]:
        """What this run missed, one short phrase each (empty for a complete run)."""
        failed_orgs = [what.removeprefix("org ") for what in self.failed_org_calls  # "org <slug>": a whole org
                       if what.startswith("org ") and " " not in what.removeprefix("org ")]  # fmt: skip
        counts = [(len(self.failed_projects), "project(s) failed"), (len(self.unknown_projects), "unknown project(s)"),
                  (len(self.failed_org_calls) - len(failed_orgs), "org-level call(s) failed"),
                  (self.tests_jobs_failed, "test-metadata probe(s) failed"),
                  (self.quarantined_rows, "usage row(s) quarantined")]  # fmt: skip
        named = [f"org {slug} failed" for slug in failed_orgs]  # a whole org: by name (the run summary has why)
        return named + [f"{n} {what}" for n, what in counts if n]

    def timed(self, step: str):
        """Context manager adding the wall time of a step to `timings`."""
        return _Timer(self.timings, step)

    def add_rows(self, rows: dict[str, int]) -> None:
        for k, v in rows.items():
            self.rows_landed[k] = self.rows_landed.get(k, 0) + v

    def add_probes(self, result: JobTestsResult, *, left_out: dict[str, int] | None = None, deferred: int = 0) -> None:
        """Count a test-metadata pass: probed, skipped (by the connector, or `left_out` before
        it, per reason), failed, and `deferred` jobs of failed projects."""
        self.tests_jobs_probed += result.probed
        skipped = dict(result.skipped)
        skipped["known_without_tests"] = skipped.get("known_without_tests", 0) + skipped.pop("seen", 0)
        for reason, n in [*skipped.items(), *(left_out or {}).items()]:
            if n:
                self.tests_jobs_skipped[reason] = self.tests_jobs_skipped.get(reason, 0) + n
        self.tests_jobs_failed += len(result.failed)
        room = max(0, _EXAMPLES - len(self.tests_failures))
        self.tests_failures += [f"{slug} job {number}: {error}" for slug, number, error in result.failed[:room]]
        self.tests_jobs_deferred += deferred

    def add_calls(self, stats: ClientStats) -> None:
        for family, n in stats.as_dict()["calls"].items():
            self.api_calls[family] = self.api_calls.get(family, 0) + n
        self.api_calls["total_calls"] = self.api_calls.get("total_calls", 0) + stats.total_calls

    def markdown(self) -> str:
        h = self.highlights
        icon = {"success": "✅", "partial": "⚠️", "failed": "❌"}[self.status]
        lines = [f"# {icon} {self.flow}: {self.status}", ""]
        lines += self._missed()
        lines += ["| headline | value |", "|---|---|"]
        if "as_of_date" in h:
            lines.append(f"| data as of | {h['as_of_date']} |")
        if "day_credits" in h:
            lines.append(f"| credits on {h['as_of_date']} | {h['day_credits']:,.2f} (${h['day_usd']:,.2f}) |")
        if "mtd_credits" in h:
            lines.append(
                f"| month to date / forecast | {h['mtd_credits']:,.0f} / {h['forecast_credits']:,.0f} credits |"
            )
        if "new_flaky_tests" in h:
            lines.append(
                f"| flaky tests (currently) / new in this run's window | {h['flaky_tests']} / {h['new_flaky_tests']} |"
            )
        if h.get("mttr_last_7d_seconds") is not None:
            change = h.get("mttr_change_pct")
            delta = f" ({change:+.0f}% vs the 7 days before)" if change is not None else ""
            lines.append(f"| MTTR, last 7 days | {h['mttr_last_7d_seconds'] / 60:,.1f} min{delta} |")
        lines.append(f"| data tests | {self.data_tests - len(self.data_tests_failed)}/{self.data_tests} passed |")
        lines += ["", "**Rows landed**", "", "| table | rows |", "|---|---|"]
        lines += [f"| `{t}` | {n:,} |" for t, n in sorted(self.rows_landed.items())]
        if self.projects_per_org:
            lines += ["", "Projects: " + ", ".join(f"{o} {n}" for o, n in self.projects_per_org.items()) + "."]
        if self.discovery_mismatches:
            lines += ["", f"Project discovery: {len(self.discovery_mismatches)} project(s) named by only one of "
                      "pipelines and Insights' org summary:", *(f"- {m}" for m in self.discovery_mismatches)]  # fmt: skip
        if self.tests_jobs_probed or self.tests_jobs_skipped:
            skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(self.tests_jobs_skipped.items()))
            lines += ["", f"Test metadata: {self.tests_jobs_probed:,} jobs probed; skipped: {skipped or 'none'}."]
        if self.unknown_columns:
            lines += ["", f"Unknown usage-export columns kept in `extra_columns`: {', '.join(self.unknown_columns)}"]
        if self.data_tests_failed:
            lines += ["", "**Failed data tests:** " + ", ".join(self.data_tests_failed)]
        if self.alerts is not None:
            lines += ["", self.alerts.markdown()]
        lines += ["", f"- lake: `{self.lake_root}`", f"- warehouse: `{self.warehouse_path}`"]
        if self.dashboard_path:
            lines.append(f"- dashboard: `{self.dashboard_path}`")
        if self.published:
            lines.append(f"- published: `{self.published}`")
        lines.append(f"- API calls: {self.api_calls.get('total_calls', 0):,}; wall time {self.seconds:,.1f} s")
        if self.timings:
            lines.append("- step times: " + ", ".join(f"{k} {v:,.1f} s" for k, v in self.timings.items()))
        for what, items in sorted(self.cleaned_up.items()):
            lines.append(f"- cleaned up after dead runs: {what}: " + ", ".join(f"`{i}`" for i in items))
        return "\n".join(lines)

    def note_lease(self, lease: Any) -> None:
        """Record what taking the lake's writer lease cleaned up after a crashed writer."""
        if lease.removed_temp_files:
            self.cleaned_up["temporary lake files removed"] = [f"{lease.removed_temp_files} file(s)"]

    def _missed(self) -> list[str]:
        """The markdown of what this run missed: what heals on the next run, what needs someone."""
        heals = [f"- project `{slug}`: {err} (its cursors were kept; the next run pulls from them)"
                 for slug, err in sorted(self.failed_projects.items())]  # fmt: skip
        heals += [f"- {what}: {err} (the next run tries again)" for what, err in sorted(self.failed_org_calls.items())]
        if self.tests_jobs_failed:
            examples = "; ".join(self.tests_failures)
            heals.append(f"- {self.tests_jobs_failed:,} test-metadata probes failed (probed again by the next run "
                         f"while the jobs are within the tests look-back), e.g. {examples}")  # fmt: skip
        if self.tests_jobs_deferred:
            heals.append(f"- {self.tests_jobs_deferred:,} jobs of the failed projects were not probed for tests "
                         "(probed by the next run)")  # fmt: skip
        attention = [f"- `{slug}`: not found or not visible to the token (fix the project list)"
                     for slug in self.unknown_projects]  # fmt: skip
        if self.quarantined_rows:
            attention.append(f"- {self.quarantined_rows:,} malformed usage-export rows quarantined "
                             "(table `usage_quarantine`, kept verbatim with the reason)")  # fmt: skip
        lines: list[str] = []
        if heals:
            lines += ["**Heals on the next run** (nothing is lost: the next run fetches what this one missed):", "",
                      *heals, ""]  # fmt: skip
        if attention:
            lines += ["**Needs attention** (does not heal by itself):", "", *attention, ""]
        return lines


#: Failed probes quoted in the summary (the rest are counted).
_EXAMPLES = 3


class _Timer:
    def __init__(self, timings: dict[str, float], step: str):
        self.timings, self.step = timings, step

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.step] = self.timings.get(self.step, 0.0) + time.perf_counter() - self.t0


def warehouse_highlights(db_path: str, window_start: date | None = None) -> dict[str, Any]:
    """Headline figures from the marts for the run summary."""
    con = duckdb.connect(db_path, read_only=True)
    try:
        out: dict[str, Any] = {}
        meta = con.execute("select as_of_date from warehouse_meta").fetchone()
        as_of = meta[0] if meta else None
        if as_of is None:
            return out
        out["as_of_date"] = as_of
        [(credits, usd)] = con.execute(
            "select coalesce(sum(total_credits), 0), coalesce(sum(total_usd), 0) from fct_credit_spend_daily where spend_date = ?",
            [as_of],
        ).fetchall()
        out["day_credits"], out["day_usd"] = float(credits), float(usd)
        [(mtd, forecast)] = con.execute(
            "select coalesce(sum(mtd_credits), 0), coalesce(sum(forecast_credits), 0) from fct_credit_month_to_date"
        ).fetchall()
        out["mtd_credits"], out["forecast_credits"] = float(mtd), float(forecast)
        out["flaky_tests"] = con.execute("select count(*) from fct_flaky_tests where currently_flaky").fetchall()[0][0]
        out["new_flaky_tests"] = con.execute(
            "select count(*) from fct_flaky_tests where first_flake_at >= ?", [window_start or as_of]
        ).fetchall()[0][0]
        # MTTR as the dashboard's KPI card computes it (one definition: its query file).
        seconds, recoveries, prev_seconds, prev_recoveries, covered = con.execute(
            f"""
            select sum(recovery_seconds_last_7d), sum(recoveries_last_7d), sum(recovery_seconds_prev_7d),
                sum(recoveries_prev_7d), bool_and(previous_covered)
            from ({load_queries()["kpi_mttr"].sql})
            """
        ).fetchall()[0]
        if recoveries:
            out["mttr_last_7d_seconds"] = float(seconds) / recoveries
            if covered and prev_recoveries:
                out["mttr_change_pct"] = (
                    out["mttr_last_7d_seconds"] / (float(prev_seconds) / prev_recoveries) - 1
                ) * 100
        return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}
    finally:
        con.close()
