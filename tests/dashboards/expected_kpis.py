"""KPIs computed directly from the marts, independently of dashboards/queries (the tests' oracle)."""

from __future__ import annotations

import duckdb


def expected_kpis(con: duckdb.DuckDBPyConnection, project: str | None = None) -> dict[str, float | None]:
    """Overview KPI values (org-wide, or for one project) straight from the marts."""
    p = "and project_slug = $p" if project else ""
    args = {"p": project} if project else {}

    def one(sql: str) -> float | None:
        value = con.execute(sql, args).fetchone()[0]
        return None if value is None else float(value)

    as_of = "(select as_of_date from warehouse_meta)"
    return {
        "credits_mtd": one(f"select coalesce(sum(mtd_credits), 0) from fct_credit_month_to_date where true {p}"),
        "credits_forecast": one(
            f"select coalesce(sum(forecast_credits), 0) from fct_credit_month_to_date where true {p}"
        ),
        "success_rate": one(
            f"""select count(*) filter (where outcome = 'success')
                       / nullif(count(*) filter (where outcome in ('success', 'failure')), 0)
                from fct_workflow_runs
                where run_date between {as_of} - 6 and {as_of} {p}"""
        ),
        "mttr": one(
            f"""select avg(recovery_seconds) from fct_recoveries
                where not is_open and cast(recovered_at at time zone 'UTC' as date) between {as_of} - 6 and {as_of} {p}"""
        ),
        "flaky_tests": one(f"select count(*) from fct_flaky_tests where currently_flaky {p}"),
    }
