"""Ground truth: the simulator's history as tables, and every metric computed from it.

Computed here in plain Python, independently of the SQL marts, following the metric
definitions the marts document (sql/marts/README.md), so tests can check the warehouse
against it:

- tables: `job_runs` (one row per executed job run, i.e. per usage-export row),
  `test_runs` (one row per test result), `workflow_runs` (one row per workflow run),
  `pipelines` (one row per pipeline), `workflow_jobs` (one row per job a workflow lists,
  as `/workflow/{id}/job` lists them: approvals and jobs kept from a re-run included);
- metrics: `credits_daily`, `flaky_tests`, `recoveries`, `mttr_weekly`, `anomalies`,
  `waste`, `right_sizing_p95`.

Credits are exact: they are kept in hundredths of a credit (ints) and converted to
`Decimal` at the edge. With several orgs, `GroundTruth(history, org=...)` is one org's truth
and `GroundTruth(history)` every org's.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .catalog import Org, Project
from .history import CREDIT_TYPES, FAILED_STATUSES, History, JobRun, WorkflowRun

__all__ = [
    "GroundTruth",
    "Recovery",
    "SourcedRun",
    "compute_recoveries",
    "percentile_cont",
    "write_truth",
]


def centi(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def percentile_cont(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (DuckDB's quantile_cont, numpy's default) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Recovery:
    """A failure streak of one project x workflow x branch, and how it ended."""

    project_slug: str
    workflow_name: str
    branch: str
    first_failed_run_id: str
    first_failed_stopped_at: datetime
    failed_runs: int
    recovered_run_id: str | None  # None: the streak is still open
    recovered_at: datetime | None

    @property
    def seconds(self) -> int | None:
        if self.recovered_at is None:
            return None
        return int((self.recovered_at - self.first_failed_stopped_at).total_seconds())


@dataclass(frozen=True, slots=True)
class SourcedRun:
    """A workflow run as the warehouse knows it from Insights and/or the usage export
    (metrics.md, "Workflow runs from the usage export"): Insights' status and creation time
    where Insights has the run; otherwise `success`/`failed` from IS_WORKFLOW_SUCCESSFUL,
    ordered by its pipeline's creation time, then its first job's queue time."""

    id: str
    name: str
    branch: str
    status: str
    created_at: datetime
    first_job_queued_at: datetime | None  # set for export-only runs (the order's tie-break)
    stopped_at: datetime
    source: str  # insights | usage_export | both

    @property
    def order(self) -> tuple:
        return (
            self.created_at,
            self.first_job_queued_at or datetime.max.replace(tzinfo=self.created_at.tzinfo),
            self.id,
        )


def _branch(run: WorkflowRun | SourcedRun) -> str:
    return run.branch if isinstance(run, SourcedRun) else run.pipeline.branch


def _order(run: WorkflowRun | SourcedRun) -> tuple:
    return run.order if isinstance(run, SourcedRun) else (run.created_at, run.id)


def compute_recoveries(runs: Iterable[WorkflowRun | SourcedRun], project_slug: str) -> list[Recovery]:
    """Failure streaks per workflow x branch, per metrics.md ("Recovery and MTTR")."""
    by_scope: dict[tuple[str, str], list] = defaultdict(list)
    for r in runs:
        by_scope[(r.name, _branch(r))].append(r)
    out: list[Recovery] = []
    for (wf, branch), scoped in by_scope.items():
        scoped.sort(key=_order)
        first: WorkflowRun | None = None
        failed = 0
        for r in scoped:
            if r.status in FAILED_STATUSES:
                if first is None:
                    first, failed = r, 0
                failed += 1
            elif r.status == "success" and first is not None:
                assert first.stopped_at is not None  # the history plays every run to its end
                out.append(Recovery(project_slug, wf, branch, first.id, first.stopped_at, failed, r.id, r.stopped_at))
                first = None
        if first is not None:
            assert first.stopped_at is not None
            out.append(Recovery(project_slug, wf, branch, first.id, first.stopped_at, failed, None, None))
    return out


def _ts(value: datetime | None) -> datetime | None:
    return value


class GroundTruth:
    """The truth of one simulated history, optionally restricted to one org (an `Org`, its id
    or its slug), to some projects, and to some days."""

    def __init__(self, history: History, projects: Iterable[Project] | None = None,
                 first_day: int = 0, last_day: int | None = None, org: Org | str | None = None):  # fmt: skip
        self.history = history
        if org is not None and projects is not None:
            raise ValueError("pass `org` or `projects`, not both")
        if org is not None:
            projects = history.catalog.projects_of(history.catalog.resolve_org(org))
        self.projects = list(projects) if projects is not None else list(history.catalog.projects)
        self.first_day = first_day
        self.last_day = history.days - 1 if last_day is None else last_day

    # -- raw iteration -------------------------------------------------------------------
    def jobs(self) -> Iterator[tuple[Project, JobRun]]:
        for p in self.projects:
            for job in self.history.iter_jobs(p, self.first_day, self.last_day):
                yield p, job

    def workflows(self) -> Iterator[tuple[Project, WorkflowRun]]:
        for p in self.projects:
            for wf in self.history.iter_workflows(p, self.first_day, self.last_day):
                yield p, wf

    # -- tables --------------------------------------------------------------------------
    def job_runs(self) -> pa.Table:
        """One row per executed job run (the usage export's grain)."""
        cols: dict[str, list] = defaultdict(list)
        for p, j in self.jobs():
            w, pl = j.workflow, j.workflow.pipeline
            cols["project_slug"].append(p.slug)
            cols["project_id"].append(p.id)
            cols["project_name"].append(p.name)
            cols["pipeline_id"].append(pl.id)
            cols["pipeline_number"].append(pl.number)
            cols["vcs_branch"].append(pl.branch)
            cols["vcs_revision"].append(pl.revision)
            cols["workflow_id"].append(w.id)
            cols["workflow_name"].append(w.name)
            cols["workflow_status"].append(w.status)
            cols["pipeline_created_at"].append(pl.created_at)
            cols["workflow_first_job_queued_at"].append(w.first_job_queued_at)
            cols["workflow_stopped_at"].append(w.stopped_at)
            cols["is_rerun"].append(w.rerun_of is not None)
            cols["job_id"].append(j.id)
            cols["job_name"].append(j.name)
            cols["job_number"].append(j.number)
            cols["job_status"].append(j.status)
            cols["job_run_date"].append(j.started_at.date())
            cols["queued_at"].append(j.queued_at)
            cols["started_at"].append(j.started_at)
            cols["stopped_at"].append(j.stopped_at)
            cols["run_seconds"].append(j.run_seconds)
            cols["resource_class"].append(j.resource_class)
            cols["executor"].append(j.executor)
            cols["operating_system"].append(j.os)
            cols["parallelism"].append(j.parallelism)
            cols["median_cpu_pct"].append(j.cpu_median)
            cols["max_cpu_pct"].append(j.cpu_max)
            cols["median_ram_pct"].append(j.ram_median)
            cols["max_ram_pct"].append(j.ram_max)
            for name, value in zip(CREDIT_TYPES, j.credits_centi):
                cols[f"{name}_credits"].append(centi(value))
            cols["total_credits"].append(centi(j.credits_total_centi))
        money = pa.decimal128(18, 2)
        types = {f"{c}_credits": money for c in (*CREDIT_TYPES, "total")}
        return _table(cols, types)

    def test_runs(self) -> pa.Table:
        """One row per test result of every executed job run that reports tests."""
        cols: dict[str, list] = defaultdict(list)
        for p, j in self.jobs():
            for t in j.test_results():
                cols["project_slug"].append(p.slug)
                cols["job_number"].append(j.number)
                cols["job_id"].append(j.id)
                cols["job_name"].append(j.name)
                cols["pipeline_id"].append(j.workflow.pipeline.id)
                cols["vcs_revision"].append(j.workflow.pipeline.revision)
                cols["workflow_id"].append(j.workflow.id)
                cols["job_started_at"].append(j.started_at)
                cols["classname"].append(t.classname)
                cols["name"].append(t.name)
                cols["file"].append(t.file)
                cols["result"].append(t.result)
                cols["run_time"].append(t.run_time)
                cols["message"].append(t.message)
        return _table(cols)

    def workflow_runs(self) -> pa.Table:
        """One row per workflow run (Insights' workflow-runs grain, all branches)."""
        cols: dict[str, list] = defaultdict(list)
        for p, w in self.workflows():
            cols["project_slug"].append(p.slug)
            cols["workflow_name"].append(w.name)
            cols["id"].append(w.id)
            cols["branch"].append(w.pipeline.branch)
            cols["status"].append(w.status)
            cols["created_at"].append(w.created_at)
            cols["stopped_at"].append(w.stopped_at)
            cols["duration_seconds"].append(w.duration_seconds)
            cols["credits_used"].append(insights_credits(w))
            cols["pipeline_id"].append(w.pipeline.id)
            cols["pipeline_number"].append(w.pipeline.number)
            cols["rerun_of"].append(w.rerun_of)
            cols["is_approval"].append(w.is_approval)
        return _table(cols)

    def pipelines(self) -> pa.Table:
        """One row per pipeline (`/pipeline`'s and `/project/{slug}/pipeline`'s grain)."""
        cols: dict[str, list] = defaultdict(list)
        for p in self.projects:
            org_id = self.history.catalog.org_of(p).id
            for pl in self.history.iter_pipelines(p, self.first_day, self.last_day):
                cols["org_id"].append(org_id)
                cols["project_slug"].append(p.slug)
                cols["id"].append(pl.id)
                cols["number"].append(pl.number)
                cols["created_at"].append(pl.created_at)
                cols["branch"].append(pl.branch)
                cols["revision"].append(pl.revision)
                cols["trigger_type"].append(pl.trigger_type)
                cols["actor_id"].append(pl.actor_id)
                cols["actor_login"].append(pl.actor_login)
                cols["workflows"].append(len(pl.workflows))
        return _table(cols)

    def workflow_jobs(self) -> pa.Table:
        """One row per job each workflow run lists, in its order: approval jobs (no number)
        and jobs a re-run kept from the run before (`executed` false) included."""
        cols: dict[str, list] = defaultdict(list)
        for p, w in self.workflows():
            for j in w.jobs:
                cols["project_slug"].append(p.slug)
                cols["workflow_id"].append(w.id)
                cols["job_id"].append(j.id)
                cols["job_name"].append(j.name)
                cols["job_number"].append(j.number)
                cols["type"].append(j.type)
                cols["status"].append(j.status)
                cols["started_at"].append(j.started_at)
                cols["stopped_at"].append(j.stopped_at)
                cols["executed"].append(not j.shared and j.number is not None)
        return _table(cols, {"job_number": pa.int64()})

    # -- metrics -------------------------------------------------------------------------
    def credits_daily(self) -> dict[tuple[date, str, str, str, str], Decimal]:
        """(job_run_date, project_slug, executor, resource_class, credit_type) -> credits."""
        acc: dict[tuple, int] = defaultdict(int)
        for p, j in self.jobs():
            d = j.started_at.date()
            for name, value in zip(CREDIT_TYPES, j.credits_centi):
                acc[(d, p.slug, j.executor, j.resource_class, name)] += value
            acc[(d, p.slug, j.executor, j.resource_class, "total")] += j.credits_total_centi
        return {k: centi(v) for k, v in acc.items()}

    def credits_by_project_day(self) -> dict[tuple[str, date], Decimal]:
        acc: dict[tuple, int] = defaultdict(int)
        for p, j in self.jobs():
            acc[(p.slug, j.started_at.date())] += j.credits_total_centi
        return {k: centi(v) for k, v in acc.items()}

    def _test_results_by_commit(self):
        """test identity -> revision -> list of (result, job run)."""
        out: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for p, j in self.jobs():
            for t in j.test_results():
                if t.result == "skipped":
                    continue
                out[(p.slug, j.name, t.classname, t.name)][j.workflow.pipeline.revision].append((t.result, j))
        return out

    def flaky_tests(self) -> dict[tuple[str, str, str, str], dict]:
        """Flaky tests keyed by identity (project, job name, classname, test name)."""
        current_since = self.history.end - timedelta(days=14)
        out = {}
        for ident, commits in self._test_results_by_commit().items():
            flaked_fail_times: list[datetime] = []
            commits_flaked = 0
            for results in commits.values():
                outcomes = {r for r, _ in results}
                if "success" in outcomes and outcomes & {"failure", "error"}:
                    commits_flaked += 1
                    flaked_fail_times += [j.started_at for r, j in results if r in ("failure", "error")]
            if commits_flaked:
                out[ident] = {
                    "times_flaked": len(flaked_fail_times),
                    "commits_flaked": commits_flaked,
                    "first_flake_at": min(flaked_fail_times),
                    "last_flake_at": max(flaked_fail_times),
                    "currently_flaky": max(flaked_fail_times) >= current_since,
                }
        return out

    def flaky_job_failures(self) -> list[JobRun]:
        """Failed job runs whose failing tests all flaked on that commit (metrics.md)."""
        flaked: set[tuple] = set()
        for ident, commits in self._test_results_by_commit().items():
            for rev, results in commits.items():
                outcomes = {r for r, _ in results}
                if "success" in outcomes and outcomes & {"failure", "error"}:
                    flaked.add((*ident, rev))
        out = []
        for p, j in self.jobs():
            if j.status != "failed":
                continue
            failing = [t for t in j.test_results() if t.result in ("failure", "error")]
            rev = j.workflow.pipeline.revision
            if failing and all((p.slug, j.name, t.classname, t.name, rev) in flaked for t in failing):
                out.append(j)
        return out

    def waste(self) -> dict[str, Decimal | int]:
        failed = rerun = flaky = 0
        flaky_seconds = 0
        for _, j in self.jobs():
            if j.status in ("failed", "infrastructure_fail"):
                failed += j.credits_total_centi
            if j.workflow.rerun_of is not None:
                rerun += j.credits_total_centi
        for j in self.flaky_job_failures():
            flaky += j.credits_total_centi
            flaky_seconds += j.run_seconds
        return {
            "failed_credits": centi(failed),
            "rerun_credits": centi(rerun),
            "flaky_credits": centi(flaky),
            "flaky_seconds": flaky_seconds,
        }

    def recoveries(self) -> list[Recovery]:
        out: list[Recovery] = []
        for p in self.projects:
            out += compute_recoveries(self.history.iter_workflows(p, self.first_day, self.last_day), p.slug)
        return out

    def sourced_workflow_runs(self, insights_from: datetime) -> dict[str, list[SourcedRun]]:
        """Project slug -> its workflow runs as a warehouse sees them when Insights covers the
        runs created from `insights_from` on and the usage export every run with an executed
        (billable) job."""
        out: dict[str, list[SourcedRun]] = defaultdict(list)
        for p, w in self.workflows():
            if w.stopped_at is None:  # still running: neither source has its outcome yet
                continue
            in_insights, in_export = w.created_at >= insights_from, bool(w.executed_jobs)
            if in_insights:
                source = "both" if in_export else "insights"
                run = SourcedRun(w.id, w.name, w.pipeline.branch, w.status, w.created_at, None, w.stopped_at, source)
            elif in_export:
                status = "success" if w.status == "success" else "failed"
                run = SourcedRun(w.id, w.name, w.pipeline.branch, status, w.pipeline.created_at,
                                 w.first_job_queued_at, w.stopped_at, "usage_export")  # fmt: skip
            else:
                continue
            out[p.slug].append(run)
        return out

    def mttr_weekly(self, recoveries: list[Recovery] | None = None) -> dict[tuple[str, str, str, date], dict]:
        """(project, workflow, branch, ISO week start) -> mean/median seconds and count (of
        `recoveries`, by default those of every run)."""
        acc: dict[tuple, list[int]] = defaultdict(list)
        for r in self.recoveries() if recoveries is None else recoveries:
            if r.recovered_at is None or (seconds := r.seconds) is None:
                continue
            week = r.recovered_at.date() - timedelta(days=r.recovered_at.weekday())
            acc[(r.project_slug, r.workflow_name, r.branch, week)].append(seconds)
        return {
            k: {"mean_seconds": statistics.fmean(v), "median_seconds": statistics.median(v), "recoveries": len(v)}
            for k, v in acc.items()
        }

    def anomalies(self) -> set[tuple[str, date]]:
        """Project-days whose credits exceed the trailing 28-day mean + 3 sample std devs."""
        by_pd = self.credits_by_project_day()
        out = set()
        for p in self.projects:
            days = [self.history.start.date() + timedelta(days=d) for d in range(self.first_day, self.last_day + 1)]
            series = [float(by_pd.get((p.slug, d), 0)) for d in days]
            for i, d in enumerate(days):
                window = series[max(0, i - 28) : i]
                if len(window) < 14:
                    continue
                mean, sd = statistics.fmean(window), statistics.stdev(window)
                if series[i] > mean + 3 * sd:
                    out.add((p.slug, d))
        return out

    def right_sizing_p95(self, days: int = 30) -> dict[tuple[str, str, str, str], tuple[float, float, int]]:
        """(project, job, executor, resource class) -> (p95 max CPU %, p95 max RAM %, runs) over
        the trailing `days` days; job runs without utilisation (under 15 s) excluded."""
        since = self.history.end - timedelta(days=days)
        acc: dict[tuple, tuple[list, list]] = defaultdict(lambda: ([], []))
        for p, j in self.jobs():
            if j.started_at < since or j.cpu_max is None:
                continue
            cpu, ram = acc[(p.slug, j.name, j.executor, j.resource_class)]
            cpu.append(j.cpu_max)
            ram.append(j.ram_max)
        return {k: (percentile_cont(c, 0.95), percentile_cont(r, 0.95), len(c)) for k, (c, r) in acc.items()}


def insights_credits(w: WorkflowRun) -> int:
    """Insights' credits for a workflow run: compute credits only, whole credits.

    Insights is documented as not billing-grade; the simulator makes the gap concrete
    (no DLC, storage, network or IP-range credits; rounded down), so the reconciliation
    mart has a real difference to report.
    """
    return sum(j.credits_centi[0] for j in w.executed_jobs) // 100


def _table(cols: dict[str, list], types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    types = types or {}
    arrays = {}
    for name, values in cols.items():
        if name in types:
            arrays[name] = pa.array(values, type=types[name])
        elif values and isinstance(values[0], datetime):
            arrays[name] = pa.array(values, type=pa.timestamp("us", tz="UTC"))
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def write_truth(history: History, out_dir: str | Path) -> dict[str, int]:
    """Write the truth tables (Parquet) and metrics (JSON) to `out_dir`; return row counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = GroundTruth(history)
    counts = {}
    for name in ("job_runs", "test_runs", "workflow_runs"):
        table = getattr(truth, name)()
        pq.write_table(table, out / f"{name}.parquet")
        counts[name] = table.num_rows
    recoveries = truth.recoveries()
    org = history.catalog.org
    metrics = {
        "org": {"id": org.id, "slug": org.slug, "name": org.name},
        "orgs": [
            {
                "id": o.id,
                "slug": o.slug,
                "name": o.name,
                "vcs_type": o.vcs_type,
                "projects": [p.slug for p in history.catalog.projects_of(o)],
            }
            for o in history.catalog.orgs
        ],  # fmt: skip
        "window": {"start": history.start.isoformat(), "end": history.end.isoformat()},
        "projects": [
            {"slug": p.slug, "id": p.id, "name": p.name, "default_branch": p.default_branch, "workflows": p.workflows}
            for p in truth.projects
        ],  # fmt: skip
        "credits_daily": [
            {
                "date": k[0].isoformat(),
                "project_slug": k[1],
                "executor": k[2],
                "resource_class": k[3],
                "credit_type": k[4],
                "credits": str(v),
            }
            for k, v in sorted(truth.credits_daily().items())
        ],  # fmt: skip
        "flaky_tests": [
            {"project_slug": k[0], "job_name": k[1], "classname": k[2], "test_name": k[3], **v}
            for k, v in sorted(truth.flaky_tests().items())
        ],
        "recoveries": [
            {
                "project_slug": r.project_slug,
                "workflow_name": r.workflow_name,
                "branch": r.branch,
                "first_failed_run_id": r.first_failed_run_id,
                "first_failed_stopped_at": r.first_failed_stopped_at,
                "failed_runs": r.failed_runs,
                "recovered_run_id": r.recovered_run_id,
                "recovered_at": r.recovered_at,
                "seconds": r.seconds,
            }
            for r in recoveries
        ],  # fmt: skip
        "mttr_weekly": [
            {"project_slug": k[0], "workflow_name": k[1], "branch": k[2], "week": k[3].isoformat(), **v}
            for k, v in sorted(truth.mttr_weekly().items())
        ],
        "anomalies": [{"project_slug": s, "date": d.isoformat()} for s, d in sorted(truth.anomalies())],
        "waste": truth.waste(),
        "incidents": [
            {"project_slug": p.slug, "start": i.start, "end": i.end, "job_name": i.job_name}
            for p in truth.projects
            for i in history.incidents(p)
        ],  # fmt: skip
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    counts["recoveries"] = len(recoveries)
    counts["flaky_tests"] = len(metrics["flaky_tests"])
    return counts
