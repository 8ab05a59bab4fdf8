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


def org_target(sim: Simulator, extra_projects: tuple[str, ...] = (), projects: list[str] | None = None):
    """The simulator's org with every project (or `projects`), plus `extra_projects`."""
    from circleci_analytics.settings import Org

    slugs = [p.slug for p in sim.projects] if projects is None else list(projects)
    return Org(id=sim.org.id, slug=sim.org.slug, projects=slugs + list(extra_projects))


def paths(root: Path) -> dict[str, str]:
    return {"lake_root": str(root / "lake"), "warehouse_path": str(root / "warehouse.duckdb"),
            "dashboard_dir": str(root / "dashboard")}  # fmt: skip


def settings(sim: Simulator, url: str, root: Path, *, extra_projects: tuple[str, ...] = (),
             projects: list[str] | None = None, **changes: Any):  # fmt: skip
    """The flows' settings for a run against `url` (every project, or `projects`; the token from
    $CIRCLECI_TOKEN, as in production)."""
    from circleci_analytics.settings import Settings

    values = {"initial_lookback_days": LOOKBACK_DAYS, "tests_lookback_days": 7, "export_poll_seconds": POLL_SECONDS,
              "rate_limits": NO_LIMITS, "now": sim.history.now, "render_dashboard": False, **paths(root), **changes}  # fmt: skip
    return Settings(orgs=[org_target(sim, extra_projects, projects)], api_base_url=url, **values)


def run_nightly(sim: Simulator, url: str, root: Path, *, extra_projects: tuple[str, ...] = (),
                projects: list[str] | None = None, **changes: Any):  # fmt: skip
    """Run the nightly flow once against `url` (every project, or `projects`); returns its final
    Prefect state."""
    from circleci_analytics.flows import nightly

    s = settings(sim, url, root, extra_projects=extra_projects, projects=projects, **changes)
    return asyncio.run(nightly(s, return_state=True))


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


# -- comparing warehouses ----------------------------------------------------------------------
#: The layers a warehouse comparison covers (sources and bookkeeping tables are left out).
MODEL_PREFIXES = ("stg_", "int_", "fct_", "dim_")
#: Columns that record when and by which export a row was loaded, not what it says: they differ
#: between any two sequences of runs, so comparisons leave them out.
LOAD_COLUMNS = frozenset({"extracted_at", "export_window_start", "export_window_end"})
#: Floating-point columns are compared at this many decimals (a sum's last bits depend on the
#: order DuckDB's threads add it up in).
FLOAT_DECIMALS = 6


def _model_columns(con, db: str, prefixes: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, type), ...]} of the model tables and views of attached database `db`."""
    rows = con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = ? order by table_name, ordinal_position",
        [db],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        if table.startswith(prefixes):
            out.setdefault(table, []).append((column, data_type))
    return out


def freeze_models(db: Path, dest: Path, *, prefixes: tuple[str, ...] = MODEL_PREFIXES) -> Path:
    """A copy of a warehouse's model tables and views as plain tables in `dest`.

    A copied warehouse file is not a snapshot: its views read the lake's files as they are
    when queried, so a later run on the same lake changes what they show."""
    import duckdb

    con = duckdb.connect(str(dest))
    try:
        con.execute(f"attach '{db}' as src (read_only)")
        for table in _model_columns(con, "src", prefixes):
            con.execute(f'create or replace table main."{table}" as select * from src."{table}"')
    finally:
        con.close()
    return dest


def warehouse_diffs(a: Path, b: Path, *, prefixes: tuple[str, ...] = MODEL_PREFIXES,
                    ignore: frozenset[str] = LOAD_COLUMNS) -> dict[str, str]:  # fmt: skip
    """How two DuckDB warehouses differ, table by table: {} when every model table/view named
    with one of `prefixes` holds the same rows in both (a multiset: `EXCEPT ALL` both ways),
    on every column but `ignore` (floating-point ones to `FLOAT_DECIMALS`). Otherwise
    {table: what differs}."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")

        cols_a, cols_b = (_model_columns(con, db, prefixes) for db in ("a", "b"))
        diffs = {t: "only in the first warehouse" for t in cols_a.keys() - cols_b.keys()}
        diffs |= {t: "only in the second warehouse" for t in cols_b.keys() - cols_a.keys()}
        for table in sorted(cols_a.keys() & cols_b.keys()):
            if cols_a[table] != cols_b[table]:
                diffs[table] = f"columns differ: {cols_a[table]} vs {cols_b[table]}"
                continue
            cols = ", ".join(f'round("{c}", {FLOAT_DECIMALS})' if t in ("DOUBLE", "FLOAT") else f'"{c}"'
                             for c, t in cols_a[table] if c not in ignore)  # fmt: skip
            only_a, only_b = (
                con.execute(
                    f'select count(*) from (select {cols} from {x}."{table}" '
                    f'except all select {cols} from {y}."{table}")'
                ).fetchone()[0]  # fmt: skip
                for x, y in (("a", "b"), ("b", "a"))
            )
            if only_a or only_b:
                n_a, n_b = (con.execute(f'select count(*) from {x}."{table}"').fetchone()[0] for x in ("a", "b"))
                diffs[table] = f"{only_a} of {n_a} rows only in the first, {only_b} of {n_b} only in the second"
        return diffs
    finally:
        con.close()
