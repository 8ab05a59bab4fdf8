"""What a run did, as data (for the CLI) and as one markdown artifact (for Prefect)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

__all__ = ["RunSummary", "warehouse_highlights"]


@dataclass
class RunSummary:
    flow: str
    orgs: list[str]
    rows_landed: dict[str, int] = field(default_factory=dict)
    failed_projects: dict[str, str] = field(default_factory=dict)  # slug -> error
    unknown_projects: list[str] = field(default_factory=list)
    usage_windows: list[str] = field(default_factory=list)
    quarantined_rows: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    tests_jobs_probed: int = 0
    tests_jobs_skipped: dict[str, int] = field(default_factory=dict)
    models_built: int = 0
    data_tests: int = 0
    data_tests_failed: list[str] = field(default_factory=list)
    highlights: dict[str, Any] = field(default_factory=dict)
    lake_root: str = ""
    warehouse_path: str = ""
    dashboard_path: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds

    @property
    def status(self) -> str:
        if self.data_tests_failed:
            return "failed"
        return "partial" if self.failed_projects or self.unknown_projects else "success"

    def timed(self, step: str):
        """Context manager adding the wall time of a step to `timings`."""
        return _Timer(self.timings, step)

    def add_rows(self, rows: dict[str, int]) -> None:
        for k, v in rows.items():
            self.rows_landed[k] = self.rows_landed.get(k, 0) + v

    def markdown(self) -> str:
        h = self.highlights
        icon = {"success": "✅", "partial": "⚠️", "failed": "❌"}[self.status]
        lines = [f"# {icon} {self.flow}: {self.status}", ""]
        if self.failed_projects or self.unknown_projects:
            lines += ["**Projects not updated** (the others were landed and built):", ""]
            lines += [f"- `{slug}`: {err}" for slug, err in sorted(self.failed_projects.items())]
            lines += [f"- `{slug}`: not found or not visible to the token" for slug in self.unknown_projects]
            lines.append("")
        lines += ["| headline | value |", "|---|---|"]
        if "as_of_date" in h:
            lines.append(f"| data as of | {h['as_of_date']} |")
        if "day_credits" in h:
            lines.append(f"| credits on {h['as_of_date']} | {h['day_credits']:,.2f} (${h['day_usd']:,.2f}) |")
        if "mtd_credits" in h:
            lines.append(f"| month to date / forecast | {h['mtd_credits']:,.0f} / {h['forecast_credits']:,.0f} credits |")
        if "new_flaky_tests" in h:
            lines.append(f"| flaky tests (currently) / new in this run's window | {h['flaky_tests']} / {h['new_flaky_tests']} |")
        if h.get("mttr_last_week_seconds") is not None:
            change = h.get("mttr_change_pct")
            delta = f" ({change:+.0f}% vs the week before)" if change is not None else ""
            lines.append(f"| MTTR, last full week | {h['mttr_last_week_seconds'] / 60:,.1f} min{delta} |")
        lines.append(f"| data tests | {self.data_tests - len(self.data_tests_failed)}/{self.data_tests} passed |")
        lines += ["", "**Rows landed**", "", "| table | rows |", "|---|---|"]
        lines += [f"| `{t}` | {n:,} |" for t, n in sorted(self.rows_landed.items())]
        if self.quarantined_rows:
            lines += ["", f"⚠️ {self.quarantined_rows} malformed usage-export rows quarantined (table `usage_quarantine`)."]
        if self.unknown_columns:
            lines += ["", f"Unknown usage-export columns kept in `extra_columns`: {', '.join(self.unknown_columns)}"]
        if self.data_tests_failed:
            lines += ["", "**Failed data tests:** " + ", ".join(self.data_tests_failed)]
        lines += ["", f"- lake: `{self.lake_root}`", f"- warehouse: `{self.warehouse_path}`"]
        if self.dashboard_path:
            lines.append(f"- dashboard: `{self.dashboard_path}`")
        lines.append(f"- API calls: {self.api_calls.get('total_calls', 0):,}; wall time {self.seconds:,.1f} s")
        if self.timings:
            lines.append("- step times: " + ", ".join(f"{k} {v:,.1f} s" for k, v in self.timings.items()))
        return "\n".join(lines)


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
        credits, usd = con.execute(
            "select coalesce(sum(total_credits), 0), coalesce(sum(total_usd), 0) from fct_credit_spend_daily where spend_date = ?",
            [as_of],
        ).fetchone()
        out["day_credits"], out["day_usd"] = float(credits), float(usd)
        mtd, forecast = con.execute(
            "select coalesce(sum(mtd_credits), 0), coalesce(sum(forecast_credits), 0) from fct_credit_month_to_date"
        ).fetchone()
        out["mtd_credits"], out["forecast_credits"] = float(mtd), float(forecast)
        out["flaky_tests"] = con.execute("select count(*) from fct_flaky_tests where currently_flaky").fetchone()[0]
        out["new_flaky_tests"] = con.execute(
            "select count(*) from fct_flaky_tests where first_flake_at >= ?", [window_start or as_of]
        ).fetchone()[0]
        weeks = con.execute(
            """
            select week_start, sum(mttr_mean_seconds * recoveries) / sum(recoveries)
            from fct_mttr_weekly
            where week_start + interval 7 day <= ?::date + interval 1 day
            group by week_start order by week_start desc limit 2
            """,
            [as_of],
        ).fetchall()
        if weeks:
            out["mttr_last_week_seconds"] = float(weeks[0][1])
            if len(weeks) > 1 and weeks[1][1]:
                out["mttr_change_pct"] = (float(weeks[0][1]) / float(weeks[1][1]) - 1) * 100
        return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in out.items()}
    finally:
        con.close()
