"""The deterministic event history: pipelines -> workflows -> jobs -> tests -> credits.

Generated lazily, one (project, day) at a time, from a RNG seeded by (seed, project, day), so
any window can be produced without generating what came before it and memory stays bounded
for the `large` preset. Cross-day facts are precomputed cheaply per project:

- the number of pipelines per day (so pipeline numbers are exact and contiguous),
- a job-number base per day (an upper bound of the day's jobs; numbers have gaps only
  at day boundaries),
- the default-branch breakages ("incidents") that make failure streaks with known
  start and end times.

IDs are random-looking UUIDs whose last 48 bits encode (kind, project, day, sequence), so the
simulator can find a pipeline, workflow or job by id without an index. Clients must treat
them as opaque, as they do with CircleCI's.

Simplifications (documented, deliberate): jobs that never ran because an upstream job failed
are omitted from workflow job lists; all times are whole seconds; a re-run created after
midnight keeps job numbers from its pipeline's day.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from .catalog import Catalog, JobDef, Project, TestCase, WorkflowDef, build_catalog
from .config import SimConfig

__all__ = [
    "History",
    "Pipeline",
    "WorkflowRun",
    "JobRun",
    "TestResult",
    "Incident",
    "CREDIT_TYPES",
    "FAILED_STATUSES",
]

#: Credit types in the usage export, in CSV column order (without TOTAL).
CREDIT_TYPES = ("compute", "dlc", "user", "storage", "network", "lease", "lease_overage", "ipranges")
FAILED_STATUSES = frozenset({"failed", "error"})

_KIND = {"pipeline": 1, "workflow": 2, "job": 3}
#: Day zero of every simulated calendar: seeds and numbering count days from here.
EPOCH = date(2020, 1, 1)
SPIKE_PERIOD_DAYS = 30
_FLAKY_MESSAGES = (
    "TimeoutError: timed out waiting for element #submit after 5.0s",
    "ConnectionResetError: [Errno 104] Connection reset by peer",
    "AssertionError: expected 3 events, got 2 (race)",
)
_BROKEN_MESSAGE = "AssertionError: expected status 200, got 500"


#: Bits `uuid.UUID(int=..., version=4)` clears and sets (variant RFC 4122, version 4).
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (0x4000 << 64)


def _encoded_uuid(rng: random.Random, kind: str, project: int, day: int, seq: int) -> str:
    """`day` is the absolute day number since EPOCH (15 bits), `project` an index (14 bits)."""
    node = (_KIND[kind] << 45) | (project << 31) | (day << 16) | (seq & 0xFFFF)
    high = rng.getrandbits(80)
    # Same text as str(uuid.UUID(int=..., version=4)), ~3x faster (a hot path for `large`).
    h = "%032x" % ((((high << 48) | node) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_id(value: str) -> tuple[str, int, int, int] | None:
    """(kind, project index, absolute day since EPOCH, sequence) encoded in a simulator id, or None."""
    try:
        node = uuid.UUID(value).int & ((1 << 48) - 1)
    except (ValueError, AttributeError, TypeError):
        return None
    kind_n = node >> 45
    kinds = {v: k for k, v in _KIND.items()}
    if kind_n not in kinds:
        return None
    return kinds[kind_n], (node >> 31) & 0x3FFF, (node >> 16) & 0x7FFF, node & 0xFFFF


@dataclass(slots=True)
class TestResult:
    classname: str
    name: str
    file: str
    result: str  # success | failure | skipped
    run_time: float  # seconds
    message: str | None
    source: str = "junit"


@dataclass(slots=True, eq=False)
class JobRun:
    id: str
    name: str
    type: str  # build | approval
    number: int | None
    status: str
    executor: str
    resource_class: str
    os: str
    parallelism: int
    queued_at: datetime
    started_at: datetime
    stopped_at: datetime
    cpu_median: float | None
    cpu_max: float | None
    ram_median: float | None
    ram_max: float | None
    #: Credits per type in hundredths of a credit (ints keep ground-truth sums exact).
    credits_centi: tuple[int, ...]
    definition: JobDef
    workflow: WorkflowRun
    flaky_failed: tuple[int, ...] = ()
    broken_test: int | None = None  # index of a test broken by the commit
    #: True when this run is listed in a re-run workflow but was executed by an earlier run
    #: of the same pipeline's workflow (rerun from failed keeps successful jobs).
    shared: bool = False

    @property
    def run_seconds(self) -> int:
        return int((self.stopped_at - self.started_at).total_seconds())

    @property
    def credits_total_centi(self) -> int:
        return sum(self.credits_centi)

    @property
    def has_tests(self) -> bool:
        return bool(self.definition.tests) and self.status in ("success", "failed")

    def test_results(self) -> list[TestResult]:
        """This run's test results (deterministic; generated on demand)."""
        if not self.has_tests:
            return []
        rng = random.Random(f"tests:{self.id}")
        out = []
        for i, case in enumerate(self.definition.tests):
            run_time = round(case.mean_seconds * rng.lognormvariate(0.0, 0.3), 3)
            if case.skipped:
                out.append(TestResult(case.classname, case.name, case.file, "skipped", 0.0, None))
            elif i in self.flaky_failed:
                out.append(TestResult(case.classname, case.name, case.file, "failure", run_time,
                                      _FLAKY_MESSAGES[i % len(_FLAKY_MESSAGES)]))  # fmt: skip
            elif i == self.broken_test:
                out.append(TestResult(case.classname, case.name, case.file, "failure", run_time, _BROKEN_MESSAGE))
            else:
                out.append(TestResult(case.classname, case.name, case.file, "success", run_time, ""))
        return out


