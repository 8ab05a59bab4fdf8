"""CircleCI API v2 connectors: an async HTTP client and extractors returning Arrow tables.

Public surface (everything else is private)::

    CircleCIClient, RetryPolicy, ClientStats      connectors.client
    errors (CircleCIError tree)                   connectors.errors
    paginate                                      connectors.pagination
    Extract, STREAMS, StreamSpec                  connectors.streams
    schemas                                       connectors.schemas
    insights / projects / job tests extractors    connectors.insights, .projects, .tests_metadata
"""

from connectors.client import CircleCIClient, ClientStats, RetryPolicy
from connectors.encoding import encode_project_slug, encode_segment, render_path
from connectors.errors import (
    ApiStatusError,
    AuthError,
    BadRequest,
    CircleCIError,
    DataError,
    NotFound,
    PaginationError,
    RateLimited,
    ServerError,
    TransportFailure,
)
from connectors.pagination import paginate

__all__ = [
    "ApiStatusError",
    "AuthError",
    "BadRequest",
    "CircleCIClient",
    "CircleCIError",
    "ClientStats",
    "DataError",
    "NotFound",
    "PaginationError",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TransportFailure",
    "encode_project_slug",
    "encode_segment",
    "paginate",
    "render_path",
]
