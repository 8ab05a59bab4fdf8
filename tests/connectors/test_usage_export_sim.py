"""Usage export end to end against the in-process simulator (clock advanced, never slept)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from connector_helpers import run

from circleci_analytics.connectors import CircleCIClient, RetryPolicy
from circleci_analytics.connectors.usage_export import (
    LocalStateStore,
    MemoryStateStore,
    StateStore,
    UsageExportError,
    UsageExportResult,
    export_usage,
)
from circleci_analytics.simulator import FaultRule, SimConfig, Simulator, create_app
from circleci_analytics.simulator.history import CREDIT_TYPES

NOW = datetime(2026, 6, 1, tzinfo=UTC)
START = NOW - timedelta(days=10)
END = NOW - timedelta(days=2)
POLL = 30.0  # simulated seconds between GETs; the sim clock is advanced, nothing sleeps


class Crash(Exception):
    pass


class Harness:
    """A simulator plus clients whose sleeps advance the simulator clock."""

    def __init__(self, **changes: Any) -> None:
        changes.setdefault("rate_limits", {})
        base = SimConfig(seed=7, preset="tiny", now=NOW, export_rows_per_part=400, export_processing_seconds=60.0)
        self.sim = Simulator(base.with_(**changes))
        self.app = create_app(self.sim)
        self.downloads: list[httpx.Request] = []
        self.api_calls: list[httpx.Request] = []
        self.crash_after_sleeps: int | None = None
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.crash_after_sleeps is not None and self.sleeps > self.crash_after_sleeps:
            raise Crash
        self.sim.backend.advance_clock(max(0.0, seconds))
        await asyncio.sleep(0)

    async def export(self, tmp: Path, store: StateStore | None = None, *, own_download_client: bool = False,
                     **kw: Any) -> UsageExportResult:  # fmt: skip
        """Export through one client (API calls and part downloads); every request is recorded."""

        async def record(request: httpx.Request) -> None:
            (self.downloads if request.url.path.startswith("/__sim/") else self.api_calls).append(request)

        transport = httpx.ASGITransport(app=self.app)
        retry = RetryPolicy(max_attempts=4, sleep=self.sleep, jitter=0.0)
        async with (
            httpx.AsyncClient(transport=transport, event_hooks={"request": [record]}) as http,
            CircleCIClient(
                self.sim.token, "http://sim/api/v2", http_client=http, retry=retry, rate_limits={"usage_export": None}
            ) as client,  # fmt: skip
        ):
            kw.setdefault("poll_interval", POLL)
            if own_download_client:
                kw["download_client"] = http
            return await export_usage(
                client, self.sim.org.id, kw.pop("start", START), kw.pop("end", END), workdir=tmp,
                state_store=store if store is not None else MemoryStateStore(),
                now=self.sim.backend.clock_now, sleep=self.sleep, clock=self.sim.backend.wall, **kw,
            )  # fmt: skip

    def truth(self, start: datetime = START, end: datetime = END) -> pl.DataFrame:
        df = pl.from_arrow(self.sim.truth().job_runs())
        started = pl.col("started_at")
        if df.schema["started_at"].time_zone is None:  # type: ignore[union-attr]
            started = started.dt.replace_time_zone("UTC")
        return df.filter(started.is_between(start, end, closed="both"))


def credit_sums(df: pl.DataFrame) -> dict[str, Decimal]:
    return {c: Decimal(str(df.get_column(f"{c}_credits").sum())) for c in (*CREDIT_TYPES, "total")}


def assert_matches_truth(
    h: Harness, res: UsageExportResult, start: datetime = START, end: datetime = END
) -> pl.DataFrame:
    out = pl.read_parquet(res.output)
    truth = h.truth(start, end)
    assert truth.height > 100
    assert res.rows == out.height == truth.height
    assert set(out.get_column("job_id")) == set(truth.get_column("job_id"))
    assert credit_sums(out) == credit_sums(truth)
    return out


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("own_download_client", [False, True])
def test_export_equals_ground_truth_and_downloads_carry_no_token(tmp: Path, own_download_client: bool) -> None:
    h = Harness()
    res = run(h.export(tmp, own_download_client=own_download_client))
    out = assert_matches_truth(h, res)
    assert res.parts > 1 and res.quarantined_rows == 0 and res.unknown_columns == ()
    assert res.calls["post"] == 1 == len(h.sim.backend.export_posts)
    assert len(h.downloads) == res.calls["download"] == res.parts
    assert all(r.headers.get("circle-token") == h.sim.token for r in h.api_calls)
    assert all("circle-token" not in r.headers and "authorization" not in r.headers for r in h.downloads)
    assert out.get_column("export_window_start").unique().to_list() == [START]
    assert not (tmp / "parts").exists() or not any((tmp / "parts").iterdir())


def test_yn_flags_shuffled_columns_and_unknown_column(tmp: Path) -> None:
    h = Harness(export_flag_style="YN", export_shuffle_columns=True, export_extra_column=True)
    res = run(h.export(tmp))
    out = assert_matches_truth(h, res)
    assert res.unknown_columns == ("IS_DEFAULT_BRANCH",)
    assert out.get_column("extra_columns").str.contains("IS_DEFAULT_BRANCH").all()
    truth = h.truth().select("job_id", (pl.col("workflow_status") == "success").alias("ok"))
    joined = out.join(truth, on="job_id")
    assert (joined.get_column("is_workflow_successful") == joined.get_column("ok")).all()


def test_window_longer_than_31_days_is_split_and_deduplicated(tmp: Path) -> None:
    h = Harness()
    start, end = NOW - timedelta(days=27), NOW - timedelta(hours=1)
    res = run(h.export(tmp, start=start, end=end, max_window=timedelta(days=9)))
    assert len(res.windows) == 3 and len(h.sim.backend.export_posts) == 3
    assert_matches_truth(h, res, start, end)


def test_rate_limited_gets_are_waited_out(tmp: Path) -> None:
    from circleci_analytics.simulator import FamilyLimit

    limits = {"usage_export_post": FamilyLimit(10, 3600), "usage_export_get": FamilyLimit(1, 3600)}
    h = Harness(rate_limits=limits)
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert res.calls["rate_limited"] >= 1


def test_server_errors_are_retried(tmp: Path) -> None:
    faults = (FaultRule("status", route="getUsageExport", calls=(1, 2), status=503),
              FaultRule("status", route="createUsageExport", calls=(1,), status=500))  # fmt: skip
    h = Harness(faults=faults)
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert len(h.sim.backend.export_posts) == 1


def test_truncated_part_is_downloaded_again(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("truncate_part", route="downloadUsagePart", calls=(1,)),))
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert res.calls["download_retries"] == 1
    assert res.calls["download"] == res.parts + 1


def test_failed_export_is_created_again(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("export_failed", route="createUsageExport", calls=(1,)),))
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert res.calls["post"] == 2 == len(h.sim.backend.export_posts)


def test_failed_export_gives_up_after_bounded_attempts(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("export_failed", route="createUsageExport", probability=1.0),))
    with pytest.raises(UsageExportError, match="failed 2 times"):
        run(h.export(tmp, max_attempts=2))
    assert len(h.sim.backend.export_posts) == 2


def test_too_large_export_is_split_in_halves(tmp: Path) -> None:
    h = Harness()
    full = h.truth().height
    h = Harness(export_max_rows=full * 2 // 3)
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert len(res.windows) >= 2
    assert res.windows[0].start == START and res.windows[-1].end == END
    posted = h.sim.backend.export_posts
    assert (posted[0][1], posted[0][2]) == (START, END) and len(posted) >= 3


def test_completed_with_null_urls_is_polled_again(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("null_urls", route="getUsageExport", limit=2, probability=1.0),))
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert res.calls["post"] == 1


def test_completed_with_null_urls_forever_is_a_clear_error(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("null_urls", route="getUsageExport", probability=1.0),))
    with pytest.raises(UsageExportError, match="download_urls is None"):
        run(h.export(tmp, max_empty_url_polls=2))


def test_expired_url_is_refreshed(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("expire_url", route="downloadUsagePart", calls=(1,)),))
    res = run(h.export(tmp))
    assert_matches_truth(h, res)
    assert res.calls["url_refreshes"] == 1 and res.calls["post"] == 1


def test_url_expiring_by_ttl_is_refreshed(tmp: Path) -> None:
    # URLs live 10 simulated seconds; every download sleep (one retry) outlives them.
    h = Harness(url_ttl_seconds=10.0, faults=(FaultRule("truncate_part", route="downloadUsagePart", calls=(1,)),))
    res = run(h.export(tmp))
    assert_matches_truth(h, res)


def test_malformed_rows_are_quarantined_and_counted(tmp: Path) -> None:
    h = Harness(faults=(FaultRule("malformed_row", route="downloadUsagePart", calls=(1,)),))
    res = run(h.export(tmp))
    assert res.quarantined_rows == 2
    q = pl.read_parquet(res.quarantine)
    reasons = sorted(q.get_column("reason").to_list())
    assert reasons[0].startswith("expected 48 fields") and "TOTAL_CREDITS" in reasons[1]
    assert_matches_truth(h, res)


def test_resume_after_crash_between_post_and_completion_posts_once(tmp: Path) -> None:
    h = Harness()
    store = MemoryStateStore()
    h.crash_after_sleeps = 0  # crash at the first wait after the POST
    with pytest.raises(Crash):
        run(h.export(tmp, store=store))
    assert len(h.sim.backend.export_posts) == 1
    h.crash_after_sleeps = None
    res = run(h.export(tmp, store=store))
    assert len(h.sim.backend.export_posts) == 1
    assert res.calls["post"] == 0 and res.calls["resumed"] == 1
    assert res.job_ids == (h.sim.backend.export_posts[0][3],)
    assert_matches_truth(h, res)


def test_resume_with_the_local_file_state_store(tmp: Path) -> None:
    h = Harness()
    h.crash_after_sleeps = 0
    with pytest.raises(Crash):
        run(h.export(tmp, store=LocalStateStore(tmp / "state")))
    h.crash_after_sleeps = None
    res = run(h.export(tmp, store=LocalStateStore(tmp / "state")))
    assert len(h.sim.backend.export_posts) == 1 and res.calls["post"] == 0
    assert len(list((tmp / "state").rglob("*.json"))) == 1