@dataclass(slots=True, eq=False)
class WorkflowRun:
    id: str
    name: str
    pipeline: Pipeline
    created_at: datetime
    status: str = "success"
    stopped_at: datetime | None = None
    jobs: list[JobRun] = field(default_factory=list)
    rerun_of: str | None = None
    definition: WorkflowDef | None = None

    @property
    def duration_seconds(self) -> int | None:
        if self.stopped_at is None:
            return None
        return int((self.stopped_at - self.created_at).total_seconds())

    @property
    def is_approval(self) -> bool:
        return any(j.type == "approval" for j in self.jobs)

    @property
    def executed_jobs(self) -> list[JobRun]:
        """Jobs this workflow run executed (not the ones shared from an earlier run)."""
        return [j for j in self.jobs if not j.shared and j.number is not None]

    @property
    def first_job_queued_at(self) -> datetime | None:
        """When its first executed job was queued (the usage export's WORKFLOW_FIRST_JOB_QUEUED_AT):
        a re-run's jobs kept from the run before are not its own."""
        return min((j.queued_at for j in self.executed_jobs), default=None)

    @property
    def first_job_started_at(self) -> datetime | None:
        return min((j.started_at for j in self.executed_jobs), default=None)


@dataclass(slots=True, eq=False)
class Pipeline:
    id: str
    number: int
    project: Project
    branch: str
    revision: str
    created_at: datetime
    trigger_type: str  # webhook | scheduled_pipeline | api | explicit
    actor_id: str
    actor_login: str
    day: int
    workflows: list[WorkflowRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Incident:
    """A default-branch breakage: commits pushed in [start, end) fail `job_name`."""

    project_index: int
    start: datetime
    end: datetime
    job_name: str


@dataclass(slots=True)
class _ProjectPlan:
    pipelines_per_day: list[int]
    pipeline_base: list[int]  # first pipeline number of each day
    job_base: list[int]  # first job number of each day (upper-bound spacing)
    incidents: list[Incident]
    incident_starts: list[datetime]


class History:
    """Lazily generated, cached event history of the simulated organisations (one clock)."""

    def __init__(self, config: SimConfig, cache_days: int = 4096):
        self.config = config
        self.seed = config.seed
        self.preset = config.scale
        self.now = config.resolved_now()
        self.end = datetime.combine(self.now.date(), datetime.min.time(), tzinfo=UTC)
        self.start = self.end - timedelta(days=self.preset.days)
        #: Days from EPOCH to the first history day: randomness and numbering are keyed by the
        #: calendar day, so moving `now` forward keeps every earlier day exactly as it was.
        self.offset = (self.start.date() - EPOCH).days
        if self.offset < 0:
            raise ValueError(f"simulated history cannot start before {EPOCH}; use a later `now`")
        self.catalog: Catalog = build_catalog(config.seed, self.preset, config.org_name, config.extra_orgs)
        self._cache: OrderedDict[tuple[int, int], list[Pipeline]] = OrderedDict()
        self._cache_days = cache_days
        self._plans: dict[int, _ProjectPlan] = {}

    # -- plans -------------------------------------------------------------------------
    @property
    def days(self) -> int:
        return self.preset.days

    def day_start(self, day: int) -> datetime:
        return self.start + timedelta(days=day)

    def day_of(self, ts: datetime) -> int:
        return (ts - self.start).days

    def plan(self, project: Project) -> _ProjectPlan:
        plan = self._plans.get(project.index)
        if plan is None:
            plan = self._plans[project.index] = self._make_plan(project)
        return plan

    def is_spike_day(self, project: Project, day: int) -> bool:
        """Each org's first project has a cost spike (a runaway API-triggered loop) every 30
        days (the first org's on the same days as ever; the others' phase shifted)."""
        phase = day + self.offset + self.seed + project.index
        return project.position == 0 and phase % SPIKE_PERIOD_DAYS == 17

    def spike_days(self, project: Project) -> list[int]:
        return [d for d in range(self.days) if self.is_spike_day(project, d)]

    def _make_plan(self, project: Project) -> _ProjectPlan:
        # Computed from EPOCH onwards, one draw sequence per project, so the numbers of a
        # given calendar day never depend on how far the history extends.
        rng = random.Random(f"{self.seed}:plan:{project.index}")
        counts, pipeline_base, job_base = [], [], []
        jobs_per_pipeline = sum(len(w.jobs) for w in project.workflows_defs) * 3
        next_pipeline = 1 + rng.randint(0, 2000)
        next_job = next_pipeline * 4
        for abs_day in range(self.offset + self.days):
            day = abs_day - self.offset
            weekday = (EPOCH + timedelta(days=abs_day)).weekday()
            mean = project.pipelines_per_day * (0.25 if weekday >= 5 else 1.0)
            n = max(0, round(rng.gauss(mean, math.sqrt(mean) * 0.6)))
            if self.is_spike_day(project, day):
                n = n * 6 + 10
            n += 1 if any(w.name == "nightly-e2e" for w in project.workflows_defs) else 0
            counts.append(n)
            pipeline_base.append(next_pipeline)
            job_base.append(next_job)
            next_pipeline += n
            next_job += n * jobs_per_pipeline + 1
        counts, pipeline_base, job_base = (x[self.offset :] for x in (counts, pipeline_base, job_base))
        rng = random.Random(f"{self.seed}:incidents:{project.index}")
        incidents = []
        t = datetime.combine(EPOCH, datetime.min.time(), tzinfo=UTC) + timedelta(hours=rng.uniform(0, 48))
        while t < self.end:
            hours = rng.uniform(0.5, 10.0) if rng.random() < 0.9 else rng.uniform(20.0, 40.0)
            job = rng.choice(("build", "unit-tests", "unit-tests", "integration-tests"))
            end = t + timedelta(seconds=int(hours * 3600))
            incidents.append(Incident(project.index, t.replace(microsecond=0), end.replace(microsecond=0), job))
            t = end + timedelta(days=rng.expovariate(1.0 / project.incident_every_days))
        incidents = [i for i in incidents if i.end > self.start - timedelta(days=3)]
        return _ProjectPlan(list(counts), list(pipeline_base), list(job_base), incidents, [i.start for i in incidents])

    def incidents(self, project: Project) -> list[Incident]:
        return list(self.plan(project).incidents)

    def _incident_at(self, project: Project, ts: datetime) -> Incident | None:
        plan = self.plan(project)
        i = bisect.bisect_right(plan.incident_starts, ts) - 1
        if i >= 0 and plan.incidents[i].start <= ts < plan.incidents[i].end:
            return plan.incidents[i]
        return None

    # -- lookups -----------------------------------------------------------------------
    def pipelines(self, project: Project, day: int) -> list[Pipeline]:
        """All pipelines created on `day` (0 = first history day), generated on demand."""
        if not 0 <= day < self.days:
            return []
        key = (project.index, day)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        made = self._generate_day(project, day)
        self._cache[key] = made
        if len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return made

    def iter_pipelines(self, project: Project, first_day: int = 0, last_day: int | None = None) -> Iterator[Pipeline]:
        last = self.days - 1 if last_day is None else min(last_day, self.days - 1)
        for day in range(max(0, first_day), last + 1):
            yield from self.pipelines(project, day)

    def iter_jobs(self, project: Project, first_day: int = 0, last_day: int | None = None) -> Iterator[JobRun]:
        """Executed job runs (one per job number; approval jobs excluded) by pipeline day."""
        for p in self.iter_pipelines(project, first_day, last_day):
            for w in p.workflows:
                yield from w.executed_jobs

    def iter_workflows(
        self, project: Project, first_day: int = 0, last_day: int | None = None
    ) -> Iterator[WorkflowRun]:
        for p in self.iter_pipelines(project, first_day, last_day):
            yield from p.workflows

    def find_pipeline(self, pipeline_id: str) -> Pipeline | None:
        decoded = decode_id(pipeline_id)
        if not decoded or decoded[0] != "pipeline" or decoded[1] >= len(self.catalog.projects):
            return None
        project = self.catalog.projects[decoded[1]]
        return next((p for p in self.pipelines(project, decoded[2] - self.offset) if p.id == pipeline_id), None)

    def find_workflow(self, workflow_id: str) -> WorkflowRun | None:
        decoded = decode_id(workflow_id)
        if not decoded or decoded[0] != "workflow" or decoded[1] >= len(self.catalog.projects):
            return None
        project = self.catalog.projects[decoded[1]]
        for p in self.pipelines(project, decoded[2] - self.offset):
            for w in p.workflows:
                if w.id == workflow_id:
                    return w
        return None

    def find_job(self, project: Project, number: int) -> JobRun | None:
        plan = self.plan(project)
        day = bisect.bisect_right(plan.job_base, number) - 1
        if day < 0:
            return None
        for p in self.pipelines(project, day):
            for w in p.workflows:
                for j in w.jobs:
                    if j.number == number and not j.shared:
                        return j
        return None

    @cached_property
    def last_build_finished_at(self) -> dict[int, datetime]:
        """Per project: when its most recent job finished (usage export LAST_BUILD_FINISHED_AT)."""
        out = {}
        for project in self.catalog.projects:
            for day in range(self.days - 1, -1, -1):
                stops = [j.stopped_at for j in self.iter_jobs(project, day, day)]
                if stops:
                    out[project.index] = max(stops)
                    break
            else:
                out[project.index] = self.start
        return out

    # -- generation --------------------------------------------------------------------
    def _generate_day(self, project: Project, day: int) -> list[Pipeline]:
        rng = random.Random(f"{self.seed}:day:{project.index}:{day + self.offset}")
        plan = self.plan(project)
        n = plan.pipelines_per_day[day]
        day0 = self.day_start(day)
        has_nightly = any(w.name == "nightly-e2e" for w in project.workflows_defs)
        offsets = sorted(self._pipeline_offset(rng) for _ in range(n - (1 if has_nightly else 0)))
        if has_nightly:
            offsets.insert(0, 2 * 3600 + rng.randint(0, 300))
        counters = {"job": plan.job_base[day], "seq": 0}
        pipelines = []
        users = self.catalog.users
        for k, offset in enumerate(offsets):
            created = day0 + timedelta(seconds=offset)
            nightly = has_nightly and k == 0
            on_default = nightly or (self.is_spike_day(project, day) and rng.random() < 0.85) or rng.random() < 0.5
            branch = project.default_branch if on_default else rng.choice(project.branches)
            user_id, login = users[rng.randrange(len(users))]
            trigger = (
                "scheduled_pipeline"
                if nightly
                else ("api" if self.is_spike_day(project, day) and on_default and rng.random() < 0.8 else "webhook")
            )
            pipeline = Pipeline(
                id=_encoded_uuid(rng, "pipeline", project.index, day + self.offset, k),
                number=plan.pipeline_base[day] + k,
                project=project,
                branch=branch,
                revision=f"{rng.getrandbits(160):040x}",
                created_at=created,
                trigger_type=trigger,
                actor_id=user_id,
                actor_login=login,
                day=day,
            )
            if nightly:
                defs = [w for w in project.workflows_defs if w.name == "nightly-e2e"]
            else:
                defs = [
                    w for w in project.workflows_defs
                    if w.name != "nightly-e2e" and (not w.default_branch_only or branch == project.default_branch)
                ]  # fmt: skip
            incident = self._incident_at(project, created) if on_default else None
            bad_commit = (not on_default) and rng.random() < project.feature_failure_rate
            for wdef in defs:
                self._play_workflow(rng, project, day, pipeline, wdef, incident, bad_commit, counters)
            pipelines.append(pipeline)
        return pipelines

    @staticmethod
    def _pipeline_offset(rng: random.Random) -> int:
        # Working hours weighted: most pushes between 08:00 and 19:00 UTC.
        if rng.random() < 0.8:
            return int(rng.uniform(8 * 3600, 19 * 3600))
        return int(rng.uniform(0, 86399))

    def _play_workflow(
        self,
        rng: random.Random,
        project: Project,
        day: int,
        pipeline: Pipeline,
        wdef: WorkflowDef,
        incident: Incident | None,
        bad_commit: bool,
        counters: dict[str, int],
    ) -> None:
        created = pipeline.created_at + timedelta(seconds=rng.randint(1, 4))
        canceled = pipeline.branch != project.default_branch and rng.random() < 0.04
        previous: WorkflowRun | None = None
        for attempt in range(3):
            counters["seq"] += 1
            run = WorkflowRun(
                id=_encoded_uuid(rng, "workflow", project.index, day + self.offset, counters["seq"]),
                name=wdef.name,
                pipeline=pipeline,
                created_at=created,
                rerun_of=previous.id if previous else None,
                definition=wdef,
            )
            self._play_jobs(
                rng, project, day, run, wdef, incident, bad_commit, canceled and attempt == 0, previous, counters
            )
            pipeline.workflows.append(run)
            if run.status not in FAILED_STATUSES:
                break
            failed_jobs = [j for j in run.jobs if j.status == "failed"]
            genuine = any(j.broken_test is not None or not j.flaky_failed for j in failed_jobs)
            p_rerun = 0.3 if genuine else 0.8  # flaky and infrastructure failures get re-run
            if rng.random() >= p_rerun:
                break
            assert run.stopped_at is not None  # _play_jobs stopped it
            created = run.stopped_at + timedelta(seconds=rng.randint(180, 2400))
            previous = run

    def _play_jobs(
        self,
        rng: random.Random,
        project: Project,
        day: int,
        run: WorkflowRun,
        wdef: WorkflowDef,
        incident: Incident | None,
        bad_commit: bool,
        cancel: bool,
        previous: WorkflowRun | None,
        counters: dict[str, int],
    ) -> None:
        done: dict[str, JobRun] = {}
        ready_at: dict[str, datetime] = {}
        prev_jobs = {j.name: j for j in previous.jobs} if previous else {}
        canceled_any = False
        for jdef in wdef.jobs:
            upstream = [done.get(r) for r in jdef.requires]
            if any(u is None or u.status != "success" for u in upstream):
                continue  # never ran: omitted (see module docstring)
            ready = max([ready_at[r] for r in jdef.requires], default=run.created_at + timedelta(seconds=2))
            prev = prev_jobs.get(jdef.name)
            if prev is not None and prev.status == "success":
                shared = JobRun(**{s: getattr(prev, s) for s in JobRun.__slots__ if s not in ("workflow", "shared")},
                                workflow=run, shared=True)  # fmt: skip
                run.jobs.append(shared)
                done[jdef.name] = shared
                ready_at[jdef.name] = run.created_at + timedelta(seconds=2)
                continue
            if jdef.type == "approval":
                wait = timedelta(seconds=rng.randint(300, 7200))
                job = self._approval(rng, project, day, run, jdef, ready, ready + wait, counters)
            else:
                fail_here = incident is not None and incident.job_name == jdef.name and wdef.name != "deploy"
                if bad_commit and jdef.name == "unit-tests":
                    fail_here = True
                this_cancel = cancel and bool(jdef.requires) and not canceled_any
                job = self._build_job(rng, project, day, run, jdef, ready, fail_here, this_cancel, counters)
                canceled_any = canceled_any or this_cancel
            run.jobs.append(job)
            done[jdef.name] = job
            ready_at[jdef.name] = job.stopped_at
        stops = [j.stopped_at for j in run.jobs if not j.shared]
        run.stopped_at = max(stops) if stops else run.created_at + timedelta(seconds=5)
        statuses = {j.status for j in run.jobs}
        if "infrastructure_fail" in statuses:
            run.status = "error"
        elif "failed" in statuses:
            run.status = "failed"
        elif "canceled" in statuses:
            run.status = "canceled"
        else:
            run.status = "success"

    def _approval(self, rng, project, day, run, jdef, start, stop, counters) -> JobRun:
        counters["seq"] += 1
        return JobRun(
            id=_encoded_uuid(rng, "job", project.index, day + self.offset, counters["seq"]),
            name=jdef.name, type="approval", number=None, status="success", executor="", resource_class="",
            os="", parallelism=0, queued_at=start, started_at=start, stopped_at=stop,
            cpu_median=None, cpu_max=None, ram_median=None, ram_max=None,
            credits_centi=(0,) * len(CREDIT_TYPES), definition=jdef, workflow=run,
        )  # fmt: skip

    def _build_job(
        self, rng, project, day, run, jdef: JobDef, ready: datetime, fail_here: bool, cancel: bool, counters
    ) -> JobRun:
        counters["seq"] += 1
        number = counters["job"]
        counters["job"] += 1
        queue = rng.randint(30, 150) if jdef.executor == "macos" else rng.randint(2, 25)
        started = ready + timedelta(seconds=queue)
        seconds = max(3, int(jdef.mean_seconds * rng.lognormvariate(0.0, 0.25)))
        flaky_failed: tuple[int, ...] = ()
        broken: int | None = None
        status = "success"
        if jdef.tests:
            flaky_failed = tuple(i for i, case in enumerate(jdef.tests)
                                 if case.flake_probability and rng.random() < case.flake_probability)  # fmt: skip
            if fail_here:
                broken = _broken_index(jdef.tests, run.pipeline.revision)
            if flaky_failed or broken is not None:
                status = "failed"
        elif fail_here:
            status = "failed"
            seconds = max(3, seconds // 2)
        if rng.random() < 0.004:
            status, flaky_failed, broken = "infrastructure_fail", (), None
            seconds = max(3, seconds // 3)
        if cancel:
            status, flaky_failed, broken = "canceled", (), None
            seconds = max(3, int(seconds * rng.uniform(0.2, 0.6)))
        stopped = started + timedelta(seconds=seconds)
        if seconds < 15:
            cpu_med = cpu_max = ram_med = ram_max = None
        else:
            cpu_med = round(min(99.0, jdef.cpu_pct * rng.uniform(0.7, 1.1)), 1)
            cpu_max = round(min(100.0, cpu_med * rng.uniform(1.15, 1.5)), 1)
            ram_med = round(min(99.0, jdef.ram_pct * rng.uniform(0.7, 1.1)), 1)
            ram_max = round(min(100.0, ram_med * rng.uniform(1.1, 1.4)), 1)
        rate = jdef.rate
        minutes = math.ceil(seconds / 60)
        compute = minutes * (rate.credits_per_minute if rate else 0) * jdef.parallelism * 100
        dlc = 200 * 100 if jdef.dlc and status != "canceled" else 0
        storage = rng.randint(0, 300) if jdef.tests or jdef.name == "build" else 0
        network = rng.randint(0, 120) if jdef.executor != "macos" else rng.randint(0, 40)
        ipranges = rng.randint(50, 500) if jdef.ipranges else 0
        credits = (compute, dlc, 0, storage, network, 0, 0, ipranges)
        return JobRun(
            id=_encoded_uuid(rng, "job", project.index, day + self.offset, counters["seq"]),
            name=jdef.name, type="build", number=number, status=status, executor=jdef.executor,
            resource_class=jdef.resource_class, os=jdef.os, parallelism=jdef.parallelism,
            queued_at=ready, started_at=started, stopped_at=stopped,
            cpu_median=cpu_med, cpu_max=cpu_max, ram_median=ram_med, ram_max=ram_max,
            credits_centi=credits, definition=jdef, workflow=run, flaky_failed=flaky_failed, broken_test=broken,
        )  # fmt: skip


def _broken_index(tests: tuple[TestCase, ...], revision: str) -> int:
    stable = [i for i, c in enumerate(tests) if not c.flake_probability and not c.skipped]
    return stable[int(revision[:8], 16) % len(stable)]


def day_range(history: History, start: date, end: date) -> tuple[int, int]:
    """Day indexes covering calendar dates [start, end]."""
    return (start - history.start.date()).days, (end - history.start.date()).days
