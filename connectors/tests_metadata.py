"""Job test metadata: GET /project/{project-slug}/{job-number}/tests for many jobs.

The handler of the catalogue's ``job_tests`` stream (its endpoint and field map are there).
Input is a list of job references (``JobRef``: the flows build them from the lake's job runs)
plus a ``ProbeState`` holding what earlier runs learned, as plain JSON-able data so a flow can
persist it between runs:

* ``seen``: ``(project_slug, job_number)`` pairs already landed - never fetched again;
* ``no_test_jobs``: ``(project_slug, job_name) -> last probed`` for job names whose
  jobs produced no test results; such jobs are skipped until ``reprobe_after``
  (default 7 days) has passed, then probed again.

Jobs are skipped when they are approval jobs, have no job number, are not finished
yet (they would report no tests *yet*), repeat a job number already in the batch
(re-run workflows share job numbers), or fail the include/exclude glob patterns on
the job name. The rest are fetched concurrently under the client's limits, one job per
job name first (preferring a successful one): when it reports no tests, the name's other
jobs in the batch are skipped (``known_without_tests``) instead of each costing a call.
A job whose probe fails - a 404, a rejected page token, a 5xx or 429 or network error that
outlived the client's retries, a malformed answer - is reported in ``JobTestsResult.failed``
and left unseen, so the next run retries it; one bad job never loses the others' results.
Only ``AuthError`` (the token was refused: every probe would fail) is raised.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.connectors.client import CircleCIClient
from circleci_analytics.connectors.errors import AuthError, CircleCIError
from circleci_analytics.connectors.extract import Extract, fetch_records, utcnow
from circleci_analytics.connectors.streams import Batch, parse_timestamp

__all__ = ["DEFAULT_REPROBE_AFTER", "JobRef", "JobTestsResult", "ProbeState", "extract_job_tests"]

DEFAULT_REPROBE_AFTER = timedelta(days=7)
UNFINISHED_STATUSES = frozenset({"running", "queued", "not_running", "on_hold", "blocked"})
#: Which job of a name to probe first: one that ran to the end is the one that reports tests.
_PROBE_ORDER = {"success": 0, "failed": 1}


@dataclass(frozen=True)
class JobRef:
    """A job whose tests may be fetched."""

    project_slug: str
    job_number: int | None
    job_name: str | None = None
    job_type: str | None = "build"
    workflow_id: str | None = None
    pipeline_id: str | None = None
    job_started_at: datetime | None = None
    job_status: str | None = None
    #: Used to attribute a job number shared by a re-run workflow to the workflow that
    #: ran it: among duplicates, the earliest workflow wins.
    workflow_created_at: datetime | None = None

    @property
    def context(self) -> dict[str, Any]:
        """The request context of the job's tests (path values and the columns they fill)."""
        return {"project_slug": self.project_slug, "job_number": self.job_number, "job_name": self.job_name,
                "pipeline_id": self.pipeline_id, "workflow_id": self.workflow_id,
                "job_started_at": self.job_started_at}  # fmt: skip


