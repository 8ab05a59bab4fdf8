"""Fixtures shared across test folders: an S3 object store on loopback (moto's server), a
webhook receiver (a real HTTP server on loopback collecting POSTs)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from circleci_analytics.warehouse import Lake


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """host:port of a moto S3 server on loopback, for the whole session."""
    moto_server = pytest.importorskip("moto.server")
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
