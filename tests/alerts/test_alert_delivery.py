"""Delivery through apprise to a real receiver; the URL never reaches a log or an error."""

from __future__ import annotations

import logging

import pytest

from circleci_analytics.alerts.deliver import Notification, deliver, destination_id, secret_parts

SECRET = "Zq8Wx3Lp0Rt6"


@pytest.fixture
def talkative_logs(caplog):
    """apprise, requests and urllib3 at DEBUG (they quote URLs there), captured."""
    caplog.set_level(logging.DEBUG)
    for name in ("apprise", "urllib3", "requests"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_delivered_to_the_json_webhook(webhook_receiver, talkative_logs) -> None:
    webhook_receiver.take()
    url = webhook_receiver.url(f"hook/{SECRET}")
    assert deliver(url, Notification("a title", "line one\nline two", "failure")) is None
    ((path, body),) = webhook_receiver.take()
    assert path == f"/hook/{SECRET}"
    assert (body["title"], body["message"], body["type"]) == ("a title", "line one\nline two", "failure")
    assert "JSON" in talkative_logs.text and SECRET not in talkative_logs.text


def test_a_500_is_an_error_without_the_url(webhook_receiver, talkative_logs) -> None:
    webhook_receiver.status = 500
    try:
        error = deliver(webhook_receiver.url(f"hook/{SECRET}"), Notification("t", "b"))
    finally:
        webhook_receiver.status = 200
    assert error and "500" in error and SECRET not in error
    assert SECRET not in talkative_logs.text


def test_an_unreachable_receiver_is_an_error_without_the_url(talkative_logs) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = deliver(f"json://127.0.0.1:{port}/hook/{SECRET}", Notification("t", "b"))
    assert error and SECRET not in error and SECRET not in talkative_logs.text


def test_an_unknown_scheme_is_an_error_naming_the_destination_id() -> None:
    url = f"nosuchservice://{SECRET}"
    error = deliver(url, Notification("t", "b"))
    assert error == f"{destination_id(url)}: not a URL apprise can send to"


def test_destination_id_names_the_scheme_only() -> None:
    a, b = f"slack://T0/B0/{SECRET}", f"slack://T0/B0/{SECRET}x"
    assert destination_id(a).startswith("slack#") and destination_id(a) != destination_id(b)
    assert SECRET not in destination_id(a)


def test_secret_parts_cover_credentials_path_and_query() -> None:
    parts = secret_parts(f"mailto://user:{SECRET}@example.com/?to=ops@example.com&pass=hunter22")
    assert SECRET in parts and "hunter22" in parts and "ops@example.com" in parts