@dataclass
class ProbeState:
    """What earlier runs learned; ``to_dict``/``from_dict`` give plain JSON-able data."""

    seen: set[tuple[str, int]] = field(default_factory=set)
    no_test_jobs: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": sorted([slug, number] for slug, number in self.seen),
            "no_test_jobs": [
                {"project_slug": slug, "job_name": name, "last_probed_at": when.isoformat()}
                for (slug, name), when in sorted(self.no_test_jobs.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ProbeState:
        data = data or {}
        seen = {(str(slug), int(number)) for slug, number in data.get("seen", [])}
        no_tests = {}
        for entry in data.get("no_test_jobs", []):
            when = parse_timestamp(entry["last_probed_at"])
            assert when is not None
            no_tests[(entry["project_slug"], entry["job_name"])] = when
        return cls(seen=seen, no_test_jobs=no_tests)

    def copy(self) -> ProbeState:
        return ProbeState(set(self.seen), dict(self.no_test_jobs))


class JobTestsResult(NamedTuple):
    extract: Extract  # stream "job_tests": one row per test result
    state: ProbeState  # updated copy: persist it for the next run
    skipped: dict[str, int]  # reason -> number of jobs
    probed: int  # jobs whose tests were fetched
    failed: list[tuple[str, int, str]]  # (project_slug, job_number, error) left for next run


def _wanted(name: str | None, include: Sequence[str], exclude: Sequence[str]) -> str | None:
    """``None`` if the job name passes the patterns, else the skip reason."""
    name = name or ""
    if include and not any(fnmatchcase(name, pattern) for pattern in include):
        return "not_included"
    if any(fnmatchcase(name, pattern) for pattern in exclude):
        return "excluded"
    return None


def _earlier(a: JobRef, b: JobRef) -> bool:
    if a.workflow_created_at is None:
        return False
    return b.workflow_created_at is None or a.workflow_created_at < b.workflow_created_at


def _select(
    jobs: Iterable[JobRef],
    state: ProbeState,
    include: Sequence[str],
    exclude: Sequence[str],
    reprobe_after: timedelta,
    now: datetime,
) -> tuple[list[JobRef], Counter[str]]:
    skipped: Counter[str] = Counter()
    chosen: list[JobRef] = []
    batch: set[tuple[str, int]] = set()
    jobs = list(jobs)
    # A re-run workflow lists the jobs it kept from the earlier run under the same
    # number; keep the reference of the earliest workflow (the one that ran the job).
    canonical: dict[tuple[str, int], JobRef] = {}
    for job in jobs:
        if job.job_number is None or job.job_type == "approval":
            continue
        key = (job.project_slug, job.job_number)
        best = canonical.get(key)
        if best is None or _earlier(job, best):
            canonical[key] = job
    for job in jobs:
        if job.job_type == "approval":
            skipped["approval"] += 1
            continue
        if job.job_number is None:
            skipped["no_job_number"] += 1
            continue
        key = (job.project_slug, job.job_number)
        if key in batch or canonical[key] is not job:
            skipped["duplicate_job_number"] += 1
            continue
        if key in state.seen:
            skipped["seen"] += 1
            continue
        if job.job_status in UNFINISHED_STATUSES:
            skipped["not_finished"] += 1
            continue
        reason = _wanted(job.job_name, include, exclude)
        if reason:
            skipped[reason] += 1
            continue
        probed_at = state.no_test_jobs.get((job.project_slug, job.job_name or ""))
        if probed_at is not None and now - probed_at < reprobe_after:
            skipped["known_without_tests"] += 1
            continue
        batch.add(key)
        chosen.append(job)
    return chosen, skipped


async def _fetch_tests(client: CircleCIClient, job: JobRef) -> Batch:
    (batch,) = await fetch_records(client, CATALOGUE["job_tests"], job.context)
    return batch


async def extract_job_tests(
    client: CircleCIClient,
    jobs: Iterable[JobRef],
    *,
    state: ProbeState | Mapping[str, Any] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    reprobe_after: timedelta = DEFAULT_REPROBE_AFTER,
    now: datetime | None = None,
) -> JobTestsResult:
    """Fetch the test results of every selected job; see the module docstring for the rules.

    ``include``/``exclude`` are ``fnmatch`` globs on the job name (empty include = all).
    The input ``state`` is not modified; the result carries the updated copy.
    """
    at = utcnow()
    now = parse_timestamp(now) if now is not None else at
    assert now is not None
    old = state if isinstance(state, ProbeState) else ProbeState.from_dict(state)
    new = old.copy()
    chosen, skipped = _select(jobs, old, include, exclude, reprobe_after, now)

    async def probe(job: JobRef) -> Batch | Exception:
        try:
            return await _fetch_tests(client, job)
        except AuthError:
            raise
        except CircleCIError as exc:
            return exc

    # One job per name is probed first; the name's other jobs only if it answered with tests
    # (a name without tests is learned from one call, as across runs). Names run concurrently.
    groups: dict[tuple[str, str], list[JobRef]] = {}
    for job in chosen:
        groups.setdefault((job.project_slug, job.job_name or ""), []).append(job)
    outcomes: dict[int, Batch | Exception] = {}

    async def probe_name(jobs: list[JobRef]) -> None:
        first = min(range(len(jobs)), key=lambda i: _PROBE_ORDER.get(jobs[i].job_status or "", 2))
        got = await probe(jobs[first])
        outcomes[id(jobs[first])] = got
        if not isinstance(got, Exception) and not got[1]:
            return  # no tests: the name's other jobs are skipped like known names
        rest = [job for i, job in enumerate(jobs) if i != first]
        for job, outcome in zip(rest, await asyncio.gather(*(probe(job) for job in rest)), strict=True):
            outcomes[id(job)] = outcome

    await asyncio.gather(*(probe_name(jobs) for jobs in groups.values()))
    batches: list[Batch] = []
    failed: list[tuple[str, int, str]] = []
    names_with_tests: set[tuple[str, str]] = set()
    names_without: set[tuple[str, str]] = set()
    for job in chosen:
        assert job.job_number is not None
        if id(job) not in outcomes:
            skipped["known_without_tests"] += 1
            continue
        outcome = outcomes[id(job)]
        if isinstance(outcome, Exception):
            failed.append((job.project_slug, job.job_number, str(outcome)))
            continue
        new.seen.add((job.project_slug, job.job_number))
        name_key = (job.project_slug, job.job_name or "")
        (names_with_tests if outcome[1] else names_without).add(name_key)
        batches.append(outcome)
    for key in names_with_tests:
        new.no_test_jobs.pop(key, None)
    for key in names_without - names_with_tests:
        new.no_test_jobs[key] = now
    table = CATALOGUE["job_tests"].table(batches, at)
    extract = Extract(
        "job_tests", table, at, extra={"jobs_probed": len(outcomes) - len(failed), "jobs_failed": len(failed)}
    )
    return JobTestsResult(extract, new, dict(skipped), len(outcomes) - len(failed), failed)
