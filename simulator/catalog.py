"""The static shape of the simulated organisation: projects, workflows, jobs, test suites.

Derived from (seed, preset) alone. The history generator (history.py) plays events on it.
Planted patterns live here as data so tests can name them:

- project 0 has a workflow whose name needs percent-encoding (``build & test/e2e``),
  a feature branch with a hostile name, and a cost spike every 30 days (history.py);
- project 1 uses a GitHub-App style opaque slug ``circleci/<orgId>/<projectId>``;
- every project has a few flaky tests (pass and fail on the same commit);
- the ``lint`` job runs on an over-provisioned xlarge class;
- ``deploy`` workflows hold on an approval job (no job number, no usage row).
"""

from __future__ import annotations

import csv
import random
import uuid
from dataclasses import dataclass, field
from functools import cache

from circleci_analytics import RESOURCE_CLASSES_CSV

from .config import Preset

__all__ = [
    "Org",
    "Project",
    "WorkflowDef",
    "JobDef",
    "TestCase",
    "ResourceClass",
    "Catalog",
    "build_catalog",
    "resource_classes",
    "det_uuid",
]

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_NAMES = [
    "web-app", "mobile-ios", "api-gateway", "billing-service", "data-pipeline",
    "auth-service", "infra-terraform", "docs-site",
]  # fmt: skip
_FEATURES = [
    "feature/login-ui", "fix/flaky-timeouts", "feature/payments-v2", "chore/deps",
    "feature/search", "refactor/db-layer", "feature/dark-mode", "fix/memory-leak",
]  # fmt: skip
#: A branch name that must not escape a hive-partitioned lake (slashes, dots, quotes, unicode).
HOSTILE_BRANCH = "fix/../'quoted\" ünïcode=branch"


@dataclass(frozen=True)
class ResourceClass:
    name: str
    executor: str
    family: str
    credits_per_minute: int
    vcpus: float
    ram_gb: float


@cache
def resource_classes() -> dict[tuple[str, str], ResourceClass]:
    """CircleCI's rate table keyed by (executor, resource class)."""
    with open(RESOURCE_CLASSES_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        (r["executor"], r["resource_class"]): ResourceClass(
            r["resource_class"], r["executor"], r["family"], int(r["credits_per_minute"]),
            float(r["vcpus"]), float(r["ram_gb"]),
        )
        for r in rows
    }  # fmt: skip


def det_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _base58(rng: random.Random, n: int = 22) -> str:
    return "".join(rng.choice(_BASE58) for _ in range(n))


@dataclass(frozen=True)
class TestCase:
    classname: str
    name: str
    file: str
    mean_seconds: float
    flake_probability: float  # 0 for stable tests
    skipped: bool = False


@dataclass(frozen=True)
class JobDef:
    name: str
    type: str  # build | approval
    executor: str
    resource_class: str
    os: str
    parallelism: int
    requires: tuple[str, ...]
    mean_seconds: float
    cpu_pct: float  # typical median CPU utilisation
    ram_pct: float
    tests: tuple[TestCase, ...] = ()
    dlc: bool = False
    ipranges: bool = False

    @property
    def rate(self) -> ResourceClass | None:
        return resource_classes().get((self.executor, self.resource_class))


@dataclass(frozen=True)
class WorkflowDef:
    name: str
    jobs: tuple[JobDef, ...]
    default_branch_only: bool = False

    @property
    def has_approval(self) -> bool:
        return any(j.type == "approval" for j in self.jobs)


@dataclass(frozen=True)
class Project:
    index: int
    slug: str
    id: str
    name: str
    vcs_url: str
    provider: str  # GitHub | CircleCI
    default_branch: str
    branches: tuple[str, ...]  # feature branches
    workflows_defs: tuple[WorkflowDef, ...]
    pipelines_per_day: float
    feature_failure_rate: float
    incident_every_days: float  # mean gap between default-branch breakages
    created_at_day_offset: int  # project created this many days before history.EPOCH

    @property
    def workflows(self) -> list[str]:
        return [w.name for w in self.workflows_defs]

    def workflow(self, name: str) -> WorkflowDef | None:
        return next((w for w in self.workflows_defs if w.name == name), None)


@dataclass(frozen=True)
class Org:
    id: str
    name: str
    slug: str
    vcs_type: str = "github"
    created_day_offset: int = 900


@dataclass(frozen=True)
class Catalog:
    org: Org
    projects: tuple[Project, ...]
    users: tuple[tuple[str, str], ...] = field(default=())  # (id, login)

    def project_by_slug(self, slug: str) -> Project | None:
        for p in self.projects:
            if p.slug == slug or p.slug.lower() == slug.lower():
                return p
        return None


def _suite(rng: random.Random, module: str, n: int, n_flaky: int) -> tuple[TestCase, ...]:
    cases = []
    flaky_at = set(rng.sample(range(n), min(n_flaky, n)))
    for i in range(n):
        cls = f"tests.{module}.Test{['Api', 'Models', 'Views', 'Jobs', 'Utils'][i % 5]}"
        cases.append(
            TestCase(
                classname=cls,
                name=f"test_{['create', 'update', 'delete', 'list', 'render', 'sync'][i % 6]}_{i}",
                file=f"tests/{module}/test_{cls.rsplit('.', 1)[1][4:].lower()}.py",
                mean_seconds=round(rng.lognormvariate(-1.0, 1.0), 3),
                flake_probability=round(rng.uniform(0.03, 0.09), 3) if i in flaky_at else 0.0,
                skipped=(i % 17 == 16),
            )
        )
    return tuple(cases)


