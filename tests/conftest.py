"""Fixtures shared across test folders: an S3 object store on loopback (moto's server), a
lake on a local folder or on it, a webhook receiver (a real HTTP server on loopback collecting
POSTs), small hand-built marts for the alert rules."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from circleci_analytics.warehouse import Lake


def _atomic_conditional_puts() -> None:
    """Make moto's conditional PUTs atomic, as S3's are: moto checks If-Match / If-None-Match and
    then writes, unlocked, so two racing writers of the lease record could both win on its
    threaded server (a row of a racing-writers test was lost that way under load)."""
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "_atomic", False):
        return
    lock = threading.Lock()

    def put_object(self: S3Response) -> object:
        with lock:
            return original(self)

    put_object._atomic = True  # type: ignore[attr-defined]
    S3Response.put_object = put_object  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """host:port of a moto S3 server on loopback, for the whole session."""
    moto_server = pytest.importorskip("moto.server")
    _atomic_conditional_puts()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    """An empty lake under a prefix of a fresh bucket (emptied and removed afterwards)."""
    boto3 = pytest.importorskip("boto3")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="lake-bucket")
    yield Lake(f"s3://lake-bucket/analytics/lake?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")
    for obj in s3.list_objects_v2(Bucket="lake-bucket").get("Contents", []):
        s3.delete_object(Bucket="lake-bucket", Key=obj["Key"])
    s3.delete_bucket(Bucket="lake-bucket")


@pytest.fixture
def local_lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest) -> Lake:
    """A lake on a local folder, then on the S3 server."""
    return request.getfixturevalue(f"{request.param}_lake")


class WebhookReceiver:
    """A JSON webhook on 127.0.0.1 (port 0): keeps every POST (path, parsed body) and answers
    `status`. `take()` returns what arrived since the last call."""

    def __init__(self) -> None:
        self.status = 200
        self._posts: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver._posts.append((self.path, json.loads(body or b"{}")))
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        """An apprise JSON-webhook URL posting to `path` here."""
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def take(self) -> list[tuple[str, dict]]:
        with self._lock:
            posts, self._posts = self._posts, []
        return posts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


# -- hand-built marts for the alert rules -------------------------------------------------------
ALERT_MARTS_AS_OF = "2026-06-10"  # a Wednesday: the last complete week starts on Monday 2026-06-01

ALERT_MARTS_SCHEMA = """
create table warehouse_meta (as_of_date date);
create table fct_credit_anomalies (spend_date date, project_id varchar, project_slug varchar, credits decimal(38, 6),
    threshold_credits double, excess_credits double, is_anomaly boolean);
create table fct_credit_month_to_date (as_of_date date, month_start date, days_left integer, org_id varchar,
    project_id varchar, team varchar, mtd_credits decimal(38, 6), forecast_credits decimal(38, 6));
create table fct_flaky_tests (project_slug varchar, job_name varchar, classname varchar, test_name varchar,
    times_flaked bigint, last_flake_at timestamptz, currently_flaky boolean, credits_wasted decimal(38, 6));
create table fct_mttr_weekly (project_slug varchar, workflow_name varchar, branch varchar, week_start date,
    recoveries bigint, mttr_mean_seconds double);
"""


def make_marts(path: Path, **rows: list[tuple[Any, ...]]) -> Path:
    """A new warehouse file at `path` with the marts the rules read, holding `rows` per table."""
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(ALERT_MARTS_SCHEMA)
        con.execute("insert into warehouse_meta values (?)", [ALERT_MARTS_AS_OF])
        for table, values in rows.items():
            for row in values:
                con.execute(f"insert into {table} values ({', '.join('?' * len(row))})", list(row))
    finally:
        con.close()
    return path


@pytest.fixture
def alert_marts(tmp_path: Path) -> Callable[..., Path]:
    """`alert_marts(table=[rows])`: a new warehouse file (the same path each call) with them."""

    def make(**rows: list[tuple[Any, ...]]) -> Path:
        return make_marts(tmp_path / "warehouse.duckdb", **rows)

    return make
