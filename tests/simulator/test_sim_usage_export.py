"""Usage export: the job state machine, failures, pre-signed part URLs and the CSV parts
(several parts with a header each, column order, extra column, flag styles, broken parts)."""

from __future__ import annotations

import csv
import gzip
import io
import time
import zlib
from datetime import timedelta

import pytest
from sim_helpers import NOW, read_csv_part

from circleci_analytics.simulator import FaultRule
from circleci_analytics.simulator.usage_export import USAGE_COLUMNS

START = NOW - timedelta(days=6)
END = NOW - timedelta(days=1)


def _create(c, s, start=START, end=END):
    r = c.post(f"/organizations/{s.org.id}/usage_export_job", json={"start": start.isoformat(), "end": end.isoformat()})
    assert r.status_code == 201, r.text
    return r.json()


def _status(c, s, job_id):
    r = c.get(f"/organizations/{s.org.id}/usage_export_job/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _completed_urls(c, s, **create_kwargs) -> list[str]:
    job = _create(c, s, **create_kwargs)
    s.backend.advance_clock(s.config.export_processing_seconds + 1)
    body = _status(c, s, job["usage_export_job_id"])
    assert body["state"] == "completed", body
    return body["download_urls"]


def _all_rows(c, urls) -> tuple[list[list[str]], list[dict[str, str]]]:
    headers, rows = [], []
    for url in urls:
        r = c.get(url)
        assert r.status_code == 200, r.text
        header, part = read_csv_part(r.content)
        headers.append(header)
        rows += part
    return headers, rows


# -- state machine --------------------------------------------------------------------------
def test_created_then_processing_then_completed(make_sim, make_client):
    s = make_sim(export_processing_seconds=30.0)
    c = make_client(s)
    created = _create(c, s)
    assert created["state"] == "created" and created["download_urls"] == []
    assert created["start"] == START.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert created["end"] == END.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    job_id = created["usage_export_job_id"]
    states = []
    for step in (0, 11, 10, 10):
        s.backend.advance_clock(step)
        body = _status(c, s, job_id)
        assert "start" not in body and "end" not in body, "GET has no start/end"
        assert "error_reason" not in body
        states.append(body["state"])
        if body["state"] != "completed":
            assert body["download_urls"] == []
    assert states == ["created", "processing", "processing", "completed"]
    assert body["download_urls"]


def test_completes_in_real_time_with_small_processing_seconds(make_sim, make_client):
    s = make_sim(export_processing_seconds=0.05)
    c = make_client(s)
    job_id = _create(c, s)["usage_export_job_id"]
    deadline = time.monotonic() + 5
    while (state := _status(c, s, job_id)["state"]) != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state == "completed"


def test_each_post_creates_a_new_job(make_sim, make_client):
    s = make_sim()
    c = make_client(s)
    a, b = _create(c, s), _create(c, s)
    assert a["usage_export_job_id"] != b["usage_export_job_id"]
    assert [p[3] for p in s.backend.export_posts] == [a["usage_export_job_id"], b["usage_export_job_id"]]


def test_unknown_job_is_404(make_sim, make_client):
    s = make_sim()
    r = make_client(s).get(f"/organizations/{s.org.id}/usage_export_job/00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["message"]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"faults": (FaultRule("export_failed", route="createUsageExport", calls=(1,)),)}, "Internal error"),
        ({"faults": (FaultRule("export_too_large", route="createUsageExport", calls=(1,)),)}, "too large"),
        ({"export_max_rows": 100}, "too large"),
    ],
)
def test_export_fails_with_an_error_reason(make_sim, make_client, config, reason):
    s = make_sim(**config)
    c = make_client(s)
    job_id = _create(c, s)["usage_export_job_id"]
    s.backend.advance_clock(s.config.export_processing_seconds / 2)
    assert _status(c, s, job_id)["state"] == "processing"
    s.backend.advance_clock(s.config.export_processing_seconds)
    body = _status(c, s, job_id)
    assert body["state"] == "failed"
    assert reason in body["error_reason"]
    assert body["download_urls"] == []


def test_scripted_export_fault_hits_only_its_call(make_sim, make_client):
    s = make_sim(faults=(FaultRule("export_failed", route="createUsageExport", calls=(2,)),))
    c = make_client(s)
    ids = [_create(c, s)["usage_export_job_id"] for _ in range(3)]
    s.backend.advance_clock(5)
    assert [_status(c, s, i)["state"] for i in ids] == ["completed", "failed", "completed"]


