"""The README's example queries run against a built warehouse and return rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    return [s.strip() for b in blocks for s in b.split(";") if s.strip()]


def test_readme_has_examples_for_the_main_marts():
    text = "\n".join(_examples())
    for mart in ("fct_credit_spend_daily", "fct_credit_month_to_date", "fct_credit_movers_weekly",
                 "fct_credit_anomalies", "fct_waste_daily", "fct_right_sizing", "fct_flaky_tests",
                 "fct_recoveries", "fct_workflow_health_weekly", "fct_credit_reconciliation_daily"):  # fmt: skip
        assert mart in text, f"README has no example query for {mart}"


@pytest.mark.parametrize("sql", _examples(), ids=lambda s: s.splitlines()[0][:50])
def test_readme_example_runs(tiny_db, sql):
    tiny_db.execute(sql).fetchall()  # raises on a wrong column or table
