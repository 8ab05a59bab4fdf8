"""The async HTTP client for CircleCI API v2.

One ``CircleCIClient`` per run: it owns authentication (``Circle-Token`` header),
retries (tenacity: exponential backoff with jitter on 429, 5xx and transport
errors, waiting at least ``Retry-After`` / ``RateLimit-Reset`` / ``X-RateLimit-Reset``),
client-side rate limits per endpoint family (aiolimiter), bounded concurrency
(``asyncio.Semaphore``), error mapping (``connectors.errors``) and call counting
(``client.stats``).

Paths passed to the client are relative to ``base_url`` and already
percent-encoded (build them with ``connectors.encoding.render_path``); they are
sent as the raw path, so ``%2F`` inside a workflow name reaches the server.

The token is never logged, never shown by ``repr``/``str`` and scrubbed from
every exception message.

Example::

    async with CircleCIClient(token) as client:
        project = await client.get_json("/project/gh/acme/api")
        async for run in client.paginate("/insights/gh/acme/api/workflows/build",
                                         {"all-branches": True}):
            ...
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from circleci_analytics.connectors.errors import (
    ApiStatusError,
    AuthError,
    BadRequest,
    CircleCIError,
    DataError,
    NotFound,
    RateLimited,
    ServerError,
    TransportFailure,
)
from circleci_analytics.connectors.ratelimit import RateLimiters, family_for_path

__all__ = ["DEFAULT_BASE_URL", "CircleCIClient", "ClientStats", "RetryPolicy", "format_datetime"]

logger = logging.getLogger("circleci_analytics.connectors")

DEFAULT_BASE_URL = "https://circleci.com/api/v2"
TOKEN_ENV = "CIRCLECI_TOKEN"
_REDACTED = "***"

Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures (429, 5xx, transport errors) are retried.

    ``max_attempts`` counts the first try. Backoff is exponential from
    ``initial_wait`` up to ``max_wait`` seconds plus up to ``jitter`` seconds of
    random jitter; a server hint (``Retry-After`` etc.) raises the wait to at least
    the hint. A hint longer than ``max_retry_after`` is not waited for: the error
    is raised at once (``RateLimited.retry_after`` tells the caller how long).
    ``sleep`` is injectable so tests never really sleep.
    """

    max_attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 300.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")


@dataclass
class ClientStats:
    """Counters per endpoint family: HTTP calls made, retries, final errors."""

    calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_calls": self.total_calls,
            "calls": dict(self.calls),
            "retries": dict(self.retries),
            "errors": dict(self.errors),
        }


