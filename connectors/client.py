"""The async HTTP client for CircleCI API v2.

One ``CircleCIClient`` per run: it owns authentication (``Circle-Token`` header, the token
normalised by ``connectors.auth``), retries, client-side rate limits per endpoint family
(aiolimiter), bounded concurrency (``asyncio.Semaphore``), error mapping
(``connectors.errors``) and call counting (``client.stats``). It is the only place where
anything is retried, for API calls and pre-signed part downloads (``download``) alike:

* 5xx and transport errors: exponential backoff with jitter (tenacity), at most
  ``RetryPolicy.max_attempts`` attempts;
* 429: waited out as long as ``Retry-After`` / ``RateLimit-Reset`` / ``X-RateLimit-Reset``
  say, for at most the family's ``RetryPolicy.patience`` seconds per request, without
  spending the attempts above; a 429 also pauses every request of its family;
* nothing else (400, 401, 403, 404, invalid input, malformed responses) is retried.

Paths passed to the client are relative to ``base_url`` and already
percent-encoded (build them with ``connectors.encoding.render_path``); they are
sent as the raw path, so ``%2F`` inside a workflow name reaches the server. A path
with a ``.`` or ``..`` segment is refused before anything is sent.

The token is never logged, never shown by ``repr``/``str`` and scrubbed (in every
representation) from every exception message and from the log records of httpx, httpcore
and this package.

Example::

    async with CircleCIClient(token) as client:
        project = await client.get_json("/project/gh/acme/api")
        async for run in client.paginate("/insights/gh/acme/api/workflows/build", {"all-branches": True}):
            ...
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from circleci_analytics.connectors.auth import REDACTED, TOKEN_ENV, Redactor, normalize_token
from circleci_analytics.connectors.encoding import check_path
from circleci_analytics.connectors.errors import (
    ApiStatusError,
    AuthError,
    BadRequest,
    CircleCIError,
    DataError,
    ExpiredUrl,
    NotFound,
    RateLimited,
    ServerError,
    TransportFailure,
)
from circleci_analytics.connectors.pagination import Params, paginate
from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE, RateLimiters, family_for_path

__all__ = ["DEFAULT_BASE_URL", "CircleCIClient", "ClientStats", "RetryPolicy", "format_datetime"]

logger = logging.getLogger("circleci_analytics.connectors")

DEFAULT_BASE_URL = "https://circleci.com/api/v2"
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried (see the module docstring).

    ``max_attempts`` counts the attempts that end in a 5xx or a transport error, the first
    included. Their backoff is exponential from ``initial_wait`` up to ``max_wait`` seconds
    plus up to ``jitter`` seconds of random jitter, and at least a server hint.

    ``patience`` is how many seconds one request may spend waiting out 429s, per endpoint
    family (``connectors.ratelimit.DEFAULT_PATIENCE``, merged under what is given; a number
    applies to every family). A 429 is waited out as long as the server asks (plus jitter);
    a hint longer than the patience left gives up at once with ``RateLimited``.
    ``sleep`` is injectable so tests never really sleep.
    """

    max_attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    patience: Mapping[str, float] | float = field(default_factory=lambda: dict(DEFAULT_PATIENCE), hash=False)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        given = self.patience
        merged = (
            dict.fromkeys(DEFAULT_PATIENCE, float(given))
            if isinstance(given, int | float)
            else {**DEFAULT_PATIENCE, **{k: float(v) for k, v in given.items()}}
        )
        if any(v < 0 for v in merged.values()):
            raise ValueError("RetryPolicy.patience must be >= 0 seconds")
        object.__setattr__(self, "patience", merged)

    def patience_for(self, family: str) -> float:
        """Seconds a request of ``family`` may wait out 429s (unknown families: ``core``'s)."""
        patience: Mapping[str, float] = self.patience  # type: ignore[assignment]  # merged in __post_init__
        return patience.get(family, patience["core"])

    def backoff(self, failures: int) -> float:
        """The pause after the ``failures``-th failed attempt (exponential, jittered)."""
        return min(self.max_wait, self.initial_wait * 2 ** (failures - 1)) + random.uniform(0, self.jitter)


