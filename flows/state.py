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
    """Cursors between nightly runs, per org."""

    org_id: str
    usage_exported_until: datetime | None = None
    #: "project_slug\tworkflow_name" -> newest created_at of a landed workflow run
    workflow_run_watermarks: dict[str, datetime] = field(default_factory=dict)
    #: connectors.ProbeState.to_dict(): jobs whose tests landed, job names without tests
    test_probe: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"pipeline-{self.org_id}"

    @classmethod
    def load(cls, store: LakeStateStore, org_id: str) -> PipelineState:
        raw = store.get(f"pipeline-{org_id}")
        if raw is None:
            return cls(org_id)
        doc = json.loads(raw)
        until = doc.get("usage_exported_until")
        return cls(
            org_id=org_id,
            usage_exported_until=datetime.fromisoformat(until) if until else None,
            workflow_run_watermarks={k: datetime.fromisoformat(v) for k, v in doc.get("workflow_run_watermarks", {}).items()},
            test_probe=doc.get("test_probe", {}),
        )

    def save(self, store: LakeStateStore) -> None:
        doc = {
            "org_id": self.org_id,
            "usage_exported_until": self.usage_exported_until.isoformat() if self.usage_exported_until else None,
            "workflow_run_watermarks": {k: v.isoformat() for k, v in sorted(self.workflow_run_watermarks.items())},
            "test_probe": self.test_probe,
        }
        store.put(self.key, json.dumps(doc, indent=1).encode())
