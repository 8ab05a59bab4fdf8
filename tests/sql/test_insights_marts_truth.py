"""Job performance, test performance and branch activity marts against the simulator's ground
truth (`tiny` preset): each figure recomputed from the truth's job runs, test results and
workflow runs, by the reading the mart documents (and Insights' where the figure is Insights')."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from truth_lake import TIMESERIES_DAYS

from circleci_analytics.simulator.truth import percentile_cont

FAILED_JOB = ("failed", "infrastructure_fail")


def _defaults(sim) -> dict[str, str]:
    return {p.slug: p.default_branch for p in sim.projects}


def test_job_performance_daily_equals_truth(q, tiny_sim, tiny_truth):
    now, default = tiny_sim.history.now, _defaults(tiny_sim)
    jobs = defaultdict(list)
    for j in tiny_truth.job_runs().to_pylist():
        if (
            j["vcs_branch"] == default[j["project_slug"]]
            and now - timedelta(days=TIMESERIES_DAYS) <= j["started_at"] < now
        ):
            jobs[(j["started_at"].date(), j["project_slug"], j["workflow_name"], j["job_name"])].append(j)
    got = {
        (r["day"], r["project_slug"], r["workflow_name"], r["job_name"]): r
        for r in q("select * from fct_job_performance_daily")
    }
    assert set(got) == set(jobs) and jobs
    for key, js in jobs.items():
        ok = [j["run_seconds"] for j in js if j["job_status"] == "success"]
        bad = sum(j["job_status"] in FAILED_JOB for j in js)
        g = got[key]
        assert (g["runs"], g["successful_runs"], g["failed_runs"]) == (len(js), len(ok), bad), key
        assert g["success_rate"] == (pytest.approx(len(ok) / (len(ok) + bad)) if ok or bad else None)
        if ok:  # Insights' per-bucket median (truncated) and p95 (rounded), seconds
            assert g["duration_p50_seconds"] == int(statistics.median(ok)), key
            assert g["duration_p95_seconds"] == round(percentile_cont(ok, 0.95)), key


def test_job_performance_window_equals_truth(q, tiny_sim, tiny_truth):
    """Insights' last-90-days job metrics (jobs of the default branch's runs created in the
    window) and the usage export's queue time of the same jobs."""
    default = _defaults(tiny_sim)
    jobs = defaultdict(list)
    for j in tiny_truth.job_runs().to_pylist():
        if j["vcs_branch"] == default[j["project_slug"]]:
            jobs[(j["project_slug"], j["workflow_name"], j["job_name"])].append(j)
    got = {(r["project_slug"], r["workflow_name"], r["job_name"]): r
           for r in q("select * from fct_job_performance where reporting_window = 'last-90-days'")}  # fmt: skip
    assert set(got) == set(jobs) and jobs
    for key, js in jobs.items():
        ok = [j["run_seconds"] for j in js if j["job_status"] == "success"]
        bad = sum(j["job_status"] in FAILED_JOB for j in js)
        queue = [(j["started_at"] - j["queued_at"]).total_seconds() for j in js]
        g = got[key]
        assert (g["runs"], g["successful_runs"], g["failed_runs"], g["export_job_runs"]) == (
            len(js),
            len(ok),
            bad,
            len(js),
        )
        if ok:
            assert g["duration_p50_seconds"] == round(statistics.median(ok))
            assert g["duration_p95_seconds"] == round(percentile_cont(ok, 0.95))
        assert g["queue_p50_seconds"] == pytest.approx(percentile_cont(queue, 0.5))
        assert g["queue_p95_seconds"] == pytest.approx(percentile_cont(queue, 0.95))


def test_test_performance_equals_truth(q, tiny_sim, tiny_truth):
    """Insights' test metrics: tests of the 10 most recent default-branch runs of each
    workflow; the 10 most failed (with a failure) and the 10 slowest (p95 of successes)."""
    default = _defaults(tiny_sim)
    results = defaultdict(list)
    for t in tiny_truth.test_runs().to_pylist():
        results[t["workflow_id"]].append(t)
    runs = defaultdict(list)
    for w in tiny_truth.workflow_runs().to_pylist():
        if w["branch"] == default[w["project_slug"]]:
            runs[(w["project_slug"], w["workflow_name"])].append(w)
    # a re-run's test results are those of the jobs it executed (the truth keys them by its id)
    expected = {}
    for (slug, wf), ws in runs.items():
        latest = sorted(ws, key=lambda w: w["created_at"], reverse=True)[:10]
        per_test = defaultdict(list)
        for w in latest:
            for t in results[w["id"]]:
                per_test[(t["job_name"], t["classname"], t["name"])].append(t)
        stats = {
            k: (sum(t["result"] in ("failure", "error") for t in ts), len(ts),
                percentile_cont([t["run_time"] for t in ts if t["result"] == "success"], 0.95))
            for k, ts in per_test.items()
        }  # fmt: skip
        failed = sorted((k for k, s in stats.items() if s[0]), key=lambda k: (-stats[k][0], k[2]))[:10]
        slow = sorted(stats, key=lambda k: (-(stats[k][2] or 0), k[2]))[:10]
        for k in set(failed) | set(slow):
            expected[(slug, wf, *k)] = (*stats[k], k in failed, k in slow)
    got = {
        (r["project_slug"], r["workflow_name"], r["job_name"], r["classname"], r["test_name"]):
            (r["failed_runs"], r["total_runs"], r["p95_duration_seconds"], r["is_most_failed"], r["is_slowest"])
        for r in q("select * from fct_test_performance")
    }  # fmt: skip
    assert set(got) == set(expected) and any(e[3] for e in expected.values())
    for k, e in expected.items():
        assert got[k][:2] == e[:2] and got[k][3:] == e[3:], k
        assert got[k][2] == pytest.approx(e[2]), k


def test_branch_activity_equals_truth(q, tiny_truth):
    acc = defaultdict(lambda: {"runs": 0, "ok": 0, "bad": 0, "last": None, "credits": Decimal(0), "jobs": 0})
    for w in tiny_truth.workflow_runs().to_pylist():
        a = acc[(w["project_slug"], w["branch"])]
        a["runs"] += 1
        a["ok"] += w["status"] == "success"
        a["bad"] += w["status"] in ("failed", "error")
        a["last"] = max(filter(None, (a["last"], w["stopped_at"])))
    for j in tiny_truth.job_runs().to_pylist():
        a = acc[(j["project_slug"], j["vcs_branch"])]
        a["credits"] += j["total_credits"]
        a["jobs"] += 1
    got = {(r["project_slug"], r["branch"]): r for r in q("select * from fct_branch_activity")}
    assert set(got) == set(acc) and len(acc) > len({p for p, _ in acc})
    for k, a in acc.items():
        g = got[k]
        assert (g["workflow_runs"], g["successful_runs"], g["failed_runs"]) == (a["runs"], a["ok"], a["bad"]), k
        assert (g["job_runs"], g["total_credits"], g["last_activity_at"]) == (a["jobs"], a["credits"], a["last"]), k