@dataclass
class ClientStats:
    """Counters per endpoint family: HTTP calls made, retries, 429 answers, final errors."""

    calls: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_calls": self.total_calls,
            "calls": dict(self.calls),
            "retries": dict(self.retries),
            "rate_limited": dict(self.rate_limited),
            "errors": dict(self.errors),
        }


class _Transient(Exception):
    """Internal: a retryable outcome (``error`` is raised if the request gives up)."""

    def __init__(self, error: CircleCIError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return isinstance(self.error, RateLimited)


class _Budget:
    """What one logical request may still spend on retries: tenacity's ``wait`` and ``stop``.

    Attempts ending in 5xx / transport errors spend ``max_attempts``; 429s spend time, at
    most the family's patience, and never attempts.
    """

    def __init__(self, policy: RetryPolicy, family: str) -> None:
        self.policy = policy
        self.family = family
        self.patience = policy.patience_for(family)
        self.failures = 0
        self.rate_limited = 0
        self.waited = 0.0

    def wait(self, state: RetryCallState) -> float:
        exc = _outcome(state)
        hint = exc.retry_after
        if exc.rate_limited:
            self.rate_limited += 1
            if hint is None:
                return self.policy.backoff(self.rate_limited)
            return hint + random.uniform(0, self.policy.jitter)
        self.failures += 1
        return max(self.policy.backoff(self.failures), hint or 0.0)

    def stop(self, state: RetryCallState) -> bool:
        exc = _outcome(state)
        if exc.rate_limited:
            if self.waited + state.upcoming_sleep > self.patience:
                return True
            self.waited += state.upcoming_sleep
            return False
        return self.failures >= self.policy.max_attempts or state.upcoming_sleep > self.patience

    def final(self, exc: _Transient) -> CircleCIError:
        """The error to raise once ``stop`` said so, saying what was spent."""
        err = exc.error
        if isinstance(err, RateLimited):
            note = (
                f"gave up after {self.rate_limited} rate-limit answer(s) and {self.waited:.0f}s of waiting "
                f"(patience for {self.family}: {self.patience:.0f}s)"
            )
            if err.retry_after is not None:
                note += f"; the server asks to wait {err.retry_after:.0f}s more"
            return RateLimited(err.status, err.message, err.method, err.path, hint=note, retry_after=err.retry_after)
        note = f"gave up after {self.failures} attempt(s)"
        if exc.retry_after is not None and exc.retry_after > self.patience:
            note += f"; the server asks to wait {exc.retry_after:.0f}s, more than the {self.patience:.0f}s patience"
        if isinstance(err, ApiStatusError):
            return type(err)(err.status, err.message, err.method, err.path, hint=note)
        if isinstance(err, TransportFailure):
            return TransportFailure(f"{err} ({note})", method=err.method, path=err.path)
        return err


class _Slots:
    """At most ``n`` requests in flight; waiting requests are served lowest ``priority`` first,
    then in arrival order (``asyncio.Semaphore`` is first come, first served: a listing's next
    page would queue behind every request issued meanwhile, so the longest listing would set
    the run's time)."""

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self.arrivals = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free and not self.waiting:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (priority, next(self.arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        while self.waiting:
            _, _, turn = heapq.heappop(self.waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


def _outcome(state: RetryCallState) -> _Transient:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, _Transient)  # tenacity retries nothing else
    return exc


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
    resets = [_parse_seconds(headers.get(name), now=now) for name in ("ratelimit-reset", "x-ratelimit-reset")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


class CircleCIClient:
    """Async CircleCI API v2 client (use as ``async with``).

    ``transport`` or ``http_client`` may be injected (``httpx.MockTransport``,
    ``httpx.ASGITransport(app=simulator_app)``); an injected ``http_client`` is not
    closed by this client. ``rate_limits`` maps a family (``core``, ``insights``,
    ``tests``, ``usage_export``, ``download``) to requests per second (``None`` = unlimited).
    The token (``token=`` or ``$CIRCLECI_TOKEN``) is normalised by
    ``connectors.auth.normalize_token``: surrounding whitespace is dropped, a malformed
    token raises ``InvalidToken`` before any request.
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
        self.__token = normalize_token(token)
        self.scrub = Redactor([self.__token])
        self.base_url = httpx.URL(base_url.rstrip("/"))
        self.retry = retry or RetryPolicy()
        self.rate_limiters = RateLimiters(rate_limits)
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.stats = ClientStats()
        self._slots = _Slots(max_concurrency)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self.scrub.guard_logs()

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> CircleCIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.scrub.unguard_logs()
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return (
            f"CircleCIClient(base_url={str(self.base_url)!r}, token={REDACTED!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    __str__ = __repr__

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
        priority: int = 0,
    ) -> Any:
        """GET ``path`` and return the decoded JSON body."""
        return await self.request_json(
            "GET", path, params=params, family=family, resource=resource, retry=retry, priority=priority
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
        priority: int = 0,
    ) -> Any:
        response = await self.request(
            method, path, params=params, json=json, family=family, resource=resource, retry=retry, priority=priority
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
        priority: int = 0,
    ) -> httpx.Response:
        """Send one logical request (with retries) and return the 2xx response.

        ``resource`` ("project 'gh/acme/api'") makes 404 messages specific. ``retry``
        overrides the client's policy for this call (e.g. ``RetryPolicy(max_attempts=1)``
        for a non-idempotent POST). When every slot is busy, a lower ``priority`` is served
        first (pagination asks for its next pages that way).
        """
        check_path(path)
        family = family or family_for_path(path)
        query = normalize_params(params)
        policy = retry or self.retry
        safe_path = self.scrub(path)

        async def send() -> httpx.Response:
            headers = {"Circle-Token": self.__token, "Accept": "application/json"}
            response = await self._send(
                family, policy, method, safe_path, priority,
                lambda: self._http.request(  # params as a tuple: httpx types a list of pairs invariantly
                    method, self._url(path), params=tuple(query) or None, json=json, headers=headers,
                    timeout=self.timeout if self._owns_http else httpx.USE_CLIENT_DEFAULT,
                ),
            )  # fmt: skip
            if response.is_success:
                return response
            raise self._status_error(response, method, safe_path, resource, family, policy)

        return await self._retrying(send, method, safe_path, family, policy)

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        verify: Callable[[Path], object] | None = None,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Stream the pre-signed ``url`` to ``dest`` (through a temp file); return its size.

        Retried like any request (family ``download``). The URL carries its own signature,
        so the request never has a ``Circle-Token`` (nor ``Authorization``) header, whichever
        httpx client carries it (``http``, default this client's). 403 / 404 raise
        ``ExpiredUrl``. ``verify(path)`` may raise ``DataError`` for a corrupt body: bytes
        were lost on the way, so that attempt is a transport failure and is retried.
        """
        family = "download"
        policy = retry or self.retry
        carrier = http or self._http
        try:
            label = self.scrub(str(httpx.URL(url).copy_with(query=None)))  # the signature stays out of logs
        except httpx.InvalidURL:
            raise DataError("a usage-export download URL from the API is not a valid URL") from None
        tmp = dest.with_name(dest.name + ".download")
        dest.parent.mkdir(parents=True, exist_ok=True)

        async def send() -> int:
            request = carrier.build_request("GET", url, headers={"Accept": "*/*"})
            for name in ("circle-token", "authorization"):
                request.headers.pop(name, None)
            size = 0
            try:
                response = await self._send(
                    family, policy, "GET", label, 0, lambda: carrier.send(request, stream=True, follow_redirects=True)
                )
                try:
                    if not response.is_success:
                        await response.aread()
                        raise self._status_error(response, "GET", label, None, family, policy, presigned=True)
                    with tmp.open("wb") as fh:
                        async for chunk in response.aiter_raw():
                            fh.write(chunk)
                            size += len(chunk)
                finally:
                    await response.aclose()
                if verify is not None:
                    await asyncio.to_thread(verify, tmp)
            except httpx.TransportError as exc:
                tmp.unlink(missing_ok=True)
                raise self._transport_failure(exc, "GET", label) from None
            except DataError as exc:
                tmp.unlink(missing_ok=True)
                error = TransportFailure(f"GET {label}: the body arrived corrupt ({exc})", method="GET", path=label)
                raise _Transient(error) from None
            tmp.replace(dest)
            return size

        try:
            return await self._retrying(send, "GET", label, family, policy)
        finally:
            tmp.unlink(missing_ok=True)

    async def _send(
        self,
        family: str,
        policy: RetryPolicy,
        method: str,
        label: str,
        priority: int,
        call: Callable[[], Awaitable[httpx.Response]],
    ) -> httpx.Response:
        """One HTTP exchange within the family's rate limit and the concurrency bound."""
        await self.rate_limiters.acquire(family, sleep=policy.sleep)
        await self._slots.acquire(priority)
        try:
            self.stats.calls[family] += 1
            started = time.perf_counter()
            try:
                response = await call()
            except httpx.TransportError as exc:
                raise self._transport_failure(exc, method, label) from None
        finally:
            self._slots.release()
        logger.debug(
            "%s %s -> %d (%s, %.0f ms)",
            method,
            label,
            response.status_code,
            family,
            (time.perf_counter() - started) * 1000,
        )
        return response

    def _transport_failure(self, exc: httpx.TransportError, method: str, label: str) -> _Transient:
        error = TransportFailure(
            f"{method} {label}: {type(exc).__name__}: {self.scrub(str(exc))}", method=method, path=label
        )
        return _Transient(error)

    async def _retrying(
        self, send: Callable[[], Awaitable[T]], method: str, label: str, family: str, policy: RetryPolicy
    ) -> T:
        """``send()`` until it succeeds or the request's retry budget is spent."""
        budget = _Budget(policy, family)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            wait=budget.wait,
            stop=budget.stop,
            sleep=policy.sleep,
            before_sleep=lambda state: self._before_sleep(state, method, label, family),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await send()
        except _Transient as exc:
            self.stats.errors[family] += 1
            raise budget.final(exc) from None
        except CircleCIError:
            self.stats.errors[family] += 1
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _before_sleep(self, state: RetryCallState, method: str, label: str, family: str) -> None:
        self.stats.retries[family] += 1
        exc = _outcome(state)
        error = exc.error
        reason = f"HTTP {error.status}" if isinstance(error, ApiStatusError) else type(error).__name__
        logger.log(
            logging.INFO if exc.rate_limited else logging.WARNING,
            "retrying %s %s after %s (attempt %d), waiting %.1fs",
            method,
            label,
            reason,
            state.attempt_number,
            state.upcoming_sleep,
        )

    def _status_error(
        self,
        response: httpx.Response,
        method: str,
        path: str,
        resource: str | None,
        family: str,
        policy: RetryPolicy,
        *,
        presigned: bool = False,
    ) -> Exception:
        status = response.status_code
        message = self.scrub(_api_message(response))
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(response.headers)
            if status == 429:
                self.stats.rate_limited[family] += 1
                error: ApiStatusError = RateLimited(status, message, method, path, retry_after=retry_after)
                if retry_after and retry_after <= policy.patience_for(family):
                    # hold back every request of this family, not only the one that was refused
                    self.rate_limiters.pause(family, retry_after)
            else:
                error = ServerError(status, message, method, path)
            return _Transient(error, retry_after)
        if presigned and status in (403, 404):
            return ExpiredUrl(
                status, message, method, path, hint="the pre-signed URL expired; fetch fresh URLs from the API"
            )
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
        return paginate(
            self,
            path,
            params,
            family=family,
            resource=resource,
            items_key=items_key,
            max_pages=max_pages,
        )


def _api_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200] if text else response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return str(body)[:200]
