"""Errors raised by the CircleCI connectors.

Every error carries context a user can act on (HTTP method, API path, status,
the API's own ``message``) and never the API token::

    CircleCIError                    base class, catch this for "anything from the connector"
    ├── InvalidInput                 refused before any request is sent (also a ``ValueError``)
    │   ├── InvalidToken             the token is empty or has whitespace, control or non-ASCII characters
    │   └── InvalidPath              a slug or path segment is empty, ``.`` or ``..`` (even percent-encoded)
    ├── TransportFailure             network trouble (DNS, connect, timeout, a truncated download) after retries
    ├── ApiStatusError               the API answered with a non-2xx status (status, message, method, path)
    │   ├── AuthError                401 / 403: the token is missing, wrong, or not a *personal* API token
    │   ├── NotFound                 404: the project slug / resource does not exist or is not visible
    │   ├── BadRequest               400: the API rejected a parameter (its message is kept verbatim)
    │   ├── RateLimited              429 still returned after waiting as long as the family's patience allows
    │   ├── ServerError              5xx still returned after all retries
    │   └── ExpiredUrl               403 / 404 from a pre-signed download URL: ask the API for fresh URLs
    ├── PaginationError              a page token repeated, or the API rejected (404) a page token
    └── DataError                    a response (JSON / CSV) does not have the expected shape

Only ``TransportFailure``, ``RateLimited`` and ``ServerError`` describe transient
conditions (``is_transient``); the client retries those before raising them, and
nothing else is ever retried.
"""

from __future__ import annotations

__all__ = [
    "ApiStatusError",
    "AuthError",
    "BadRequest",
    "CircleCIError",
    "DataError",
    "ExpiredUrl",
    "InvalidInput",
    "InvalidPath",
    "InvalidToken",
    "NotFound",
    "PaginationError",
    "RateLimited",
    "ServerError",
    "TransportFailure",
    "is_transient",
]


class CircleCIError(Exception):
    """Base class of every error raised by ``connectors``."""


class InvalidInput(CircleCIError, ValueError):
    """Input refused before any request is sent; the message names what is wrong."""


class InvalidToken(InvalidInput):
    """The API token is malformed. The message describes the problem, never the value."""


class InvalidPath(InvalidInput):
    """A slug or path segment would change the request's path (empty, ``.`` or ``..``)."""


class TransportFailure(CircleCIError):
    """The request never got an HTTP answer (connection, DNS, timeout), even after retries."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class ApiStatusError(CircleCIError):
    """The API answered with an error status.

    ``message`` is the API's ``{"message": ...}`` text (or the raw body, shortened).
    """

    def __init__(
        self,
        status: int,
        message: str,
        method: str,
        path: str,
        *,
        hint: str = "",
    ) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.hint = hint
        text = f"{method} {path} -> HTTP {status}: {message}"
        if hint:
            text = f"{text.rstrip('.')}. {hint}"
        super().__init__(text)


class AuthError(ApiStatusError):
    """401 / 403: the token was refused."""


class NotFound(ApiStatusError):
    """404: the project slug, workflow, job or page does not exist (or is not visible to the token)."""


class BadRequest(ApiStatusError):
    """400: the API rejected the request; ``message`` says why."""


class RateLimited(ApiStatusError):
    """429 after all retries. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        status: int,
        message: str,
        method: str,
        path: str,
        *,
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, method, path, hint=hint)
        self.retry_after = retry_after


class ServerError(ApiStatusError):
    """5xx after all retries."""


class ExpiredUrl(ApiStatusError):
    """403 / 404 from a pre-signed download URL: the link expired; fetch fresh URLs."""


class PaginationError(CircleCIError):
    """Pagination went wrong: a repeated ``next_page_token`` or a rejected page token."""

    def __init__(self, message: str, *, path: str = "", pages: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.pages = pages


class DataError(CircleCIError):
    """A response does not have the expected shape (JSON keys, types, CSV columns)."""


def is_transient(error: BaseException) -> bool:
    """Whether retrying later may help (network trouble, 429, 5xx); never for 4xx or bad data."""
    return isinstance(error, TransportFailure | RateLimited | ServerError)
