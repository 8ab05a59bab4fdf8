"""Simulator configuration: scale presets, behaviour knobs and the fault plan."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["PRESETS", "Preset", "SimConfig", "OrgSpec", "FaultRule", "FamilyLimit", "DEFAULT_TOKEN"]

#: The personal API token the simulator accepts unless configured otherwise.
DEFAULT_TOKEN = "CCIPAT_simulator_personal_token_0000"


@dataclass(frozen=True)
class Preset:
    """How big an organisation to simulate."""

    name: str
    n_projects: int
    days: int
    pipelines_per_day: float  # mean per project on a weekday
    tests_per_suite: int
    feature_branches: int  # per project


PRESETS: dict[str, Preset] = {
    # Unit tests: generated in well under a second.
    "tiny": Preset("tiny", n_projects=3, days=45, pipelines_per_day=5, tests_per_suite=10, feature_branches=3),
    # A believable org for the demo and the metric tests.
    "demo": Preset("demo", n_projects=8, days=100, pipelines_per_day=10, tests_per_suite=30, feature_branches=6),
    # ~200 projects, ~1M job rows a month, 13 months; generated lazily per project-day.
    "large": Preset("large", n_projects=200, days=400, pipelines_per_day=33, tests_per_suite=25, feature_branches=8),
}


@dataclass(frozen=True)
class OrgSpec:
    """One more organisation beside the first (`SimConfig.org_name`, a GitHub org).

    `vcs_type="circleci"` is a GitHub-App (standalone) org: slug ``circleci/<orgId>``,
    opaque project slugs ``circleci/<orgId>/<projectId>``; ``"github"`` is an OAuth GitHub
    org (``gh/<name>``). Its projects follow the preset's shape and span; `n_projects`
    overrides how many.
    """

    name: str
    vcs_type: Literal["circleci", "github"] = "circleci"
    n_projects: int | None = None


@dataclass(frozen=True)
class FamilyLimit:
    """A token bucket: `capacity` requests refilled evenly over `period_seconds`."""

    capacity: int
    period_seconds: float


FaultKind = Literal[
    "status",  # answer with `status` (500/502/503/...) and a JSON message
    "slow",  # sleep `delay_seconds` before answering
    "drop",  # start the response, then drop the connection
    "truncate_part",  # serve a usage-export part cut short (bad gzip)
    "export_failed",  # usage export job ends `failed` (error_reason set)
    "export_too_large",  # usage export job ends `failed` with a result-too-large reason
    "null_urls",  # usage export `completed` with download_urls null
    "expire_url",  # a pre-signed URL answers 403 as if expired
    "malformed_row",  # one malformed CSV row in a usage-export part
    "repeat_page_token",  # a list page hands back the token it was called with
]


@dataclass(frozen=True)
class FaultRule:
    """One fault: where it applies and when.

    `route` is an operation name (e.g. ``getProjectWorkflowRuns``, ``createUsageExport``,
    ``downloadUsagePart``) or ``*``. A rule fires on the listed 1-based call numbers of that
    route (`calls`, scripted), else with `probability` (drawn from the seeded fault RNG),
    at most `limit` times in all (None: no limit).
    """

    kind: FaultKind
    route: str = "*"
    calls: tuple[int, ...] = ()
    probability: float = 0.0
    limit: int | None = None
    status: int = 503
    delay_seconds: float = 1.0


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines the simulator's data and behaviour.

    The event history depends only on (seed, preset, now, org_name, extra_orgs); adding
    extra orgs leaves the first org's history as it was. Everything else changes
    behaviour (pagination, formats, limits, faults), never the ground truth.
    """

    seed: int = 42
    preset: str = "tiny"
    #: "Now" of the simulated world. History covers the `preset.days` full days before
    #: now's date (today itself has no data yet, as in CircleCI's daily refresh).
    now: datetime | None = None
    org_name: str = "acme-robotics"
    #: More organisations, each with its own projects and history, all visible to the one
    #: user (/me/collaborations). Empty: one org, exactly as before extra orgs existed.
    extra_orgs: tuple[OrgSpec, ...] = ()
    token: str = DEFAULT_TOKEN
    page_size: int = 20
    tests_page_size: int = 250
    flaky_keys: Literal["snake", "kebab"] = "snake"
    export_flag_style: Literal["truefalse", "YN"] = "truefalse"
    export_shuffle_columns: bool = False
    export_extra_column: bool = False
    export_rows_per_part: int = 2_000
    #: Real seconds from creation until an export job is completed (created -> processing
    #: after a third of it).
    export_processing_seconds: float = 1.0
    #: Rows above which an export fails with a result-too-large reason (None: never).
    export_max_rows: int | None = None
    url_ttl_seconds: float = 600.0
    #: Divides every rate-limit period: 3600 makes "10 per hour" mean 10 per second.
    time_scale: float = 1.0
    rate_limits: dict[str, FamilyLimit] = field(
        default_factory=lambda: {
            "insights": FamilyLimit(300, 60),
            "tests": FamilyLimit(600, 60),
            "core": FamilyLimit(600, 60),
            "usage_export_post": FamilyLimit(10, 3600),
            "usage_export_get": FamilyLimit(10, 3600),
        }
    )
    #: Injected latency per API call, in seconds (benchmarks).
    latency_seconds: float = 0.0
    faults: tuple[FaultRule, ...] = ()

    @property
    def scale(self) -> Preset:
        try:
            return PRESETS[self.preset]
        except KeyError:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}") from None

    def resolved_now(self) -> datetime:
        now = self.now or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(UTC)

    def with_(self, **changes: Any) -> SimConfig:  # replace() checks the field names
        return replace(self, **changes)
