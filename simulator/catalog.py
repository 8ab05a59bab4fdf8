"""The static shape of the simulated organisations: projects, workflows, jobs, test suites.

Derived from (seed, preset, orgs) alone. The history generator (history.py) plays events on it.
The first org is a GitHub org (``gh/<name>``); extra orgs (`SimConfig.extra_orgs`) are built
the same way from their own random stream, so adding one leaves the first org unchanged.
Projects are numbered across orgs (`Project.index`: the first org's come first), which keeps
ids and random streams distinct between orgs; `Project.position` is the place in its org.

Planted patterns live here as data so tests can name them (positions within each org):

- project 0 has a workflow whose name needs percent-encoding (``build & test/e2e``),
  a feature branch with a hostile name, and a cost spike every 30 days (history.py);
- in a GitHub org, project 1 uses a GitHub-App style opaque slug
  ``circleci/<orgId>/<projectId>``; in a GitHub-App org (vcs type ``circleci``, slug
  ``circleci/<orgId>``) every project does, with ``<orgId>`` the org's UUID in base58;
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

from .config import OrgSpec, Preset

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
#: Project names of extra orgs (distinct from the first org's, so a leak between orgs shows).
_EXTRA_NAMES = [
    "checkout-web", "mobile-android", "ml-platform", "edge-proxy", "search-indexer",
    "notifications", "warehouse-etl", "design-system",
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


def base58_uuid(value: str) -> str:
    """A UUID as base58 text (22 characters), the form GitHub-App slugs carry."""
    n = uuid.UUID(value).int
    out = ""
    for _ in range(22):
        n, r = divmod(n, 58)
        out = _BASE58[r] + out
    return out


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
    org_id: str  # the organisation the project belongs to
    position: int  # place among its org's projects (planted patterns key on it)

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
    orgs: tuple[Org, ...]
    #: Every org's projects, in `Project.index` order (so ``projects[i].index == i``).
    projects: tuple[Project, ...]
    #: (id, login); the first is the API user (/me), a member of every org.
    users: tuple[tuple[str, str], ...] = field(default=())

    @property
    def org(self) -> Org:
        """The first organisation (the only one unless `SimConfig.extra_orgs` is set)."""
        return self.orgs[0]

    def project_by_slug(self, slug: str) -> Project | None:
        for p in self.projects:
            if p.slug == slug or p.slug.lower() == slug.lower():
                return p
        return None

    def org_of(self, project: Project) -> Org:
        return next(o for o in self.orgs if o.id == project.org_id)

    def projects_of(self, org: Org) -> tuple[Project, ...]:
        return tuple(p for p in self.projects if p.org_id == org.id)

    def org_by_id(self, org_id: str) -> Org | None:
        return next((o for o in self.orgs if o.id == org_id), None)

    def resolve_org(self, org: Org | str) -> Org:
        """`org` as an Org of this catalog: given as one, by id or by slug (ValueError if unknown)."""
        key = org.id if isinstance(org, Org) else org
        found = self.org_by_id(key) or self.org_by_slug(key)
        if found is None:
            raise ValueError(f"no simulated org {key!r}; orgs: {[o.slug for o in self.orgs]}")
        return found

    def org_by_slug(self, slug: str) -> Org | None:
        """The org an org slug names: its slug, ``github/<name>`` for a GitHub org, or
        ``circleci/<org id>`` (the UUID shown in Organization Settings) for any org."""
        wanted = slug.lower()
        for o in self.orgs:
            aliases = {o.slug.lower(), f"circleci/{o.id}".lower()}
            if o.vcs_type == "github":
                aliases.add(f"github/{o.name}".lower())
            if wanted in aliases:
                return o
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
    build = JobDef(
        "build",
        "build",
        executor,
        rc,
        os_,
        1,
        (),
        rng.uniform(90, 300),
        70,
        55,
        dlc=(idx % 2 == 0 and executor == "docker"),
    )
    lint = JobDef("lint", "build", "docker", "xlarge", "linux", 1, (), rng.uniform(40, 90), 9, 7)  # over-provisioned
    unit = JobDef(
        "unit-tests", "build", executor, rc, os_, 2 if idx % 3 == 0 else 1, ("build",), rng.uniform(150, 420), 80, 60,
        tests=_suite(rng, module, n_tests, 2),
    )  # fmt: skip
    integ = JobDef(
        "integration-tests", "build", executor, "large" if executor == "docker" and not rc.startswith("arm") else rc, os_, 1,
        ("build",), rng.uniform(240, 600), 65, 70, tests=_suite(rng, module + "_integration", max(4, n_tests // 2), 1),
    )  # fmt: skip
    notify = JobDef(
        "notify",
        "build",
        "docker",
        small_rc if executor == "docker" else "small",
        "linux",
        1,
        ("unit-tests",),
        8.0,
        5,
        5,
    )
    main_name = "build & test/e2e" if idx == 0 else "build-and-test"
    main = WorkflowDef(main_name, (build, lint, unit, integ, notify))
    hold = JobDef("hold", "approval", "", "", "", 0, ("build",), 0, 0, 0)
    deploy = JobDef(
        "deploy", "build", "docker", "medium", "linux", 1, ("hold",), rng.uniform(60, 180), 35, 30, ipranges=True
    )
    deploy_build = JobDef("build", "build", "docker", "medium", "linux", 1, (), rng.uniform(60, 120), 60, 50)
    wfs = [main, WorkflowDef("deploy", (deploy_build, hold, deploy), default_branch_only=True)]
    if idx % 4 == 2:
        nightly = JobDef("e2e", "build", "docker", "2xlarge", "linux", 4, (), rng.uniform(600, 1200), 55, 65,
                         tests=_suite(rng, module + "_e2e", max(4, n_tests // 3), 1))  # fmt: skip
        wfs.append(WorkflowDef("nightly-e2e", (nightly,), default_branch_only=True))
    return tuple(wfs)


@cache
def build_catalog(seed: int, preset: Preset, org_name: str, extra_orgs: tuple[OrgSpec, ...] = ()) -> Catalog:
    """Every org's shape. The first org's draws come first and are the same with or without
    extra orgs; each extra org draws from its own stream, keyed by its name."""
    names = [org_name, *(spec.name for spec in extra_orgs)]
    if len({n.lower() for n in names}) != len(names):
        raise ValueError(f"organisation names must be distinct: {names}")
    rng = random.Random(f"{seed}:catalog:{preset.name}:{org_name}")
    first, projects = _build_org(rng, preset, org_name, "github", preset.n_projects, 0, _NAMES)
    orgs = [first]
    # Drawn after the first org's projects, as they always were: the users do not move.
    users = tuple((det_uuid(rng), f"dev-{i}") for i in range(max(5, preset.n_projects // 2)))
    for spec in extra_orgs:
        n = preset.n_projects if spec.n_projects is None else spec.n_projects
        if n < 1:
            raise ValueError(f"org {spec.name!r}: n_projects must be at least 1, not {n}")
        org_rng = random.Random(f"{seed}:catalog:{preset.name}:{spec.name}")
        org, more = _build_org(org_rng, preset, spec.name, spec.vcs_type, n, len(projects), _EXTRA_NAMES)
        orgs.append(org)
        projects += more
    if len(projects) > 1 << 14:
        raise ValueError(f"at most {1 << 14} projects in all orgs, not {len(projects)} (ids encode the index)")
    return Catalog(orgs=tuple(orgs), projects=tuple(projects), users=users)


def _build_org(rng: random.Random, preset: Preset, org_name: str, vcs_type: str, n_projects: int,
               first_index: int, pool: list[str]) -> tuple[Org, list[Project]]:  # fmt: skip
    org_id = det_uuid(rng)
    if vcs_type == "circleci":
        org_b58 = base58_uuid(org_id)
        org = Org(id=org_id, name=org_name, slug=f"circleci/{org_b58}", vcs_type="circleci",
                  created_day_offset=rng.randint(200, 900))  # fmt: skip
    else:
        org = Org(id=org_id, name=org_name, slug=f"gh/{org_name}")
        org_b58 = _base58(rng)
    projects = []
    for pos in range(n_projects):
        name = pool[pos] if pos < len(pool) else f"service-{pos:03d}"
        pid = det_uuid(rng)
        vcs_url = f"https://github.com/{org_name}/{name}"
        if vcs_type == "circleci":
            slug, provider = f"circleci/{org_b58}/{base58_uuid(pid)}", "CircleCI"
        elif pos == 1:
            slug, provider = f"circleci/{org_b58}/{_base58(rng)}", "CircleCI"
        else:
            slug, provider = f"gh/{org_name}/{name}", "GitHub"
        n_feat = min(preset.feature_branches, len(_FEATURES))
        features = [_FEATURES[(pos + k) % len(_FEATURES)] for k in range(n_feat)]
        if pos == 0:
            features.append(HOSTILE_BRANCH)
        projects.append(
            Project(
                index=first_index + pos,
                slug=slug,
                id=pid,
                name=name,
                vcs_url=vcs_url,
                provider=provider,
                default_branch="master" if pos == 2 else "main",
                branches=tuple(features),
                workflows_defs=_project_workflows(rng, pos, name, preset),
                pipelines_per_day=preset.pipelines_per_day * rng.uniform(0.6, 1.4),
                feature_failure_rate=rng.uniform(0.08, 0.2),
                incident_every_days=rng.uniform(2.0, 5.0),
                created_at_day_offset=rng.randint(30, 800),
                org_id=org_id,
                position=pos,
            )
        )
    return org, projects