class _Transient(Exception):
    """Internal: a retryable outcome; ``final(n)`` is the error raised if retries run out."""

    def __init__(self, error: CircleCIError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after

    def final(self, attempts: int) -> CircleCIError:
        err = self.error
        note = f"gave up after {attempts} attempt(s)"
        if isinstance(err, RateLimited):
            if err.retry_after is not None:
                note += f"; the server asks to wait {err.retry_after:.0f}s"
            return RateLimited(
                err.status, err.message, err.method, err.path, hint=note, retry_after=err.retry_after
            )
        if isinstance(err, ApiStatusError):
            return type(err)(err.status, err.message, err.method, err.path, hint=note)
        if isinstance(err, TransportFailure):
            return TransportFailure(f"{err} ({note})", method=err.method, path=err.path)
        return err


def format_datetime(value: datetime | date) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as CircleCI expects for ``start-date``/``end-date``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return format_datetime(value)
    return str(value)


def normalize_params(params: Params | None) -> list[tuple[str, str]]:
    """Flatten params: drop ``None``, repeat list values, ``True`` -> ``"true"``, datetimes -> ISO Z."""
    if not params:
        return []
    pairs = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out.extend((key, _param_value(v)) for v in value if v is not None)
        else:
            out.append((key, _param_value(value)))
    return out


def _parse_seconds(value: str | None, *, now: float) -> float | None:
    """A delay in seconds from a header: delta-seconds, an epoch timestamp or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return max(0.0, parsed.timestamp() - now)
    if number > 1_000_000_000:  # an epoch timestamp rather than a delta
        return max(0.0, number - now)
    return max(0.0, number)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """How long the server asks us to wait, in seconds (``None`` if it does not say).

    ``Retry-After`` is authoritative when present (it says when one more request is
    allowed). Without it, ``RateLimit-Reset`` / ``X-RateLimit-Reset`` (seconds until
    the window resets) are honoured, the longer of the two if both are sent.
    """
    now = time.time()
    retry_after = _parse_seconds(headers.get("retry-after"), now=now)
    if retry_after is not None:
        return retry_after
    resets = [
        _parse_seconds(headers.get(name), now=now) for name in ("ratelimit-reset", "x-ratelimit-reset")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


class CircleCIClient:
    """Async CircleCI API v2 client (use as ``async with``).

    ``transport`` or ``http_client`` may be injected (``httpx.MockTransport``,
    ``httpx.ASGITransport(app=simulator_app)``); an injected ``http_client`` is not
    closed by this client. ``rate_limits`` maps a family (``core``, ``insights``,
    ``tests``, ``usage_export``) to requests per second (``None`` = unlimited).
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limits: Mapping[str, float | None] | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        if not token:
            raise AuthError(
                0,
                "no API token",
                "INIT",
                "-",
                hint=f"pass token= or set {TOKEN_ENV} to a personal API token",
            )
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.__token = token
        self.base_url = httpx.URL(base_url.rstrip("/"))
        self.retry = retry or RetryPolicy()
        self.rate_limiters = RateLimiters(rate_limits)
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.stats = ClientStats()
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        # httpx logs each request URL at INFO; scrub the token should it ever be in a URL.
        self._log_filter = _ScrubFilter(self.scrub)
        logging.getLogger("httpx").addFilter(self._log_filter)

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> CircleCIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        logging.getLogger("httpx").removeFilter(self._log_filter)
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return (
            f"CircleCIClient(base_url={str(self.base_url)!r}, token={_REDACTED!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    __str__ = __repr__

    # -- secrets ---------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the token (raw or URL-encoded) replaced."""
        token = self.__token
        for variant in (token, quote(token, safe=""), quote_plus(token)):
            text = text.replace(variant, _REDACTED)
        return text

    # -- requests --------------------------------------------------------------------------
    def _url(self, path: str) -> httpx.URL:
        if not path.startswith("/"):
            path = "/" + path
        raw = self.base_url.raw_path.rstrip(b"/") + path.encode("ascii")
        return self.base_url.copy_with(raw_path=raw)

    async def get_json(
        self,
        path: str,
        params: Params | None = None,
        *,
        family: str | None = None,
        resource: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """GET ``path`` and return the decoded JSON body."""
        return await self.request_json(
            "GET", path, params=params, family=family, resource=resource, retry=retry
        )

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        family: str | None = None,
        resource: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        response = await self.request(
            method, path, params=params, json=json, family=family, resource=resource, retry=retry
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise DataError(
                f"{method} {self.scrub(path)}: response is not JSON "
                f"(content-type {response.headers.get('content-type')!r})"
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        family: str | None = None,
        resource: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send one logical request (with retries) and return the 2xx response.

        ``resource`` ("project 'gh/acme/api'") makes 404 messages specific. ``retry``
        overrides the client's policy for this call (e.g. ``RetryPolicy(max_attempts=1)``
        for a non-idempotent POST).
        """
        family = family or family_for_path(path)
        query = normalize_params(params)
        policy = retry or self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=lambda state: self._wait(state, policy),
            retry=retry_if_exception_type(_Transient),
            sleep=policy.sleep,
            before_sleep=lambda state: self._before_sleep(state, method, path, family, policy),
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                attempts = attempt.retry_state.attempt_number
                with attempt:
                    return await self._send_once(method, path, query, json, family, resource, policy)
        except _Transient as exc:
            self.stats.errors[family] += 1
            raise exc.final(attempts) from None
        except CircleCIError:
            self.stats.errors[family] += 1
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState, policy: RetryPolicy) -> float:
        backoff = wait_exponential_jitter(
            initial=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        return max(backoff, hint) if hint is not None else backoff

    def _before_sleep(
        self, state: RetryCallState, method: str, path: str, family: str, policy: RetryPolicy
    ) -> None:
        self.stats.retries[family] += 1
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        reason = (
            f"HTTP {exc.error.status}"
            if isinstance(exc, _Transient) and isinstance(exc.error, ApiStatusError)
            else type(exc.error).__name__ if isinstance(exc, _Transient) else repr(exc)
        )
        logger.warning(
            "retrying %s %s after %s (attempt %d/%d), waiting %.1fs",
            method,
            self.scrub(path),
            reason,
            state.attempt_number,
            policy.max_attempts,
            wait,
        )

    async def _send_once(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        json: Any,
        family: str,
        resource: str | None,
        policy: RetryPolicy,
    ) -> httpx.Response:
        safe_path = self.scrub(path)
        headers = {"Circle-Token": self.__token, "Accept": "application/json"}
        await self.rate_limiters.acquire(family, sleep=policy.sleep)
        async with self._semaphore:
            self.stats.calls[family] += 1
            started = time.perf_counter()
            try:
                response = await self._http.request(
                    method,
                    self._url(path),
                    params=query or None,
                    json=json,
                    headers=headers,
                    timeout=self.timeout if self._owns_http else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                error = TransportFailure(
                    f"{method} {safe_path}: {type(exc).__name__}: {self.scrub(str(exc))}",
                    method=method,
                    path=safe_path,
                )
                raise _Transient(error) from None
        logger.debug(
            "%s %s -> %d (%s, %.0f ms)",
            method,
            safe_path,
            response.status_code,
            family,
            (time.perf_counter() - started) * 1000,
        )
        if response.is_success:
            return response
        raise self._status_error(response, method, safe_path, resource, family, policy)

    def _status_error(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        resource: str | None,
        family: str,
        policy: RetryPolicy,
    ) -> Exception:
        status = response.status_code
        message = self.scrub(_api_message(response))
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(response.headers)
            if status == 429:
                error: ApiStatusError = RateLimited(
                    status, message, method, path, retry_after=retry_after
                )
            else:
                error = ServerError(status, message, method, path)
            if retry_after is not None and retry_after > policy.max_retry_after:
                return _Transient(error, retry_after).final(1)  # too long to wait in one run
            if status == 429 and retry_after:
                # hold back every request of this family, not only the one that was refused
                self.rate_limiters.pause(family, retry_after)
            return _Transient(error, retry_after)
        if status in (401, 403):
            return AuthError(
                status,
                message,
                method,
                path,
                hint=f"check that {TOKEN_ENV} holds a valid *personal* API token "
                "(project tokens are refused by most v2 endpoints)",
            )
        if status == 404:
            what = resource or "the resource in the path"
            return NotFound(
                status,
                message,
                method,
                path,
                hint=f"{what} was not found; check the slug/ID and that the token's user can "
                "see it (a project token also gets 404 'Project not found')",
            )
        if status == 400:
            return BadRequest(status, message, method, path)
        return ApiStatusError(status, message, method, path)

    # -- pagination ------------------------------------------------------------------------
    def paginate(
        self,
        path: str,
        params: Params | None = None,
        *,
        family: str | None = None,
        resource: str | None = None,
        items_key: str = "items",
        max_pages: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Iterate the items of a paginated list endpoint (see ``connectors.pagination``)."""
        from circleci_analytics.connectors.pagination import paginate

        return paginate(
            self,
            path,
            params,
            family=family,
            resource=resource,
            items_key=items_key,
            max_pages=max_pages,
        )


class _ScrubFilter(logging.Filter):
    """Rewrites log records so they cannot contain the token."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(body)[:200]
