"""Call- and pass-saving paths: one probe per job name without tests; a short row that
parses is re-checked and excluded before de-duplication."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl

from circleci_analytics.connectors import JobRef, extract_job_tests
from circleci_analytics.connectors.usage_export import CSV_COLUMNS, PartInput, merge_parts

SLUG = "gh/acme/api"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_name_without_tests_costs_one_probe(make_client) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.path.rstrip("/").split("/")[-2])
        calls.append(number)
        items = [{"name": "t", "classname": "A", "result": "success", "run_time": 1}] if number < 10 else []
        return httpx.Response(200, json={"items": items, "next_page_token": None})

    jobs = [JobRef(SLUG, n, "lint", job_status="success") for n in (11, 12, 13)]
    jobs += [JobRef(SLUG, 1, "unit", job_status="canceled"), JobRef(SLUG, 2, "unit", job_status="success")]

    async def go():
        async with make_client(handler) as client:
            return await extract_job_tests(client, jobs, now=NOW)

    result = asyncio.run(go())
    assert len([c for c in calls if c >= 10]) == 1  # lint learned from one job
    assert calls.index(2) < calls.index(1)  # the successful unit job is the probe
    assert sorted(c for c in calls if c < 10) == [1, 2]
    assert result.skipped == {"known_without_tests": 2} and result.probed == 3
    assert result.state.no_test_jobs == {(SLUG, "lint"): NOW}
    assert {(SLUG, 1), (SLUG, 2)} <= result.state.seen
    assert not {(SLUG, 12), (SLUG, 13)} & result.state.seen  # skipped, not landed


def _line(job_id: str, n: int | None = None) -> str:
    values = {c: "1" if c.endswith(("CREDITS", "NUMBER", "PARALLELISM")) else "x" for c in CSV_COLUMNS}
    values |= {c: "2026-05-03 10:11:12" for c in CSV_COLUMNS if c.endswith(("_AT", "_DATE"))}
    values |= {c: "true" for c in ("IS_UNREGISTERED_USER", "IS_WORKFLOW_SUCCESSFUL")}
    values |= {c: "1.5" for c in CSV_COLUMNS if c.endswith("_PCT") or c == "JOB_RUN_SECONDS"}
    values["JOB_ID"] = job_id
    fields = [values[c] for c in CSV_COLUMNS]
    return ",".join(fields[:n] if n else fields)


def test_short_row_that_parses_is_quarantined_and_does_not_shadow_a_later_row(tmp_path: Path) -> None:
    # 30 of 48 fields: JOB_ID (field 24) is there and the padding parses as empty values.
    text = "\n".join([",".join(CSV_COLUMNS), _line("j0"), _line("j1", 30), _line("j1")]) + "\n"
    part = tmp_path / "p.csv.gz"
    part.write_bytes(gzip.compress(text.encode()))
    stats = merge_parts(
        [PartInput(part, "p", NOW, NOW)], tmp_path / "o.parquet", tmp_path / "q.parquet", extracted_at=NOW
    )
    out, q = pl.read_parquet(tmp_path / "o.parquet"), pl.read_parquet(tmp_path / "q.parquet")
    assert out.get_column("job_id").to_list() == ["j0", "j1"]
    assert out.row(1, named=True)["job_name"] == "x" and out.row(1, named=True)["total_credits"] is not None
    assert q.rows() and q.row(0, named=True)["line_number"] == 3
    assert q.row(0, named=True)["reason"] == "expected 48 fields, got 30"
    assert (stats.rows, stats.quarantined, stats.duplicates) == (2, 1, 0)
