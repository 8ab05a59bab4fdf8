"""Pipeline state per org, kept in the lake (``Lake.documents()``), so it follows the lake to
object storage and any worker can resume a run: every stream's watermarks (the lake layer's
``Watermarks``), where the org's history starts, and the test probes' answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from circleci_analytics.connectors import CATALOGUE
from circleci_analytics.warehouse.state import Documents, Watermarks

__all__ = ["USAGE_STREAM", "PipelineState"]

#: The usage export's watermark: the end of the last window that landed (key: the org).
USAGE_STREAM = "usage_job_runs"


@dataclass
class PipelineState:
    """Cursors between runs, per org: only what the lake cannot tell.

    Which jobs' tests have landed is read from the lake (`job_tests`), not kept here; what
    is kept is what leaves no row in the lake - the answers "no test results" - and the
    watermarks. Each watermark advances only once the data it covers has landed, and the state
    is pruned to the look-backs that use it (`prune`).
    """

    org_id: str
    #: Start of the org's history in the lake (the first usage-export window): where a stream
    #: with no cursor yet (a new project, a project whose every run failed) starts.
    history_start: datetime | None = None
    #: stream -> parent key -> cursor and last read (the usage export's: key ()).
    watermarks: Watermarks = field(default_factory=Watermarks)
    #: (project_slug, job_number) -> job start, for jobs whose tests were fetched and were none
    jobs_without_tests: dict[tuple[str, int], datetime] = field(default_factory=dict)
    #: (project_slug, job_name) -> last probed, for job names whose jobs report no tests
    names_without_tests: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"pipeline-{self.org_id}"

    @property
    def usage_exported_until(self) -> datetime | None:
        """End of the last usage-export window that landed (the next starts here minus the overlap)."""
        return self.watermarks.cursor(USAGE_STREAM, ())

    @usage_exported_until.setter
    def usage_exported_until(self, value: datetime) -> None:
        self.watermarks.advance(USAGE_STREAM, (), cursor=value)

    def prune(self, *, tests_since: datetime, names_since: datetime, watermarks_since: datetime) -> None:
        """Forget what no look-back reaches any more: answers for jobs started before
        `tests_since`, "no tests" names last probed before `names_since` (due for a new probe
        anyway), Insights watermarks older than `watermarks_since` (beyond its retention)."""
        self.jobs_without_tests = {k: v for k, v in self.jobs_without_tests.items() if v >= tests_since}
        self.names_without_tests = {k: v for k, v in self.names_without_tests.items() if v >= names_since}
        for name, stream in CATALOGUE.items():
            if stream.handler is None:
                self.watermarks.prune(name, watermarks_since)

    @classmethod
    def load(cls, store: Documents, org_id: str) -> PipelineState:
        raw = store.get(f"pipeline-{org_id}")
        if raw is None:
            return cls(org_id)
        doc = json.loads(raw)
        marks = Watermarks.from_json(doc.get("watermarks"))
        # Documents written before every stream had watermarks kept the workflow runs' cursors
        # and the usage cursor apart; before the lake recorded landed tests they kept a "seen"
        # set under "test_probe", of which only the "no tests" names carry over.
        for pair, value in doc.get("workflow_run_watermarks", {}).items():
            marks.advance("workflow_runs", tuple(pair.split("\t", 1)), cursor=_ts(value))
        if doc.get("usage_exported_until"):
            marks.advance(USAGE_STREAM, (), cursor=_ts(doc["usage_exported_until"]))
        names = doc.get("names_without_tests", doc.get("test_probe", {}).get("no_test_jobs", []))
        return cls(
            org_id=org_id,
            history_start=_ts(doc.get("history_start")),
            watermarks=marks,
            jobs_without_tests={
                (e["project_slug"], int(e["job_number"])): _ts(e["job_started_at"])
                for e in doc.get("jobs_without_tests", [])
            },  # fmt: skip
            names_without_tests={(e["project_slug"], e["job_name"]): _ts(e["last_probed_at"]) for e in names},
        )

    def save(self, store: Documents) -> None:
        doc = {
            "org_id": self.org_id,
            "history_start": _iso(self.history_start),
            "watermarks": self.watermarks.to_json(),
            "jobs_without_tests": [
                {"project_slug": p, "job_number": n, "job_started_at": _iso(v)}
                for (p, n), v in sorted(self.jobs_without_tests.items())
            ],  # fmt: skip
            "names_without_tests": [
                {"project_slug": p, "job_name": n, "last_probed_at": _iso(v)}
                for (p, n), v in sorted(self.names_without_tests.items())
            ],  # fmt: skip
        }
        store.put(self.key, json.dumps(doc, indent=1).encode())


def _ts(value: str | None) -> Any:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
