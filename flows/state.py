"""Pipeline state kept in the lake itself (`_state/`), so it follows the lake to object
storage and any worker can resume a run: usage-export jobs, watermarks, test probes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

from circleci_analytics.warehouse import Lake

__all__ = ["LakeStateStore", "PipelineState"]


class LakeStateStore:
    """Small JSON documents under `<lake>/_state/`; implements the connectors' StateStore."""

    def __init__(self, lake: Lake, prefix: str = "_state"):
        self.fs = lake.fs
        self.base = f"{lake.base}/{prefix}"
        self.is_local = lake.is_local
        self.fs.create_dir(self.base, recursive=True)

    def _path(self, key: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return f"{self.base}/{safe}.json"

    def get(self, key: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self._path(key)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:  # pyarrow raises OSError for a missing object on some filesystems
            if "not found" in str(e).lower() or "does not exist" in str(e).lower():
                return None
            raise

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.is_local:
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, path)  # atomic rename on a local disk
        else:
            with self.fs.open_output_stream(path) as f:  # object PUTs are atomic
                f.write(data)

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self._path(key)).type == pafs.FileType.File


@dataclass
class PipelineState:
    """Cursors between nightly runs, per org: only what the lake cannot tell.

    Which jobs' tests have landed is read from the lake (`job_tests`), not kept here; what
    is kept is what leaves no row in the lake - the answers "no test results" - and the
    cursors. Each cursor advances only once the data it covers has landed, and the state is
    pruned to the look-backs that use it (`prune`).
    """

    org_id: str
    #: End of the last usage-export window that landed (the next window starts here minus the overlap).
    usage_exported_until: datetime | None = None
    #: Start of the org's history in the lake (the first usage-export window): where a stream
    #: with no cursor yet (a new project, a project whose every run failed) starts.
    history_start: datetime | None = None
    #: (project_slug, workflow_name) -> newest created_at of a landed workflow run
    workflow_run_watermarks: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: (project_slug, job_number) -> job start, for jobs whose tests were fetched and were none
    jobs_without_tests: dict[tuple[str, int], datetime] = field(default_factory=dict)
    #: (project_slug, job_name) -> last probed, for job names whose jobs report no tests
    names_without_tests: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"pipeline-{self.org_id}"

    def prune(self, *, tests_since: datetime, names_since: datetime, watermarks_since: datetime) -> None:
        """Forget what no look-back reaches any more: answers for jobs started before
        `tests_since`, "no tests" names last probed before `names_since` (due for a new probe
        anyway), watermarks older than `watermarks_since` (beyond Insights' retention)."""
        self.jobs_without_tests = {k: v for k, v in self.jobs_without_tests.items() if v >= tests_since}
        self.names_without_tests = {k: v for k, v in self.names_without_tests.items() if v >= names_since}
        self.workflow_run_watermarks = {k: v for k, v in self.workflow_run_watermarks.items() if v >= watermarks_since}

    @classmethod
    def load(cls, store: LakeStateStore, org_id: str) -> PipelineState:
        raw = store.get(f"pipeline-{org_id}")
        if raw is None:
            return cls(org_id)
        doc = json.loads(raw)
        # Documents written before the lake became the record of landed tests kept a "seen"
        # set under "test_probe"; only its "no tests" names carry over.
        names = doc.get("names_without_tests", doc.get("test_probe", {}).get("no_test_jobs", []))
        return cls(
            org_id=org_id,
            usage_exported_until=_ts(doc.get("usage_exported_until")),
            history_start=_ts(doc.get("history_start")),
            workflow_run_watermarks={_pair(k): _ts(v) for k, v in doc.get("workflow_run_watermarks", {}).items()},
            jobs_without_tests={(e["project_slug"], int(e["job_number"])): _ts(e["job_started_at"])
                                for e in doc.get("jobs_without_tests", [])},  # fmt: skip
            names_without_tests={(e["project_slug"], e["job_name"]): _ts(e["last_probed_at"]) for e in names},
        )

    def save(self, store: LakeStateStore) -> None:
        doc = {
            "org_id": self.org_id,
            "usage_exported_until": _iso(self.usage_exported_until),
            "history_start": _iso(self.history_start),
            "workflow_run_watermarks": {f"{p}\t{w}": _iso(v) for (p, w), v in sorted(self.workflow_run_watermarks.items())},
            "jobs_without_tests": [{"project_slug": p, "job_number": n, "job_started_at": _iso(v)}
                                   for (p, n), v in sorted(self.jobs_without_tests.items())],  # fmt: skip
            "names_without_tests": [{"project_slug": p, "job_name": n, "last_probed_at": _iso(v)}
                                    for (p, n), v in sorted(self.names_without_tests.items())],  # fmt: skip
        }
        store.put(self.key, json.dumps(doc, indent=1).encode())


def _pair(key: str) -> tuple[str, str]:
    project, _, workflow = key.partition("\t")
    return project, workflow


def _ts(value: str | None) -> Any:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
