"""`[alerts]` settings: TOML table, nested environment variables, key-by-key merging, and
destination URLs kept out of dumps (flow parameters) and error messages."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from circleci_analytics.settings import ALERT_RULES, Settings, SettingsError, load_settings

SECRET_URL = "slack://T0AAAA/B0BBBB/Zq8Wx3Lp0Rt6Secret"


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("CIRCLECI_ANALYTICS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_enable_every_rule_and_send_nowhere(clean) -> None:
    a = Settings().alerts
    assert a.rules == list(ALERT_RULES) and a.destinations == [] and a.monthly_budget_credits is None


def test_toml_table_and_nested_environment_variables_merge_key_by_key(clean, monkeypatch) -> None:
    cfg = clean / "c.toml"
    cfg.write_text(
        f"[alerts]\nmonthly_budget_credits = 250000\nmttr_min_recoveries = 4\n"
        f'destinations = ["{SECRET_URL}"]\n[alerts.team_monthly_budget_credits]\nplatform = 50000\n'
    )
    monkeypatch.setenv("CIRCLECI_ANALYTICS_ALERTS__MTTR_MIN_RECOVERIES", "6")
    a = load_settings(cfg).alerts
    assert (a.monthly_budget_credits, a.mttr_min_recoveries) == (Decimal(250000), 6)
    assert a.team_monthly_budget_credits == {"platform": Decimal(50000)}
    assert [d.get_secret_value() for d in a.destinations] == [SECRET_URL]


def test_destinations_never_in_a_dump_and_read_again_where_the_run_starts(clean, monkeypatch) -> None:
    # `serve` stores the settings' dump as the deployment's parameters; each run rebuilds its
    # settings from them, and the destinations come from that machine's TOML file or environment.
    cfg = clean / "c.toml"
    cfg.write_text(f'[alerts]\nmttr_min_recoveries = 4\ndestinations = ["{SECRET_URL}"]\n')
    s = load_settings(cfg)
    dumped = s.model_dump(mode="json")
    assert "destinations" not in dumped["alerts"] and "Zq8Wx3Lp0Rt6" not in repr(s) + str(dumped)
    monkeypatch.setenv("CIRCLECI_ANALYTICS_CONFIG", str(cfg))
    again = Settings(**dumped)
    assert [d.get_secret_value() for d in again.alerts.destinations] == [SECRET_URL]
    assert again.alerts.mttr_min_recoveries == 4


def test_an_invalid_destination_is_named_without_its_value(clean) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(alerts={"destinations": ["not-a-url-Zq8Wx3Lp0Rt6"]})
    assert "alerts.destinations[0]: not a notification URL" in str(e.value) and "Zq8Wx3Lp0Rt6" not in str(e.value)


@pytest.mark.parametrize(("alerts", "message"), [
    ({"rules": ["credit_anomaly", "nope"]}, "alerts.rules[1]"),
    ({"mttr_regression_ratio": 1}, "alerts.mttr_regression_ratio"),
    ({"monthly_budget_credits": 0}, "alerts.monthly_budget_credits"),
    ({"run_statuses": ["success"]}, "alerts.run_statuses[0]"),
    ({"budget": 5}, "alerts.budget: unknown setting"),
])  # fmt: skip
def test_invalid_alert_settings_are_named(clean, alerts, message) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(alerts=alerts)
