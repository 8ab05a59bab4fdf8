"""`prefect server start`, with a fix that lets its scheduler plan cron runs on Python < 3.13.

Prefect 3.9's server plans cron schedules with `whenever`, but on Python 3.11 and 3.12 it
hands `whenever.ZonedDateTime` datetimes whose tzinfo is a pendulum `Timezone`, which
`whenever` refuses ("tzinfo must be of type ZoneInfo (exactly)"). The scheduler service logs
the error for every deployment and creates no run at all, so nothing cron-scheduled ever
fires. Prefect 3.8 did not use this path. The fix gives `whenever` the same zone as a
`ZoneInfo`; it changes nothing when the tzinfo already is one (Python >= 3.13, or a fixed
Prefect). `serve` runs its local server through this module:

    python -m circleci_analytics.prefect_server --host 127.0.0.1 --port 4200
"""

from __future__ import annotations

import datetime
import sys
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["as_zoneinfo", "main", "patch_cron_scheduling"]


def as_zoneinfo(value: datetime.datetime) -> datetime.datetime:
    """`value` with its time zone as a `ZoneInfo` of the same name (unchanged if it already is one)."""
    tz = value.tzinfo
    if tz is None or type(tz) is ZoneInfo:
        return value
    name = getattr(tz, "key", None) or getattr(tz, "name", None)
    if not isinstance(name, str):
        return value
    # A plain datetime (a pendulum DateTime would turn the zone back into its own type).
    return datetime.datetime.combine(value.date(), value.time().replace(fold=value.fold), ZoneInfo(name))


def patch_cron_scheduling() -> None:
    """Make the server's cron planning hand `whenever` ZoneInfo time zones."""
    from prefect.server.schemas import schedules

    original = schedules._whenever_zdt_from_py
    if getattr(original, "_circleci_analytics_fix", False):
        return

    def zdt_from_py(dt: datetime.datetime) -> Any:
        return original(as_zoneinfo(dt))

    zdt_from_py._circleci_analytics_fix = True  # type: ignore[attr-defined]
    schedules._whenever_zdt_from_py = zdt_from_py


def main(argv: list[str] | None = None) -> None:
    """`prefect server start <argv>` with the fix applied."""
    patch_cron_scheduling()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", "start", *(sys.argv[1:] if argv is None else argv)]
    app()


if __name__ == "__main__":
    main()
