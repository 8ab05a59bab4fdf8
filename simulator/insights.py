"""Insights answers computed from the event history, following metrics.md.

Readings chosen where CircleCI is silent (the marts document the same choices):
- Insights keeps 90 days: only runs created in [now - 90 days, now) exist here.
- A reporting window `last-N-days` covers runs created in [now - N days, now).
- Without `branch` or `all-branches`, answers are scoped to the project's default branch.
- Duration statistics use successful runs; `mttr`/`total_recoveries` count recoveries whose
  recovering success stopped inside the window (streaks computed over the retained runs).
- `trends` are relative changes against the preceding window of the same length:
  (current - previous) / previous, 0 when the previous value is 0.
- Credits are compute credits only, in whole credits (see truth.insights_credits).
- The org summary and the project page summary cover all branches unless filtered.
"""

from __future__ import annotations

import bisect
import statistics
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .catalog import Project
from .history import FAILED_STATUSES, History, JobRun, WorkflowRun
from .truth import compute_recoveries, insights_credits, percentile_cont

__all__ = ["InsightsEngine", "Scope", "REPORTING_WINDOWS"]

REPORTING_WINDOWS = {
    "last-24-hours": timedelta(hours=24),
    "last-7-days": timedelta(days=7),
    "last-30-days": timedelta(days=30),
    "last-60-days": timedelta(days=60),
    "last-90-days": timedelta(days=90),
}
RETENTION = timedelta(days=90)


@dataclass(frozen=True)
class Scope:
    """Which branches an answer covers: one branch, or all of them."""

    branch: str | None
    all_branches: bool = False

    def matches(self, branch: str) -> bool:
        return self.all_branches or branch == self.branch


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _dm(values: Sequence[float]) -> dict:
    if not values:
        return {"min": None, "mean": None, "median": None, "p95": None, "max": None, "standard_deviation": None}
    return {
        "min": int(min(values)),
        "mean": int(round(statistics.fmean(values))),
        "median": int(round(statistics.median(values))),
        "p95": int(round(percentile_cont(values, 0.95))),
        "max": int(max(values)),
        "standard_deviation": float(statistics.pstdev(values)) if len(values) > 1 else 0.0,
    }


def _rate(ok: int, bad: int) -> float:
    return ok / (ok + bad) if ok + bad else 0.0


def _trend(cur: float | None, prev: float | None) -> float:
    if not prev or cur is None:
        return 0.0
    return (cur - prev) / prev


