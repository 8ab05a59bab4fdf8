"""Helpers for the flow tests: simulator configs, running flows, ground truth for a window."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from circleci_analytics.simulator import GroundTruth, SimConfig, Simulator
from circleci_analytics.simulator.truth import Recovery, compute_recoveries

#: Midday, like a real nightly run: the usage window starts at midnight `LOOKBACK_DAYS` ago,
#: Insights workflow runs at `NOW - LOOKBACK_DAYS` itself, test metadata for jobs started
#: since `NOW - tests_lookback_days` (see `truth_since`).
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LOOKBACK_DAYS = 30
#: A token that cannot occur by accident in any output.
TOKEN = "CCIPAT_flowtest_9f3b2c7d1e5a_secret"
NO_LIMITS: dict[str, float] = {"core": 0, "insights": 0, "tests": 0, "usage_export": 0}  # 0 = unlimited
POLL_SECONDS = 0.1


def sim_config(now: datetime = NOW, **changes: Any) -> SimConfig:
    """The tiny preset, rate-limit periods divided by 3600, exports done in 0.2 s."""
    settings: dict[str, Any] = {"seed": 7, "preset": "tiny", "now": now, "token": TOKEN, "time_scale": 3600.0,
                                "export_processing_seconds": 0.2}  # fmt: skip
    return SimConfig(**{**settings, **changes})


def make_sim(now: datetime = NOW, **changes: Any) -> Simulator:
    return Simulator(sim_config(now, **changes))


def org_target(sim: Simulator, extra_projects: tuple[str, ...] = ()):
    from circleci_analytics.flows import OrgTarget

    return OrgTarget(id=sim.org.id, slug=sim.org.slug, projects=[p.slug for p in sim.projects] + list(extra_projects))


def paths(root: Path) -> dict[str, str]:
    return {"lake_root": str(root / "lake"), "warehouse_path": str(root / "warehouse.duckdb"),
            "dashboard_dir": str(root / "dashboard")}  # fmt: skip


def settings(sim: Simulator, url: str, root: Path, *, extra_projects: tuple[str, ...] = (), **changes: Any):
    """The flows' settings for a run against `url` (the token from $CIRCLECI_TOKEN, as in production)."""
    from circleci_analytics.settings import Settings

    values = {"initial_lookback_days": LOOKBACK_DAYS, "tests_lookback_days": 7, "export_poll_seconds": POLL_SECONDS,
              "rate_limits": NO_LIMITS, "now": sim.history.now, "render_dashboard": False, **paths(root), **changes}  # fmt: skip
    return Settings(orgs=[org_target(sim, extra_projects)], api_base_url=url, **values)


def run_nightly(sim: Simulator, url: str, root: Path, *, extra_projects: tuple[str, ...] = (), **changes: Any):
    """Run the nightly flow once against `url`; returns its final Prefect state."""
    from circleci_analytics.flows import nightly

    return asyncio.run(nightly(settings(sim, url, root, extra_projects=extra_projects, **changes), return_state=True))


def run_backfill(sim: Simulator, url: str, root: Path, start: date, end: date, stop_after_windows: int | None = None,
                 **changes: Any):  # fmt: skip
    from circleci_analytics.flows import backfill

    s = settings(sim, url, root, **{"render_dashboard": True, **changes})
    return asyncio.run(backfill(start, end, s, stop_after_windows=stop_after_windows, return_state=True))


class _TruthSince(GroundTruth):
    """Ground truth of the job and workflow runs started/created at or after `since`."""

    def __init__(self, sim: Simulator, since: datetime):
        super().__init__(sim.history, first_day=sim.history.day_of(since))
        self.since = since

    def jobs(self):
        return ((p, j) for p, j in super().jobs() if j.started_at >= self.since)

    def workflows(self):
        return ((p, w) for p, w in super().workflows() if w.created_at >= self.since)

    def recoveries(self) -> list[Recovery]:
        return [r for p in self.projects
                for r in compute_recoveries((w for q, w in self.workflows() if q == p), p.slug)]  # fmt: skip


def truth_since(sim: Simulator, since: datetime) -> GroundTruth:
    """Ground truth restricted to job runs started (workflow runs created) since `since`."""
    return _TruthSince(sim, since)


def midnight(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def export_posts(sim: Simulator) -> list[tuple[datetime, datetime]]:
    """(start, end) of every usage-export job the simulator was asked to create."""
    return [(start, end) for _, start, end, _ in sim.backend.export_posts]


class Captured(logging.Handler):
    """Every log record (formatted, with tracebacks) emitted while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def capture_logs() -> Iterator[Captured]:
    """Capture what reaches the root logger, with our code and Prefect at DEBUG (Prefect's
    run loggers propagate to the root; importing the CLI sets PREFECT_LOGGING_LEVEL=WARNING,
    which would otherwise hide the run logs)."""
    import circleci_analytics.flows  # noqa: F401  (importing Prefect's flow machinery reconfigures logging: do it first)

    handler = Captured()
    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in ("circleci_analytics", "prefect")]
    levels = [lg.level for lg in loggers]
    root.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
