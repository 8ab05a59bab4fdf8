"""The token: normalised before any request, every representation scrubbed from errors and logs."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote, quote_plus

import httpx
import pytest
from connector_helpers import run

from circleci_analytics.connectors import CircleCIClient, CircleCIError, InvalidToken, RetryPolicy, TransportFailure
from circleci_analytics.connectors.auth import REDACTED, Redactor, normalize_token, token_forms

#: Every encoding of this token differs from the raw text.
TOKEN = "CCIPAT_Zq8xW2+/=%'\"\\_9f3b2c7d1e5a"


def representations(token: str) -> dict[str, str]:
    return {
        "raw": token,
        "quote": quote(token, safe=""),
        "quote /": quote(token),
        "quote_plus": quote_plus(token),
        "lower-case escapes": re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(token, safe="")),
        "repr": repr(token)[1:-1],
        "unicode_escape": token.encode("unicode_escape").decode(),
        "json": json.dumps(token)[1:-1],
        "bytes repr": repr(token.encode())[2:-1],
        "json of repr": json.dumps(repr(token))[1:-1],
        "repr of json": repr(json.dumps(token))[1:-1],
        "repr of bytes with newline": repr((token + "\n").encode()),
    }


def parts_of(token: str, size: int = 5) -> list[str]:
    return [token[i : i + size] for i in range(len(token) - size + 1)]


# -- normalize_token ---------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [TOKEN, TOKEN + "\n", TOKEN + "\r\n", f"  \t{TOKEN} \n", "\ufeff" + TOKEN])
def test_surrounding_whitespace_is_stripped(raw: str) -> None:
    assert normalize_token(raw) == TOKEN


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "is empty"),
        (" \n\t", "is empty (only whitespace)"),
        ("CCIPAT_ab cd_ef", "contains a whitespace character (position 10)"),
        ("CCIPAT_ab\tcd_ef", "contains a whitespace character (position 10)"),
        ("CCIPAT_ab\x00cd_ef", "contains a control character (position 10)"),
        ("CCIPAT_ab\x7fcd_ef", "contains a control character (position 10)"),
        ("\n CCIPAT_abécd_ef", "contains a non-ASCII character (position 12)"),
        ("CCIPAT_ab\u200bcd_ef", "contains a non-ASCII character (position 10)"),
    ],
)
def test_malformed_tokens_are_refused_without_showing_them(raw: str, problem: str) -> None:
    with pytest.raises(InvalidToken) as info:
        normalize_token(raw)
    message = str(info.value)
    assert f"the CircleCI token {problem}" in message
    assert isinstance(info.value, CircleCIError)
    assert not [p for p in parts_of(raw.strip()) if p in message]


def test_the_client_sends_the_stripped_token_and_refuses_a_malformed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["circle-token"])
        return httpx.Response(200, json={})

    async def go(**kwargs: str) -> None:
        async with CircleCIClient(transport=httpx.MockTransport(handler), **kwargs) as client:
            await client.get_json("/me")

    run(go(token=TOKEN + "\n"))
    monkeypatch.setenv("CIRCLECI_TOKEN", f" {TOKEN}\r\n")  # as a secret file or Secret block may hold it
    run(go())
    assert seen == [TOKEN, TOKEN]
    for bad in ("ab\ncd", "abécd"):
        with pytest.raises(InvalidToken):
            CircleCIClient(bad, transport=httpx.MockTransport(handler))
    assert len(seen) == 2


# -- scrubbing ---------------------------------------------------------------------------------
def test_every_representation_is_scrubbed() -> None:
    redact = Redactor([TOKEN])
    for name, form in representations(TOKEN).items():
        cleaned = redact(f"before {form} after")
        assert "9f3b2c7d1e5a" not in cleaned, name
        assert cleaned.startswith("before ") and REDACTED in cleaned, name
    assert redact("nothing to hide") == "nothing to hide"
    assert TOKEN not in repr(redact)


def test_token_forms_include_the_raw_and_nested_escapes() -> None:
    forms = token_forms(TOKEN)
    single = {"raw", "quote", "quote /", "quote_plus", "lower-case escapes", "repr", "unicode_escape", "json",
              "bytes repr"}  # fmt: skip
    assert {form for name, form in representations(TOKEN).items() if name in single} <= forms
    assert json.dumps(repr(TOKEN)[1:-1])[1:-1] in forms  # nested: a repr inside a JSON document


def test_exceptions_logged_through_httpx_and_our_loggers_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    names = ("httpx", "httpcore.http11", "circleci_analytics.connectors", "circleci_analytics.connectors.usage_export")
    caplog.set_level(logging.DEBUG)

    async def go() -> None:
        async with CircleCIClient(TOKEN, transport=httpx.MockTransport(lambda r: httpx.Response(200))):
            for name in names:
                try:
                    raise httpx.LocalProtocolError(f"Illegal header value {(TOKEN + chr(10)).encode()!r}")
                except httpx.LocalProtocolError:
                    logging.getLogger(name).exception("request failed for %s", json.dumps(TOKEN))
                logging.getLogger(name).warning("stack", stack_info=True, extra={"x": 1})

    run(go())
    assert len([r for r in caplog.records if r.name in names]) == 2 * len(names)
    text = caplog.text + "".join(logging.Formatter().format(r) for r in caplog.records)
    assert "Illegal header value" in text and REDACTED in text
    assert "9f3b2c7d1e5a" not in text
    # the filters go with the client
    assert not any(type(f).__name__ == "_RedactingFilter" for n in names for f in logging.getLogger(n).filters)


def test_transport_errors_echoing_the_token_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value {request.headers['circle-token'].encode()!r}")

    async def go() -> None:
        retry = RetryPolicy(max_attempts=2, sleep=lambda s: _no_sleep())
        async with CircleCIClient(TOKEN, transport=httpx.MockTransport(handler), retry=retry) as client:
            await client.get_json("/me")

    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransportFailure) as info:
        run(go())
    assert "Illegal header value b'***'" in str(info.value)
    assert "9f3b2c7d1e5a" not in str(info.value) + repr(info.value.args) + caplog.text


async def _no_sleep() -> None:
    return None