def test_export_max_rows_large_enough_completes(make_sim, make_client):
    s = make_sim(export_max_rows=10**6)
    assert _completed_urls(make_client(s), s)


def test_null_download_urls_fault(make_sim, make_client):
    s = make_sim(faults=(FaultRule("null_urls", route="getUsageExport", calls=(1,)),))
    c = make_client(s)
    job_id = _create(c, s)["usage_export_job_id"]
    s.backend.advance_clock(5)
    first = _status(c, s, job_id)
    assert first["state"] == "completed" and first["download_urls"] is None
    assert _status(c, s, job_id)["download_urls"], "the next poll has the URLs"


# -- parts ------------------------------------------------------------------------------------
def test_several_parts_each_with_its_own_header(make_sim, make_client):
    s = make_sim(export_rows_per_part=200)
    c = make_client(s)
    urls = _completed_urls(c, s)
    assert len(urls) >= 2
    headers, rows = _all_rows(c, urls)
    assert all(h == list(USAGE_COLUMNS) for h in headers)
    assert len(USAGE_COLUMNS) == 48
    truth = [t for t in s.truth().job_runs().to_pylist() if START <= t["started_at"] <= END]
    assert sorted(r["JOB_ID"] for r in rows) == sorted(t["job_id"] for t in truth)
    for i, url in enumerate(urls):
        assert url.startswith("http://sim/") and f"/part-{i:04d}.csv.gz?" in url


def test_value_formats(make_sim, make_client):
    s = make_sim()
    c = make_client(s)
    _, rows = _all_rows(c, _completed_urls(c, s))
    assert rows
    row = rows[0]
    assert len(row["JOB_RUN_STARTED_AT"]) == 19 and row["JOB_RUN_STARTED_AT"][10] == " "
    assert len(row["JOB_RUN_DATE"]) == 10
    assert {r["IS_WORKFLOW_SUCCESSFUL"] for r in rows} == {"true", "false"}
    assert {r["IS_UNREGISTERED_USER"] for r in rows} == {"false"}
    short = [r for r in rows if int(r["JOB_RUN_SECONDS"]) < 15]
    assert short and all(r["MEDIAN_CPU_UTILIZATION_PCT"] == "\\N" for r in short)
    assert all(r["TOTAL_CREDITS"].count(".") == 1 for r in rows)


def test_yn_flag_style(make_sim, make_client):
    s = make_sim(export_flag_style="YN")
    c = make_client(s)
    _, rows = _all_rows(c, _completed_urls(c, s))
    assert {r["IS_WORKFLOW_SUCCESSFUL"] for r in rows} == {"Y", "N"}
    assert {r["IS_UNREGISTERED_USER"] for r in rows} == {"N"}


def test_shuffled_columns_and_extra_column_carry_the_same_rows(make_sim, make_client):
    plain = make_sim(export_rows_per_part=100)
    odd = make_sim(export_rows_per_part=100, export_shuffle_columns=True, export_extra_column=True)
    pc, oc = make_client(plain), make_client(odd)
    p_headers, p_rows = _all_rows(pc, _completed_urls(pc, plain))
    o_headers, o_rows = _all_rows(oc, _completed_urls(oc, odd))
    assert len(o_headers) >= 2
    assert all(set(h) == set(USAGE_COLUMNS) | {"IS_DEFAULT_BRANCH"} for h in o_headers)
    assert all(h != list(USAGE_COLUMNS) for h in o_headers)
    assert len({tuple(h) for h in o_headers}) > 1, "each part shuffles its own columns"
    stripped = [{k: v for k, v in r.items() if k != "IS_DEFAULT_BRANCH"} for r in o_rows]
    key = lambda r: r["JOB_ID"]  # noqa: E731
    assert sorted(stripped, key=key) == sorted(p_rows, key=key)
    default = {p.id: p.default_branch for p in odd.projects}
    for r in o_rows:
        assert r["IS_DEFAULT_BRANCH"] == ("true" if r["VCS_BRANCH"] == default[r["PROJECT_ID"]] else "false")


