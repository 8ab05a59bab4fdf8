"""CircleCI API v2 connectors: an async HTTP client and extractors returning Arrow tables.

Public surface (everything else is private)::

    CircleCIClient, RetryPolicy, ClientStats      connectors.client
    normalize_token                               connectors.auth
    DEFAULT_PATIENCE, DEFAULT_RATE_LIMITS         connectors.ratelimit
    render_path, validate_project_slug            connectors.encoding
    errors (CircleCIError tree), is_transient     connectors.errors
    paginate                                      connectors.pagination
    Extract, STREAMS, StreamSpec                  connectors.streams
    schemas                                       connectors.schemas
    insights / projects / job tests extractors    connectors.insights, .projects, .tests_metadata
"""

from circleci_analytics.connectors.auth import normalize_token
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
from circleci_analytics.connectors.insights import (
    OrgSummary,
    ProjectSummary,
    TestMetrics,
    extract_branches,
    extract_flaky_tests,
    extract_job_timeseries,
    extract_org_summary,
    extract_project_summary,
    extract_test_metrics,
    extract_workflow_job_metrics,
    extract_workflow_metrics,
    extract_workflow_runs,
    extract_workflow_summary,
)
from circleci_analytics.connectors.pagination import paginate
from circleci_analytics.connectors.projects import extract_projects, extract_workflow_jobs, resolve_project
from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE, DEFAULT_RATE_LIMITS
from circleci_analytics.connectors.schemas import SCHEMAS
from circleci_analytics.connectors.streams import ALL_BRANCHES, DEFAULT_BRANCH, STREAMS, Extract, StreamSpec
from circleci_analytics.connectors.tests_metadata import (
    JobRef,
    JobTestsResult,
    ProbeState,
    extract_job_tests,
    job_refs_from_table,
)

__all__ = [
    "ALL_BRANCHES",
    "DEFAULT_BRANCH",
    "DEFAULT_PATIENCE",
    "DEFAULT_RATE_LIMITS",
    "SCHEMAS",
    "STREAMS",
    "ApiStatusError",
    "AuthError",
    "BadRequest",
    "CircleCIClient",
    "CircleCIError",
    "ClientStats",
    "DataError",
    "Extract",
    "ExpiredUrl",
    "InvalidInput",
    "InvalidPath",
    "InvalidToken",
    "JobRef",
    "JobTestsResult",
    "OrgSummary",
    "ProbeState",
    "ProjectSummary",
    "StreamSpec",
    "TestMetrics",
    "NotFound",
    "PaginationError",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TransportFailure",
    "encode_project_slug",
    "encode_segment",
    "extract_branches",
    "extract_flaky_tests",
    "extract_job_tests",
    "extract_job_timeseries",
    "extract_org_summary",
    "extract_project_summary",
    "extract_projects",
    "extract_test_metrics",
    "extract_workflow_job_metrics",
    "extract_workflow_jobs",
    "extract_workflow_metrics",
    "extract_workflow_runs",
    "extract_workflow_summary",
    "is_transient",
    "job_refs_from_table",
    "normalize_token",
    "paginate",
    "render_path",
    "resolve_project",
    "validate_project_slug",
]
# connectors.usage_export adds its public names here (import + __all__ entries).