class InsightsEngine:
    """Insights computations for one history.

    The history is immutable, so per-project results that many answers share (the
    retained runs, recoveries, the flaky list) are memoised, a bounded number of projects
    at a time; answers are unchanged, only computed once.
    """

    def __init__(self, history: History, cached_projects: int = 32):
        self.history = history
        self._memo: OrderedDict[tuple, object] = OrderedDict()
        self._memo_size = cached_projects * 16

    @property
    def now(self) -> datetime:
        return self.history.now

    def _memoised(self, key: tuple, compute):
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = self._memo[key] = compute()
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return value

    # -- run selection -----------------------------------------------------------------
    def _retained(self, project: Project) -> tuple[list[WorkflowRun], list[datetime]]:
        """Every run created in [now - 90 days, now), by creation time, and their times."""

        def compute():
            start = self.now - RETENTION
            # Runs are stored under their pipeline's day; a re-run may be created after
            # midnight of the next day, so look one pipeline-day further back than `start`.
            first, last = self.history.day_of(start) - 1, self.history.day_of(self.now)
            runs = sorted(
                (w for w in self.history.iter_workflows(project, first, last) if start <= w.created_at < self.now),
                key=lambda w: (w.created_at, w.id),
            )
            return runs, [w.created_at for w in runs]

        return self._memoised(("retained", project.index), compute)

    def runs(
        self, project: Project, workflow: str | None, scope: Scope, start: datetime, end: datetime
    ) -> list[WorkflowRun]:
        """Workflow runs created in [start, end) within retention, matching scope (by creation time)."""
        runs, created = self._retained(project)
        lo, hi = bisect.bisect_left(created, max(start, self.now - RETENTION)), bisect.bisect_left(created, end)
        return [w for w in runs[lo:hi] if scope.matches(w.pipeline.branch) and (workflow is None or w.name == workflow)]

    def window(self, reporting_window: str) -> tuple[datetime, datetime]:
        return self.now - REPORTING_WINDOWS[reporting_window], self.now

    def _recoveries_in(self, project: Project, workflow: str, scope: Scope, start: datetime, end: datetime):
        recoveries = self._memoised(
            ("recoveries", project.index, workflow, scope),
            lambda: compute_recoveries(
                self.runs(project, workflow, scope, self.now - RETENTION, self.now), project.slug
            ),
        )
        return [r for r in recoveries if r.recovered_at is not None and start <= r.recovered_at < end]

    def _workflow_metrics(self, project: Project, workflow: str, scope: Scope, start: datetime, end: datetime) -> dict:
        runs = self.runs(project, workflow, scope, start, end)
        ok = sum(r.status == "success" for r in runs)
        bad = sum(r.status in FAILED_STATUSES for r in runs)
        recs = self._recoveries_in(project, workflow, scope, start, end)
        days = max((end - start).total_seconds() / 86400, 1 / 24)
        return {
            "total_runs": len(runs),
            "successful_runs": ok,
            "failed_runs": bad,
            "mttr": int(round(statistics.fmean([r.seconds for r in recs]))) if recs else None,
            "total_recoveries": len(recs),
            "total_credits_used": sum(insights_credits(r) for r in runs),
            "success_rate": _rate(ok, bad),
            "throughput": len(runs) / days,
            "duration_metrics": _dm(
                [d for r in runs if r.status == "success" and (d := r.duration_seconds) is not None]
            ),
        }

    # -- operations ----------------------------------------------------------------------
    def workflow_metrics(self, project: Project, scope: Scope, reporting_window: str) -> list[dict]:
        start, end = self.window(reporting_window)
        names = sorted({r.name for r in self.runs(project, None, scope, start, end)})
        return [
            {"name": n, "project_id": project.id, "window_start": iso(start), "window_end": iso(end),
             "metrics": self._workflow_metrics(project, n, scope, start, end)}
            for n in names
        ]  # fmt: skip

    def workflow_runs(
        self, project: Project, workflow: str, scope: Scope, start: datetime, end: datetime
    ) -> list[dict]:
        runs = self.runs(project, workflow, scope, start, end)
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)  # newest first
        return [
            {"id": r.id, "branch": r.pipeline.branch, "duration": r.duration_seconds, "created_at": iso(r.created_at),
             "stopped_at": iso(r.stopped_at), "credits_used": insights_credits(r), "status": r.status,
             "is_approval": r.is_approval}
            for r in runs
        ]  # fmt: skip

    def _job_runs(self, runs: list[WorkflowRun]) -> list[JobRun]:
        return [j for r in runs for j in r.executed_jobs]

    def workflow_job_metrics(self, project: Project, workflow: str, scope: Scope, reporting_window: str,
                             job_name: str | None) -> list[dict]:  # fmt: skip
        start, end = self.window(reporting_window)
        by_name: dict[str, list[JobRun]] = defaultdict(list)
        for j in self._job_runs(self.runs(project, workflow, scope, start, end)):
            if job_name is None or job_name in j.name:
                by_name[j.name].append(j)
        days = (end - start).total_seconds() / 86400
        out = []
        for name in sorted(by_name):
            jobs = by_name[name]
            ok = sum(j.status == "success" for j in jobs)
            bad = sum(j.status in ("failed", "infrastructure_fail") for j in jobs)
            out.append({
                "name": name, "window_start": iso(start), "window_end": iso(end),
                "metrics": {
                    "total_runs": len(jobs), "failed_runs": bad, "successful_runs": ok,
                    "total_credits_used": sum(j.credits_centi[0] for j in jobs) // 100,
                    "success_rate": _rate(ok, bad), "throughput": len(jobs) / days,
                    "duration_metrics": _dm([j.run_seconds for j in jobs if j.status == "success"]),
                },
            })  # fmt: skip
        return out

    def workflow_summary(self, project: Project, workflow: str, scope: Scope) -> dict:
        start, end = self.window("last-90-days")
        cur = self._workflow_metrics(project, workflow, scope, start, end)
        prev_start = start - (end - start)
        prev = self._workflow_metrics(project, workflow, scope, prev_start, start)
        completed = cur["successful_runs"] + cur["failed_runs"]
        metrics = {
            "total_runs": cur["total_runs"], "successful_runs": cur["successful_runs"], "mttr": cur["mttr"],
            "total_credits_used": cur["total_credits_used"], "failed_runs": cur["failed_runs"],
            "completed_runs": completed, "success_rate": cur["success_rate"], "throughput": cur["throughput"],
            "duration_metrics": cur["duration_metrics"], "window_start": iso(start), "window_end": iso(end),
        }  # fmt: skip
        trends = {
            k: _trend(cur[k], prev[k])
            for k in ("total_runs", "failed_runs", "success_rate", "total_credits_used", "mttr", "throughput")
        }
        trends["p95_duration_secs"] = _trend(cur["duration_metrics"]["p95"], prev["duration_metrics"]["p95"])
        trends["median_duration_secs"] = _trend(cur["duration_metrics"]["median"], prev["duration_metrics"]["median"])
        names = sorted(
            {r.name for r in self.runs(project, None, Scope(None, True), start, end)} | set(project.workflows)
        )
        return {"metrics": metrics, "trends": trends, "workflow_names": names}

    def job_timeseries(self, project: Project, workflow: str, scope: Scope, granularity: str,
                       start: datetime, end: datetime) -> list[dict]:  # fmt: skip
        buckets: dict[tuple[str, datetime], list[JobRun]] = defaultdict(list)
        for j in self._job_runs(self.runs(project, workflow, scope, start - timedelta(days=1), end)):
            if not start <= j.started_at < end:
                continue
            t = j.started_at
            bucket = t.replace(minute=0, second=0) if granularity == "hourly" else t.replace(hour=0, minute=0, second=0)
            buckets[(j.name, bucket)].append(j)
        span = 1 / 24 if granularity == "hourly" else 1.0
        out = []
        for (name, bucket), jobs in sorted(buckets.items()):
            secs = [j.run_seconds for j in jobs if j.status == "success"]
            credits = [j.credits_centi[0] // 100 for j in jobs]
            out.append({
                "name": name, "min_started_at": iso(min(j.started_at for j in jobs)),
                "max_ended_at": iso(max(j.stopped_at for j in jobs)), "timestamp": iso(bucket),
                "metrics": {
                    "total_runs": len(jobs), "failed_runs": sum(j.status in ("failed", "infrastructure_fail") for j in jobs),
                    "successful_runs": sum(j.status == "success" for j in jobs),
                    "median_credits_used": int(statistics.median(credits)), "total_credits_used": sum(credits),
                    "throughput": len(jobs) / span,
                    "duration_metrics": {
                        "min": min(secs) if secs else None, "median": int(statistics.median(secs)) if secs else None,
                        "max": max(secs) if secs else None,
                        "p95": int(round(percentile_cont(secs, 0.95))) if secs else None,
                        "total": sum(secs) if secs else None,
                    },
                },
            })  # fmt: skip
        return out

    def branches(self, project: Project, workflow: str | None) -> list[str]:
        runs = self.runs(project, workflow, Scope(None, True), self.now - RETENTION, self.now)
        return sorted({r.pipeline.branch for r in runs})[:5000]

    def flaky_tests(self, project: Project) -> list[dict]:
        """CircleCI's flaky list: tests that passed and failed on one commit, over the
        retained runs, dropped after 14 days without a flake (all branches)."""
        return self._memoised(("flaky", project.index), lambda: self._flaky_tests(project))

    def _flaky_tests(self, project: Project) -> list[dict]:
        runs = self.runs(project, None, Scope(None, True), self.now - RETENTION, self.now)
        results: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for j in self._job_runs(runs):
            for t in j.test_results():
                if t.result != "skipped":
                    results[(j.name, t.classname, t.name, t.file)][j.workflow.pipeline.revision].append((t, j))
        out = []
        for (job_name, classname, name, file), commits in results.items():
            fails = []
            for rs in commits.values():
                outcomes = {t.result for t, _ in rs}
                if "success" in outcomes and outcomes & {"failure", "error"}:
                    fails += [(t, j) for t, j in rs if t.result in ("failure", "error")]
            if not fails:
                continue
            last_t, last_j = max(fails, key=lambda tj: tj[1].started_at)
            if last_j.started_at < self.now - timedelta(days=14):
                continue
            wf = last_j.workflow
            out.append({
                "time_wasted": int(sum(t.run_time for t, _ in fails)),
                "workflow_created_at": iso(wf.created_at), "workflow_id": wf.id, "classname": classname,
                "pipeline_number": wf.pipeline.number, "workflow_name": wf.name, "test_name": name,
                "job_name": job_name, "job_number": last_j.number, "times_flaked": len(fails),
                "source": last_t.source, "file": file,
            })  # fmt: skip
        out.sort(key=lambda d: (-d["times_flaked"], d["test_name"]))
        return out

    def test_metrics(self, project: Project, workflow: str, scope: Scope) -> dict:
        runs = self.runs(project, workflow, scope, self.now - RETENTION, self.now)
        runs.sort(key=lambda r: r.created_at, reverse=True)
        runs = runs[:10]
        per_test: dict[tuple, list] = defaultdict(list)
        test_runs = []
        total = 0
        for r in runs:
            counts = {"error": 0, "failure": 0, "skipped": 0, "success": 0, "total": 0}
            for j in r.jobs:
                if j.shared:
                    continue
                for t in j.test_results():
                    counts[t.result] = counts.get(t.result, 0) + 1
                    counts["total"] += 1
                    per_test[(j.name, t.classname, t.name, t.file, t.source)].append(t)
            total += counts["total"]
            test_runs.append({
                "pipeline_number": r.pipeline.number, "workflow_id": r.id,
                "success_rate": _rate(counts["success"], counts["failure"] + counts["error"]), "test_counts": counts,
            })  # fmt: skip
        flaky_names = {(d["job_name"], d["classname"], d["test_name"]) for d in self.flaky_tests(project)}

        def tm(key, ts):
            job_name, classname, name, file, source = key
            durations = [t.run_time for t in ts if t.result == "success"]
            return {
                "failed_runs": sum(t.result in ("failure", "error") for t in ts), "job_name": job_name,
                "p95_duration": percentile_cont(durations, 0.95) if durations else None, "test_name": name, "file": file,
                "source": source, "classname": classname, "total_runs": len(ts),
                "flaky": (job_name, classname, name) in flaky_names,
            }  # fmt: skip

        metrics = [tm(k, v) for k, v in per_test.items()]
        failed = sorted((m for m in metrics if m["failed_runs"]), key=lambda m: (-m["failed_runs"], m["test_name"]))
        slow = sorted(metrics, key=lambda m: (-(m["p95_duration"] or 0), m["test_name"]))
        return {
            "average_test_count": total // len(runs) if runs else 0,
            "most_failed_tests": failed[:10], "most_failed_tests_extra": max(0, len(failed) - 10),
            "slowest_tests": slow[:10], "slowest_tests_extra": max(0, len(slow) - 10),
            "total_test_runs": total, "test_runs": test_runs,
        }  # fmt: skip

    def _summary_block(self, runs: list[WorkflowRun], days: float) -> dict:
        ok = sum(r.status == "success" for r in runs)
        bad = sum(r.status in FAILED_STATUSES for r in runs)
        return {
            "total_runs": len(runs),
            "total_duration_secs": sum(r.duration_seconds or 0 for r in runs),
            "total_credits_used": sum(insights_credits(r) for r in runs),
            "success_rate": _rate(ok, bad),
            "throughput": len(runs) / days,
        }

    def _trends(self, cur: dict, prev: dict, keys) -> dict:
        return {k: _trend(cur[k], prev[k]) for k in keys}

    def org_summary(self, projects: list[Project], reporting_window: str) -> dict:
        start, end = self.window(reporting_window)
        prev_start = start - (end - start)
        days = (end - start).total_seconds() / 86400
        every = Scope(None, True)
        org_cur, org_prev, rows = [], [], []
        for p in projects:
            cur_runs = self.runs(p, None, every, start, end)
            prev_runs = self.runs(p, None, every, prev_start, start)
            org_cur += cur_runs
            org_prev += prev_runs
            cur, prev = self._summary_block(cur_runs, days), self._summary_block(prev_runs, days)
            keys = ("total_runs", "total_duration_secs", "total_credits_used", "success_rate")
            rows.append({
                "project_name": p.name,
                "metrics": {k: cur[k] for k in keys},
                "trends": self._trends(cur, prev, keys),
            })  # fmt: skip
        cur, prev = self._summary_block(org_cur, days), self._summary_block(org_prev, days)
        return {
            "org_data": {"metrics": cur, "trends": self._trends(cur, prev, cur.keys())},
            "org_project_data": rows,
            "all_projects": [p.name for p in projects],
        }

    def project_summary(
        self, project: Project, reporting_window: str, branches: list[str], workflows: list[str]
    ) -> dict:
        start, end = self.window(reporting_window)
        prev_start = start - (end - start)
        days = (end - start).total_seconds() / 86400
        every = Scope(None, True)

        def keep(r: WorkflowRun) -> bool:
            return (not branches or r.pipeline.branch in branches) and (not workflows or r.name in workflows)

        all_runs = self.runs(project, None, every, start, end)
        cur_runs = [r for r in all_runs if keep(r)]
        prev_runs = [r for r in self.runs(project, None, every, prev_start, start) if keep(r)]
        cur, prev = self._summary_block(cur_runs, days), self._summary_block(prev_runs, days)

        def wf_block(cur_rs, prev_rs):
            def block(rs):
                ok = sum(r.status == "success" for r in rs)
                bad = sum(r.status in FAILED_STATUSES for r in rs)
                ds = [r.duration_seconds for r in rs if r.status == "success"]
                return {"total_runs": len(rs), "total_credits_used": sum(insights_credits(r) for r in rs),
                        "success_rate": _rate(ok, bad), "p95_duration_secs": percentile_cont(ds, 0.95) if ds else 0.0}  # fmt: skip

            c, p = block(cur_rs), block(prev_rs)
            return {"metrics": c, "trends": self._trends(c, p, c.keys())}

        by_wf, by_wf_prev = defaultdict(list), defaultdict(list)
        by_wfb, by_wfb_prev = defaultdict(list), defaultdict(list)
        for r in cur_runs:
            by_wf[r.name].append(r)
            by_wfb[(r.name, r.pipeline.branch)].append(r)
        for r in prev_runs:
            by_wf_prev[r.name].append(r)
            by_wfb_prev[(r.name, r.pipeline.branch)].append(r)
        return {
            "org_id": self.history.catalog.org_of(project).id,
            "project_id": project.id,
            "project_data": {"metrics": cur, "trends": self._trends(cur, prev, cur.keys())},
            "project_workflow_data": [{"workflow_name": n, **wf_block(by_wf[n], by_wf_prev[n])} for n in sorted(by_wf)],
            "project_workflow_branch_data": [
                {"workflow_name": n, "branch": b, **wf_block(v, by_wfb_prev[(n, b)])}
                for (n, b), v in sorted(by_wfb.items())
            ],
            "all_branches": sorted({r.pipeline.branch for r in all_runs}),
            "all_workflows": sorted({r.name for r in all_runs}),
        }
