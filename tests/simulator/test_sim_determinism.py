"""Determinism: the same (seed, preset, now) gives byte-identical answers and identical truth;
another seed or another `now` gives different ones; behaviour knobs never change the truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sim_helpers import NOW, SyncASGIClient, quote_segment, tiny_config

from circleci_analytics.simulator import Simulator, create_app
from circleci_analytics.simulator.history import History


def _responses(sim: Simulator) -> dict[str, bytes]:
    """Raw bytes of a fixed set of calls, including a usage-export part (gzip bytes)."""
    out: dict[str, bytes] = {}
    p0, p1 = sim.projects[0], sim.projects[1]
    wf = quote_segment(p0.workflows[0])
    urls = [  # keyed by position below: slugs differ between seeds
        "/me",
        f"/insights/{sim.org.slug}/summary",
        f"/project/{p0.slug}/pipeline",
        f"/insights/{p0.slug}/workflows?all-branches=true",
        f"/insights/{p0.slug}/workflows/{wf}?all-branches=true",
        f"/insights/{p0.slug}/workflows/{wf}/jobs",
        f"/insights/{p0.slug}/workflows/{wf}/summary",
        f"/insights/{p0.slug}/workflows/{wf}/test-metrics",
        f"/insights/time-series/{p0.slug}/workflows/{wf}/jobs",
        f"/insights/{p1.slug}/flaky-tests",
        f"/insights/pages/{p1.slug}/summary",
        f"/insights/{p1.slug}/branches",
    ]
    with SyncASGIClient(create_app(sim), headers={"Circle-Token": sim.token}) as c:
        for i, url in enumerate(urls):
            r = c.get(url)
            assert r.status_code == 200, (url, r.text)
            out[f"{i}:{url.split('?')[0].rsplit('/', 1)[-1]}"] = r.content
        # Follow the first page token too: tokens themselves must be reproducible.
        first = c.get(f"/project/{p0.slug}/pipeline").json()
        second = c.get(f"/project/{p0.slug}/pipeline", params={"page-token": first["next_page_token"]})
        out["pipeline page 2"] = second.content
        pipeline_id = first["items"][3]["id"]
        out["workflows"] = c.get(f"/pipeline/{pipeline_id}/workflow").content
        wf_id = c.get(f"/pipeline/{pipeline_id}/workflow").json()["items"][0]["id"]
        out["jobs"] = c.get(f"/workflow/{wf_id}/job").content
        job_number = next(j["job_number"] for j in c.get(f"/workflow/{wf_id}/job").json()["items"] if "job_number" in j)
        out["job"] = c.get(f"/project/{p0.slug}/job/{job_number}").content
        tested = next(j for _, j in sim.truth(projects=[p0], first_day=20).jobs() if j.has_tests)
        out["tests"] = c.get(f"/project/{p0.slug}/{tested.number}/tests").content
        assert b'"result"' in out["tests"]
        created = c.post(f"/organizations/{sim.org.id}/usage_export_job",
                         json={"start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(hours=1)).isoformat()})  # fmt: skip
        out["export created"] = created.content
        job = created.json()["usage_export_job_id"]
        sim.backend.advance_clock(60)
        urls = c.get(f"/organizations/{sim.org.id}/usage_export_job/{job}").json()["download_urls"]
        out["export part 0"] = c.get(urls[0]).content
    return out


@pytest.fixture(scope="module")
def first_run() -> tuple[Simulator, dict[str, bytes]]:
    sim = Simulator(tiny_config())
    return sim, _responses(sim)


def test_same_seed_preset_now_gives_byte_identical_responses(first_run):
    _, a = first_run
    b = _responses(Simulator(tiny_config()))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], f"{key} differs between two identical simulators"
    assert len(a["export part 0"]) > 100


def test_same_seed_gives_identical_truth_tables(first_run):
    sim, _ = first_run
    other = Simulator(tiny_config())
    t1, t2 = sim.truth(), other.truth()
    for name in ("job_runs", "test_runs", "workflow_runs"):
        a, b = getattr(t1, name)(), getattr(t2, name)()
        assert a.num_rows > 0
        assert a.equals(b), name
    assert t1.recoveries() == t2.recoveries()
    assert t1.flaky_tests() == t2.flaky_tests()
    assert t1.credits_daily() == t2.credits_daily()


@pytest.mark.parametrize(
    ("change", "may_match"),
    [
        ({"seed": 8}, {"0:me", "11:branches"}),
        # Same seed, a day later: earlier days are unchanged (keyed by calendar date), but every
        # window moves; the 14-day flaky list may legitimately come out the same.
        ({"now": NOW + timedelta(days=1)}, {"0:me", "11:branches", "tests", "export created", "9:flaky-tests"}),
    ],
)
def test_another_seed_or_now_gives_different_data(first_run, change, may_match):
    sim, a = first_run
    other = Simulator(tiny_config(**change))
    b = _responses(other)
    same = {k for k in a if a[k] == b[k]}
    assert same <= may_match, f"unexpectedly identical: {sorted(same - may_match)}"
    assert not sim.truth().job_runs().equals(other.truth().job_runs())


def test_behaviour_knobs_do_not_change_the_truth(first_run):
    sim, _ = first_run
    knobs = tiny_config(page_size=3, tests_page_size=2, flaky_keys="kebab", export_flag_style="YN",
                        export_shuffle_columns=True, export_extra_column=True, time_scale=3600.0)  # fmt: skip
    other = Simulator(knobs)
    assert sim.truth().job_runs().equals(other.truth().job_runs())
    assert sim.truth().workflow_runs().equals(other.truth().workflow_runs())


def test_history_does_not_depend_on_generation_order_or_cache(first_run):
    """Days are generated lazily from per-day seeds: any order, any cache size, same data."""
    sim, _ = first_run
    cold = History(tiny_config(), cache_days=1)
    project = sim.projects[0]
    for day in (20, 3, 27, 0, 20):  # out of order, with evictions in between
        a = [(p.id, p.number, [(w.id, w.status, [(j.id, j.number, j.credits_centi) for j in w.jobs])
                               for w in p.workflows]) for p in sim.history.pipelines(project, day)]  # fmt: skip
        b = [(p.id, p.number, [(w.id, w.status, [(j.id, j.number, j.credits_centi) for j in w.jobs])
                               for w in p.workflows]) for p in cold.pipelines(project, day)]  # fmt: skip
        assert a == b, day
        assert a, day


def test_moving_now_forward_keeps_every_earlier_day():
    """Days are keyed by calendar date: tomorrow's simulator agrees with today's on the overlap."""
    from circleci_analytics.simulator import SimConfig, Simulator

    today = Simulator(SimConfig(seed=7, preset="tiny", now=datetime(2026, 6, 1, 12, tzinfo=UTC)))
    tomorrow = Simulator(SimConfig(seed=7, preset="tiny", now=datetime(2026, 6, 2, 12, tzinfo=UTC)))
    assert tomorrow.history.start - today.history.start == timedelta(days=1)
    for p_today, p_tomorrow in zip(today.projects, tomorrow.projects, strict=True):
        for day in range(1, today.history.days):
            a = today.history.pipelines(p_today, day)
            b = tomorrow.history.pipelines(p_tomorrow, day - 1)
            assert [(x.id, x.number, x.created_at) for x in a] == [(x.id, x.number, x.created_at) for x in b]
            jobs_a = [(j.id, j.number, j.status, j.credits_centi) for x in a for w in x.workflows for j in w.jobs]
            jobs_b = [(j.id, j.number, j.status, j.credits_centi) for x in b for w in x.workflows for j in w.jobs]
            assert jobs_a == jobs_b
    job = next(today.history.iter_jobs(today.projects[0], 10, 10))
    assert tomorrow.history.find_job(tomorrow.projects[0], job.number).id == job.id