def test_hostile_branch_name_survives_csv_quoting(make_sim, make_client):
    from circleci_analytics.simulator.catalog import HOSTILE_BRANCH

    s = make_sim()
    c = make_client(s)
    _, rows = _all_rows(c, _completed_urls(c, s, start=NOW - timedelta(days=29), end=NOW - timedelta(hours=1)))
    assert HOSTILE_BRANCH in {r["VCS_BRANCH"] for r in rows}


def test_window_without_jobs_gives_a_header_only_part(make_sim, make_client):
    s = make_sim()
    c = make_client(s)
    urls = _completed_urls(c, s, start=s.history.end + timedelta(hours=1), end=NOW - timedelta(minutes=1))
    headers, rows = _all_rows(c, urls)
    assert headers and all(h == list(USAGE_COLUMNS) for h in headers)
    assert rows == []


# -- pre-signed URLs --------------------------------------------------------------------------
def test_presigned_url_works_without_a_token(make_sim, make_client):
    s = make_sim()
    urls = _completed_urls(make_client(s), s)
    r = make_client(s, auth=False).get(urls[0])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/gzip")
    assert gzip.decompress(r.content).startswith(b"ORGANIZATION_ID,")


def test_presigned_url_expires_after_ttl(make_sim, make_client):
    s = make_sim(url_ttl_seconds=60)
    c = make_client(s)
    urls = _completed_urls(c, s)
    assert c.get(urls[0]).status_code == 200
    s.backend.advance_clock(30)
    assert c.get(urls[0]).status_code == 200
    s.backend.advance_clock(31)
    r = c.get(urls[0])
    assert r.status_code == 403 and b"expired" in r.content
    fresh = _status(c, s, s.backend.export_posts[0][3])["download_urls"]
    assert fresh != urls and c.get(fresh[0]).status_code == 200, "a new poll signs fresh URLs"


@pytest.mark.parametrize("tamper", ["signature", "expiry", "part", "no signature"])
def test_tampered_url_is_refused(make_sim, make_client, tamper):
    s = make_sim(export_rows_per_part=100)
    c = make_client(s, auth=False)
    urls = _completed_urls(make_client(s), s)
    url = urls[0]
    base, query = url.split("?")
    params = dict(p.split("=") for p in query.split("&"))
    if tamper == "signature":
        params["X-Sim-Signature"] = ("0" if params["X-Sim-Signature"][0] != "0" else "1") + params["X-Sim-Signature"][
            1:
        ]
    elif tamper == "expiry":
        params["X-Sim-Expires"] = str(int(params["X-Sim-Expires"]) + 10_000)
    elif tamper == "part":
        base = base.replace("part-0000", "part-0001")
    else:
        del params["X-Sim-Signature"]
    r = c.get(base + "?" + "&".join(f"{k}={v}" for k, v in params.items()))
    assert r.status_code == 403


def test_expire_url_fault(make_sim, make_client):
    s = make_sim(faults=(FaultRule("expire_url", route="downloadUsagePart", calls=(1,)),))
    c = make_client(s)
    urls = _completed_urls(c, s)
    assert c.get(urls[0]).status_code == 403
    assert c.get(urls[0]).status_code == 200


# -- broken parts -----------------------------------------------------------------------------
def test_truncated_part_fails_to_decompress(make_sim, make_client):
    s = make_sim(faults=(FaultRule("truncate_part", route="downloadUsagePart", calls=(1,)),))
    c = make_client(s)
    urls = _completed_urls(c, s)
    broken = c.get(urls[0])
    assert broken.status_code == 200
    with pytest.raises((EOFError, gzip.BadGzipFile, zlib.error)):
        gzip.decompress(broken.content)
    assert gzip.decompress(c.get(urls[0]).content), "only the scripted download is cut"


def test_malformed_row_is_present(make_sim, make_client):
    s = make_sim(faults=(FaultRule("malformed_row", route="downloadUsagePart", calls=(1,)),))
    c = make_client(s)
    urls = _completed_urls(c, s)
    text = gzip.decompress(c.get(urls[0]).content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    short = [r for r in rows[1:] if len(r) != len(header)]
    assert short, "a row cut short"
    bad = [dict(zip(header, r)) for r in rows[1:] if len(r) == len(header)]
    assert any(r["TOTAL_CREDITS"] == "twelve" for r in bad)
    clean = gzip.decompress(c.get(urls[0]).content).decode()
    assert all(len(r) == len(header) for r in csv.reader(io.StringIO(clean)))
