"""Durable export state: one small JSON document per (org, window).

A restarted run reads the document and keeps polling the same ``usage_export_job_id``
instead of creating a new job (POSTs are limited to 10 per hour per org).

The store is a tiny get/put interface over bytes, so an object store (S3, GCS, ...) can be
plugged in without fsspec; ``LocalStateStore`` writes atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from circleci_analytics.connectors.usage_export.windows import Window

__all__ = ["ExportState", "LocalStateStore", "MemoryStateStore", "PartRecord", "StateStore", "state_key"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@runtime_checkable
class StateStore(Protocol):
    """Where export state lives: ``get`` returns None for an unknown key."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...


class LocalStateStore:
    """State documents as files under ``root`` (keys map to relative paths)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = [_SAFE.sub("_", p) for p in key.split("/") if p not in ("", ".", "..")]
        return self.root.joinpath(*parts)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"


class MemoryStateStore:
    """In-memory store (tests, one-off runs)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.data[key] = bytes(data)


def state_key(org_id: str, window: Window) -> str:
    """The store key of one export window."""
    return f"usage_export/{org_id}/{window.label}.json"


@dataclass
class PartRecord:
    """A downloaded, gzip-verified part (``path`` relative to the work directory)."""

    name: str
    path: str
    bytes: int


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class ExportState:
    """The state of one export window.

    ``state`` is the API job state (``created``, ``processing``, ``completed``, ``failed``)
    or one of the extractor's own: ``new`` (nothing posted yet), ``downloaded`` (all parts
    on disk and verified), ``split`` (too large; exported as the two ``children`` windows).
    """

    org_id: str
    window_start: datetime
    window_end: datetime
    usage_export_job_id: str | None = None
    state: str = "new"
    created_at: datetime | None = None
    attempts: int = 0
    last_polled_at: datetime | None = None
    polls: int = 0
    error_reason: str | None = None
    parts: list[PartRecord] = field(default_factory=list)
    children: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = asdict(self)
        for k in ("window_start", "window_end", "created_at", "last_polled_at"):
            doc[k] = doc[k].isoformat() if doc[k] else None
        doc["children"] = [[a.isoformat(), b.isoformat()] for a, b in self.children]
        doc["version"] = 1
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ExportState:
        doc = json.loads(data)
        doc.pop("version", None)
        return cls(
            org_id=doc["org_id"],
            window_start=datetime.fromisoformat(doc["window_start"]),
            window_end=datetime.fromisoformat(doc["window_end"]),
            usage_export_job_id=doc.get("usage_export_job_id"),
            state=doc.get("state", "new"),
            created_at=_dt(doc.get("created_at")),
            attempts=int(doc.get("attempts", 0)),
            last_polled_at=_dt(doc.get("last_polled_at")),
            polls=int(doc.get("polls", 0)),
            error_reason=doc.get("error_reason"),
            parts=[PartRecord(**p) for p in doc.get("parts", [])],
            children=[(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in doc.get("children", [])],
        )


def load_state(store: StateStore, org_id: str, window: Window) -> ExportState:
    """The stored state of ``window``, or a fresh one."""
    data = store.get(state_key(org_id, window))
    if data is None:
        return ExportState(org_id, window.start, window.end)
    return ExportState.from_json(data)


def save_state(store: StateStore, state: ExportState) -> None:
    store.put(state_key(state.org_id, state.window), state.to_json())
