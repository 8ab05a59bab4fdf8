"""Usage export: windows, the state store and part downloads through the client (no simulator)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from connector_helpers import FakeSleep, run

from circleci_analytics.connectors import ExpiredUrl, RetryPolicy, TransportFailure
from circleci_analytics.connectors.usage_export import (
    ExportState,
    LocalStateStore,
    MemoryStateStore,
    Window,
    plan_windows,
    state_key,
)
from circleci_analytics.connectors.usage_export.export import part_filename
from circleci_analytics.connectors.usage_export.merge import check_gzip
from circleci_analytics.connectors.usage_export.state import PartRecord, load_state, save_state

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


# -- windows ------------------------------------------------------------------------------------
def test_windows_are_at_most_31_days_contiguous_and_cover_the_range() -> None:
    start = NOW - timedelta(days=200)
    ws = plan_windows(start, NOW - timedelta(days=1), now=NOW)
    assert ws[0].start == start and ws[-1].end == NOW - timedelta(days=1)
    assert all(w.end - w.start <= timedelta(days=31) for w in ws)
    assert all(a.end == b.start for a, b in zip(ws, ws[1:]))
    assert len(ws) == 7


def test_end_is_clamped_to_now_minus_margin() -> None:
    ws = plan_windows(NOW - timedelta(days=3), NOW + timedelta(days=5), now=NOW)
    assert ws[-1].end == NOW - timedelta(seconds=60)


def test_start_more_than_a_year_ago_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="more than 365 days ago"):
        plan_windows(NOW - timedelta(days=366), NOW, now=NOW)


def test_empty_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        plan_windows(NOW + timedelta(hours=1), NOW + timedelta(days=1), now=NOW)


def test_naive_datetimes_are_utc_and_halves_share_the_middle() -> None:
    (w,) = plan_windows(datetime(2026, 5, 1), datetime(2026, 5, 3), now=NOW)
    assert w.start.tzinfo is not None and w.start_iso == "2026-05-01T00:00:00Z"
    a, b = w.halves()
    assert (a.start, a.end, b.start, b.end) == (w.start, datetime(2026, 5, 2, tzinfo=UTC), a.end, w.end)


# -- state -------------------------------------------------------------------------------------
def test_state_round_trips_through_the_local_store_atomically(tmp_path: Path) -> None:
    store = LocalStateStore(tmp_path)
    w = Window(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC))
    assert load_state(store, "org/../1", w).state == "new"
    st = ExportState(
        "org/../1", w.start, w.end, "job-1", "processing", NOW, 2, NOW, 3, None, [PartRecord("p", "x/p", 5)]
    )
    save_state(store, st)
    assert load_state(store, "org/../1", w) == st
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".json"
    assert tmp_path in files[0].parents  # the key cannot escape the root
    assert state_key("o", w) == "usage_export/o/20260501T000000Z_20260531T000000Z.json"


def test_memory_store_get_put() -> None:
    store = MemoryStateStore()
    assert store.get("k") is None
    store.put("k", b"v")
    assert store.get("k") == b"v"


# -- downloads ---------------------------------------------------------------------------------
def _gz(n: int = 50) -> bytes:
    return gzip.compress(("".join(f"line {i}\n" for i in range(n))).encode())


def test_download_sends_no_token_and_redownloads_a_truncated_part(tmp_path: Path, make_client) -> None:
    body = _gz()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(body[:-10] if len(seen) == 1 else body))

    async def go() -> tuple[int, dict]:
        async with make_client(handler) as client:
            size = await client.download(
                "https://s3.test/x/part-0001.csv.gz?sig=1", tmp_path / "p.csv.gz", verify=check_gzip
            )
            return size, client.stats.as_dict()

    size, stats = run(go())
    assert size == len(body)
    assert len(seen) == 2 and stats["calls"] == {"download": 2} and stats["retries"] == {"download": 1}
    assert all("circle-token" not in r.headers and "authorization" not in r.headers for r in seen)
    assert (tmp_path / "p.csv.gz").read_bytes() == body
    assert not list(tmp_path.glob("*.download"))


def test_download_never_sends_the_token_even_if_the_http_client_has_it(tmp_path: Path, make_client) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(_gz()))

    async def go() -> None:
        headers = {"Circle-Token": "leaky", "Authorization": "Bearer leaky"}
        async with (
            make_client(handler) as client,
            httpx.AsyncClient(transport=httpx.MockTransport(handler), headers=headers) as http,
        ):
            await client.download("https://s3.test/p.csv.gz", tmp_path / "p.csv.gz", verify=check_gzip, http=http)

    run(go())
    assert len(seen) == 1 and "circle-token" not in seen[0].headers and "authorization" not in seen[0].headers


def test_download_gives_up_after_bounded_attempts(tmp_path: Path, make_client, fake_sleep: FakeSleep) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(_gz()[:-10]))

    async def go() -> None:
        async with make_client(handler, retry=RetryPolicy(max_attempts=2, sleep=fake_sleep)) as client:
            await client.download(
                "https://s3.test/p.csv.gz?X-Signature=s3cr3t", tmp_path / "p.csv.gz", verify=check_gzip
            )

    with pytest.raises(TransportFailure, match="arrived corrupt.*gave up after 2 attempt") as info:
        run(go())
    assert len(calls) == 2 and "s3cr3t" not in str(info.value)  # the URL's signature is not in errors
    assert not list(tmp_path.iterdir())


def test_download_403_means_expired_and_is_not_retried(tmp_path: Path, make_client) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>")

    async def go() -> None:
        async with make_client(handler) as client:
            await client.download("https://s3.test/p.csv.gz", tmp_path / "p.csv.gz", verify=check_gzip)

    with pytest.raises(ExpiredUrl, match="fresh URLs"):
        run(go())
    assert len(calls) == 1


def test_part_filename() -> None:
    assert part_filename("https://x/a/b/part-0003.csv.gz?X-Amz=1", 9) == "part-0003.csv.gz"
    assert part_filename("https://x/download?id=7", 2) == "part-0002.csv.gz"
