"""CircleCI API v2 connectors: an async HTTP client, the stream catalogue and its extractors.

Public surface (everything else is private)::

    CircleCIClient, RetryPolicy, ClientStats      connectors.client
    normalize_token                               connectors.auth
    DEFAULT_PATIENCE, DEFAULT_RATE_LIMITS         connectors.ratelimit
    render_path, validate_project_slug            connectors.encoding
    errors (CircleCIError tree), is_transient     connectors.errors
    paginate                                      connectors.pagination
    CATALOGUE, Stream, Field, ...                 connectors.catalogue, connectors.streams (declarations)
    extract_stream, Extract                       connectors.extract (the generic extractor)
    extract_projects, discover_projects           connectors.projects (handler of `projects`, discovery)
    extract_job_tests, JobRef, ProbeState         connectors.tests_metadata (handler of `job_tests`)
    export_usage, ...                             connectors.usage_export (handler of `usage_job_runs`)
"""

from circleci_analytics.connectors.auth import normalize_token
from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.connectors.client import CircleCIClient, ClientStats, RetryPolicy
from circleci_analytics.connectors.encoding import (
    encode_project_slug,
    encode_segment,
    render_path,
    validate_project_slug,
)
from circleci_analytics.connectors.errors import (
    ApiStatusError,
    AuthError,
    BadRequest,
    CircleCIError,
    DataError,
    ExpiredUrl,
    InvalidInput,
    InvalidPath,
    InvalidToken,
    NotFound,
    PaginationError,
    RateLimited,
    ServerError,
    TransportFailure,
    is_transient,
)
from circleci_analytics.connectors.extract import Extract, extract_stream
from circleci_analytics.connectors.pagination import paginate
from circleci_analytics.connectors.projects import Discovery, discover_projects, extract_projects
from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE, DEFAULT_RATE_LIMITS
from circleci_analytics.connectors.streams import ALL_BRANCHES, DEFAULT_BRANCH, Cursor, Endpoint, Field, Layout, Stream
from circleci_analytics.connectors.tests_metadata import JobRef, JobTestsResult, ProbeState, extract_job_tests

__all__ = [
    "ALL_BRANCHES",
    "CATALOGUE",
    "DEFAULT_BRANCH",
    "DEFAULT_PATIENCE",
    "DEFAULT_RATE_LIMITS",
    "ApiStatusError",
    "AuthError",
    "BadRequest",
    "CircleCIClient",
    "CircleCIError",
    "ClientStats",
    "Cursor",
    "DataError",
    "Discovery",
    "Endpoint",
    "Extract",
    "ExpiredUrl",
    "Field",
    "InvalidInput",
    "InvalidPath",
    "InvalidToken",
    "JobRef",
    "JobTestsResult",
    "Layout",
    "NotFound",
    "PaginationError",
    "ProbeState",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Stream",
    "TransportFailure",
    "discover_projects",
    "encode_project_slug",
    "encode_segment",
    "extract_job_tests",
    "extract_projects",
    "extract_stream",
    "is_transient",
    "normalize_token",
    "paginate",
    "render_path",
    "validate_project_slug",
]
# connectors.usage_export adds its public names here (import + __all__ entries).