def _project_workflows(rng: random.Random, idx: int, name: str, preset: Preset) -> tuple[WorkflowDef, ...]:
    n_tests = preset.tests_per_suite
    module = name.replace("-", "_")
    if name == "mobile-ios":
        executor, rc, os_ = "macos", "macos.m1.medium.gen1", "macos"
    elif idx % 5 == 4:
        executor, rc, os_ = "machine", "large", "linux"
    elif idx % 7 == 3:
        executor, rc, os_ = "docker", "arm.large", "linux"
    else:
        executor, rc, os_ = "docker", "medium", "linux"
    small_rc = "small" if executor == "docker" and not rc.startswith("arm") else rc
    build = JobDef("build", "build", executor, rc, os_, 1, (), rng.uniform(90, 300), 70, 55, dlc=(idx % 2 == 0 and executor == "docker"))
    lint = JobDef("lint", "build", "docker", "xlarge", "linux", 1, (), rng.uniform(40, 90), 9, 7)  # over-provisioned
    unit = JobDef(
        "unit-tests", "build", executor, rc, os_, 2 if idx % 3 == 0 else 1, ("build",), rng.uniform(150, 420), 80, 60,
        tests=_suite(rng, module, n_tests, 2),
    )  # fmt: skip
    integ = JobDef(
        "integration-tests", "build", executor, "large" if executor == "docker" and not rc.startswith("arm") else rc, os_, 1,
        ("build",), rng.uniform(240, 600), 65, 70, tests=_suite(rng, module + "_integration", max(4, n_tests // 2), 1),
    )  # fmt: skip
    notify = JobDef("notify", "build", "docker", small_rc if executor == "docker" else "small", "linux", 1, ("unit-tests",), 8.0, 5, 5)
    main_name = "build & test/e2e" if idx == 0 else "build-and-test"
    main = WorkflowDef(main_name, (build, lint, unit, integ, notify))
    hold = JobDef("hold", "approval", "", "", "", 0, ("build",), 0, 0, 0)
    deploy = JobDef("deploy", "build", "docker", "medium", "linux", 1, ("hold",), rng.uniform(60, 180), 35, 30, ipranges=True)
    deploy_build = JobDef("build", "build", "docker", "medium", "linux", 1, (), rng.uniform(60, 120), 60, 50)
    wfs = [main, WorkflowDef("deploy", (deploy_build, hold, deploy), default_branch_only=True)]
    if idx % 4 == 2:
        nightly = JobDef("e2e", "build", "docker", "2xlarge", "linux", 4, (), rng.uniform(600, 1200), 55, 65,
                         tests=_suite(rng, module + "_e2e", max(4, n_tests // 3), 1))  # fmt: skip
        wfs.append(WorkflowDef("nightly-e2e", (nightly,), default_branch_only=True))
    return tuple(wfs)


@cache
def build_catalog(seed: int, preset: Preset, org_name: str) -> Catalog:
    rng = random.Random(f"{seed}:catalog:{preset.name}:{org_name}")
    org_id = det_uuid(rng)
    org = Org(id=org_id, name=org_name, slug=f"gh/{org_name}")
    org_b58 = _base58(rng)
    projects = []
    for idx in range(preset.n_projects):
        name = _NAMES[idx] if idx < len(_NAMES) else f"service-{idx:03d}"
        pid = det_uuid(rng)
        if idx == 1:
            slug, provider = f"circleci/{org_b58}/{_base58(rng)}", "CircleCI"
            vcs_url = f"https://github.com/{org_name}/{name}"
        else:
            slug, provider = f"gh/{org_name}/{name}", "GitHub"
            vcs_url = f"https://github.com/{org_name}/{name}"
        n_feat = min(preset.feature_branches, len(_FEATURES))
        features = [_FEATURES[(idx + k) % len(_FEATURES)] for k in range(n_feat)]
        if idx == 0:
            features.append(HOSTILE_BRANCH)
        projects.append(
            Project(
                index=idx,
                slug=slug,
                id=pid,
                name=name,
                vcs_url=vcs_url,
                provider=provider,
                default_branch="master" if idx == 2 else "main",
                branches=tuple(features),
                workflows_defs=_project_workflows(rng, idx, name, preset),
                pipelines_per_day=preset.pipelines_per_day * rng.uniform(0.6, 1.4),
                feature_failure_rate=rng.uniform(0.08, 0.2),
                incident_every_days=rng.uniform(2.0, 5.0),
                created_at_day_offset=rng.randint(30, 800),
            )
        )
    users = tuple((det_uuid(rng), f"dev-{i}") for i in range(max(5, preset.n_projects // 2)))
    return Catalog(org=org, projects=tuple(projects), users=users)
