"""State kept in the lake itself, so it follows the lake to object storage and any worker can
resume a run: small JSON documents (`Documents`, from ``Lake.documents()``) and the watermark
store (`Watermarks`), the one place a stream's progress is recorded.

A watermark is kept per stream and parent key (``("gh/acme/api", "build")``): the stream's
cursor (the newest cursor value landed for that key, where the next read starts) and when the
key was last read (what a stream refreshed on a cadence is due by). Callers advance a
watermark only once the data it covers has landed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

__all__ = ["Documents", "Mark", "Watermarks"]


class Documents:
    """Small documents under ``<lake>/<prefix>/`` (``<key>.json``); writes are atomic (a renamed
    temporary file on a local disk, one PUT on an object store). Implements the connectors'
    ``StateStore`` (``get``/``put``)."""

    def __init__(self, fs: pafs.FileSystem, base: str, *, atomic_rename: bool) -> None:
        self._fs, self.base, self._rename = fs, base, atomic_rename
        self._fs.create_dir(base, recursive=True)

    def path(self, key: str) -> str:
        """Where `key` is stored: one file directly under the prefix, whatever the key holds."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return f"{self.base}/{safe}.json"

    def get(self, key: str) -> bytes | None:
        try:
            with self._fs.open_input_stream(self.path(key)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:  # pyarrow raises OSError for a missing object on some filesystems
            if "not found" in str(e).lower() or "does not exist" in str(e).lower():
                return None
            raise

    def put(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if not self._rename:  # object PUTs are atomic
            with self._fs.open_output_stream(path) as f:
                f.write(data)
            return
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with self._fs.open_output_stream(tmp) as f:
            f.write(data)
        self._fs.move(tmp, path)

    def exists(self, key: str) -> bool:
        return self._fs.get_file_info(self.path(key)).type == pafs.FileType.File


@dataclass
class Mark:
    """One stream's progress for one parent key."""

    cursor: datetime | None = None  # newest cursor value landed
    read_at: datetime | None = None  # when the key was last read (and landed)


@dataclass
class Watermarks:
    """stream -> parent key -> `Mark`; JSON-able with `to_json` / `from_json` (a key is written as
    the JSON list of its values)."""

    marks: dict[str, dict[tuple[str, ...], Mark]] = field(default_factory=dict)

    def get(self, stream: str, key: tuple[str, ...]) -> Mark:
        return self.marks.get(stream, {}).get(key) or Mark()

    def cursor(self, stream: str, key: tuple[str, ...]) -> datetime | None:
        return self.get(stream, key).cursor

    def read_at(self, stream: str, key: tuple[str, ...]) -> datetime | None:
        return self.get(stream, key).read_at

    def advance(self, stream: str, key: tuple[str, ...], *, cursor: datetime | None = None,
                read_at: datetime | None = None) -> None:  # fmt: skip
        """Record that data up to `cursor`, read at `read_at`, has landed (``None`` keeps the old value)."""
        mark = self.marks.setdefault(stream, {}).setdefault(key, Mark())
        if cursor is not None:
            mark.cursor = cursor
        if read_at is not None:
            mark.read_at = read_at

    def update(self, other: Watermarks) -> None:
        """Take every mark `other` holds (a project's marks once its data has landed)."""
        for stream, keys in other.marks.items():
            for key, mark in keys.items():
                self.advance(stream, key, cursor=mark.cursor, read_at=mark.read_at)

    def keys(self, stream: str) -> Iterator[tuple[str, ...]]:
        return iter(self.marks.get(stream, {}))

    def prune(self, stream: str, older_than: datetime) -> None:
        """Forget the marks of `stream` whose cursor and read time are both older than `older_than`
        (beyond what the API still answers: such a key starts over as new)."""
        keys = self.marks.get(stream, {})
        for key in [k for k, m in keys.items() if _newest(m) is None or _newest(m) < older_than]:  # type: ignore[operator]
            del keys[key]

    def to_json(self) -> dict[str, Any]:
        return {
            stream: {json.dumps(list(key)): {k: v.isoformat() for k, v in (("cursor", m.cursor), ("read_at", m.read_at)) if v}
                     for key, m in sorted(keys.items())}
            for stream, keys in sorted(self.marks.items()) if keys
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Watermarks:
        marks: dict[str, dict[tuple[str, ...], Mark]] = {}
        for stream, keys in (doc or {}).items():
            marks[stream] = {
                tuple(json.loads(key)): Mark(_ts(m.get("cursor")), _ts(m.get("read_at"))) for key, m in keys.items()
            }
        return cls(marks)


def _newest(mark: Mark) -> datetime | None:
    return max((t for t in (mark.cursor, mark.read_at) if t is not None), default=None)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
