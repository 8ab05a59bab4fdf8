"""Fixtures shared across test folders: an S3 object store on loopback (moto's server)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

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
