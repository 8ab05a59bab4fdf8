"""The API token: normalised once, then redacted from every text that could leave the process.

``normalize_token`` strips the surrounding whitespace (and byte-order mark) that secret
files and Prefect Secret blocks often add, and refuses a token that can never be a valid header value (empty, inner
whitespace, control or non-ASCII characters) *before* httpx sees it: httpx and h11 put a
refused header value in their exception text (``Illegal header value b'...\\n'``). Its errors
describe the problem and where it is, never the value or any part of it.

``Redactor`` replaces every representation of a token: as is, percent-encoded (``quote``,
``quote_plus``, lower-case escapes), escaped (``repr``, ``unicode_escape``, JSON, a bytes
``repr``) and those escapes nested once more (a ``repr`` inside a JSON log line, ...).
``Redactor.guard_logs`` installs it on the loggers that see request details (``httpx``,
``httpcore``, ours): messages, arguments, exception texts and stack traces
are rewritten before any handler formats or stores them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from circleci_analytics.connectors.errors import InvalidToken

__all__ = ["REDACTED", "TOKEN_ENV", "Redactor", "normalize_token", "token_forms"]

TOKEN_ENV = "CIRCLECI_TOKEN"
REDACTED = "***"
#: Loggers that may see request details (with any existing children: a logger's filters do
#: not apply to records of its children, so ours are named even before they exist).
GUARDED_LOGGERS = (
    "httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
    "circleci_analytics", "circleci_analytics.connectors", "circleci_analytics.connectors.usage_export",
)  # fmt: skip
_TOKEN_HELP = "copy the personal API token again (https://app.circleci.com/settings/user/tokens)"


def normalize_token(raw: str) -> str:
    """``raw`` without surrounding whitespace; ``InvalidToken`` if it cannot be a token.

    Positions in messages count characters of ``raw`` from 1.
    """
    if not isinstance(raw, str):
        raise InvalidToken(f"the CircleCI token must be text, not {type(raw).__name__}")
    token = raw.strip().lstrip("\ufeff").strip()  # a byte-order mark from a secret file, too
    if not token:
        raise InvalidToken(f"the CircleCI token is empty{' (only whitespace)' if raw else ''}; {_TOKEN_HELP}")
    offset = raw.find(token)
    for i, char in enumerate(token, start=offset + 1):
        if not char.isascii():
            problem = "a non-ASCII character"
        elif char.isspace():
            problem = "a whitespace character"
        elif not char.isprintable():
            problem = "a control character"
        else:
            continue
        raise InvalidToken(f"the CircleCI token contains {problem} (position {i}); {_TOKEN_HELP}")
    return token


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), text)


_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: quote(s, safe=""),
    quote,  # keeps "/"
    quote_plus,
    lambda s: _lower_escapes(quote(s, safe="")),
    lambda s: _lower_escapes(quote_plus(s)),
    lambda s: repr(s)[1:-1],
    lambda s: repr(s.encode("utf-8", "backslashreplace"))[2:-1],
    lambda s: s.encode("unicode_escape").decode("ascii"),
    lambda s: json.dumps(s)[1:-1],
)


def token_forms(token: str, *, depth: int = 2) -> frozenset[str]:
    """Every representation of ``token`` that may show up in text, escapes nested ``depth`` deep."""
    forms = {token}
    frontier = {token}
    for _ in range(depth):
        frontier = {encode(form) for form in frontier for encode in _ENCODINGS} - forms
        forms |= frontier
    return frozenset(f for f in forms if f)


class Redactor:
    """Replaces every form of one or more tokens with ``***``; also a logging filter."""

    def __init__(self, tokens: Iterable[str]) -> None:
        forms = sorted({f for t in tokens if t for f in token_forms(t)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms))) if forms else None
        self._filter = _RedactingFilter(self)
        self._guarded: list[logging.Logger] = []

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def guard_logs(self, prefixes: Iterable[str] = GUARDED_LOGGERS) -> None:
        """Filter every existing logger named by (or below) one of ``prefixes``."""
        prefixes = tuple(prefixes)
        below = tuple(p + "." for p in prefixes)
        names = {n for n in list(logging.root.manager.loggerDict) if n.startswith(below)}
        for name in sorted({*prefixes, *names}):
            log = logging.getLogger(name)
            log.addFilter(self._filter)
            self._guarded.append(log)

    def unguard_logs(self) -> None:
        for log in self._guarded:
            log.removeFilter(self._filter)
        self._guarded.clear()

    def __repr__(self) -> str:
        return "Redactor(***)"


class _RedactingFilter(logging.Filter):
    """Rewrites a log record (message, exception text, stack) so it cannot contain the token."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            cleaned = self._redact(text)
            if cleaned != text:  # keep the live exception only when it is clean
                record.exc_info, record.exc_text = None, cleaned
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True
