"""The local Prefect server's cron fix: Prefect 3.9's scheduler plans cron runs again on Python < 3.13."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from circleci_analytics.prefect_server import as_zoneinfo, patch_cron_scheduling


def test_as_zoneinfo_keeps_the_wall_time_and_zone() -> None:
    import pendulum

    dt = pendulum.datetime(2026, 3, 29, 1, 30, tz="Europe/Berlin")
    fixed = as_zoneinfo(dt)
    assert type(fixed.tzinfo) is ZoneInfo and fixed.tzinfo.key == "Europe/Berlin"
    assert fixed.replace(tzinfo=None) == dt.replace(tzinfo=None) and fixed.utcoffset() == dt.utcoffset()
    plain = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))
    assert as_zoneinfo(plain) is plain


@pytest.mark.parametrize(("cron", "tz"), [("* * * * *", "UTC"), ("0 3 * * *", "Europe/Berlin")])
def test_the_server_plans_cron_runs(cron: str, tz: str) -> None:
    from prefect.server.schemas.schedules import CronSchedule

    patch_cron_scheduling()
    patch_cron_scheduling()  # idempotent
    start = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    dates = list(CronSchedule(cron=cron, timezone=tz)._get_dates_generator(n=3, start=start))
    if cron == "* * * * *":
        assert dates == [start.replace(second=0) + timedelta(minutes=i) for i in (1, 2, 3)]
    else:  # 03:00 in Berlin (summer time) is 01:00 UTC, the next three days
        assert [d.astimezone(UTC) for d in dates] == [datetime(2026, 6, d, 1, tzinfo=UTC) for d in (2, 3, 4)]
