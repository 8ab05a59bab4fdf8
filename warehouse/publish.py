"""Publish the warehouse and the dashboard to object storage, so what one worker builds every
machine can read.

A worker builds in local files (the warehouse's copy-and-swap, the dashboard folder), then
uploads them under ``<publish_uri>/builds/<build id>/`` and, last, switches two small objects
to that build:

* ``current.json`` - the pointer: build id, the warehouse's and the dashboard's keys, when;
* ``index.html``   - a page that sends a browser to ``builds/<build id>/dashboard/index.html``.

Each is one PUT, atomic on S3, and names a build whose every file is already uploaded, so a
reader sees the previous build or the new one, never a mix. The newest `KEEP_BUILDS` builds
are kept (a reader that read the pointer just before a switch still finds its files); older
ones are deleted. Publishing happens under the lake's writer lease (it follows the build), so
two publishers never interleave.

`default_publish_uri` derives the location from an ``s3://`` lake (a sibling ``published``
prefix beside the lake's, same bucket and options); `fetch_warehouse` downloads the current
warehouse (``python -m circleci_analytics.warehouse.publish fetch <uri> <file>``).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

__all__ = ["KEEP_BUILDS", "POINTER", "PublishError", "Published", "default_publish_uri", "fetch_warehouse",
           "publish_build", "publish_location", "read_pointer"]  # fmt: skip

POINTER = "current.json"
REDIRECT = "index.html"
BUILDS = "builds"
#: Builds kept under ``builds/`` (the current one and those just before it).
KEEP_BUILDS = 3
#: The sibling prefix of the lake's that `default_publish_uri` names.
PUBLISHED = "published"
_CHUNK = 8 << 20


class PublishError(Exception):
    """Nothing is published there (or it cannot be read)."""


@dataclass(frozen=True)
class Published:
    """One published build: where its files are, relative to the publish URI."""

    build_id: str
    warehouse: str
    dashboard: str | None
    published_at: str

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=1).encode()


def default_publish_uri(lake_root: str) -> str | None:
    """``s3://bucket/a/lake?opts`` -> ``s3://bucket/a/published?opts``; None for a local lake."""
    if not lake_root.startswith("s3://"):
        return None
    parts = urlsplit(lake_root)
    parent = parts.path.rstrip("/").rsplit("/", 1)[0]
    return urlunsplit(parts._replace(path=f"{parent}/{PUBLISHED}"))


def publish_location(publish_uri: str | None, lake_root: str) -> str | None:
    """Where a run publishes: `publish_uri` if set, else `default_publish_uri` of the lake."""
    return publish_uri or default_publish_uri(lake_root)


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    if not uri.startswith("s3://"):
        raise PublishError(f"publish_uri {uri}: only s3:// locations are supported")
    fs, base = pafs.FileSystem.from_uri(uri)
    return fs, base.rstrip("/")


def _put(fs: pafs.FileSystem, path: str, data: bytes | Path) -> None:
    """One object (a multipart upload for a large file: it appears whole when complete)."""
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with fs.open_output_stream(path, metadata={"Content-Type": content_type}) as out:
        if isinstance(data, bytes):
            out.write(data)
            return
        with open(data, "rb") as f:
            while chunk := f.read(_CHUNK):
                out.write(chunk)


def _redirect_page(target: str) -> bytes:
    return (f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={target}">'
            f'<title>CircleCI analytics</title><a href="{target}">the dashboard</a>\n').encode()  # fmt: skip


def publish_build(uri: str, warehouse: str | Path, dashboard_dir: str | Path | None = None, *,
                  keep: int = KEEP_BUILDS) -> Published:  # fmt: skip
    """Upload the warehouse file (and the dashboard folder) as a new build under `uri`, then
    switch ``current.json`` and ``index.html`` to it and delete builds older than the newest
    `keep`."""
    fs, base = _open(uri)
    now = datetime.now(UTC)
    build_id = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"  # sorts by time
    prefix = f"{BUILDS}/{build_id}"
    warehouse = Path(warehouse)
    _put(fs, f"{base}/{prefix}/{warehouse.name}", warehouse)
    dashboard = None
    if dashboard_dir is not None and (Path(dashboard_dir) / REDIRECT).is_file():
        root = Path(dashboard_dir)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            _put(fs, f"{base}/{prefix}/dashboard/{path.relative_to(root).as_posix()}", path)
        dashboard = f"{prefix}/dashboard/{REDIRECT}"
    published = Published(build_id, f"{prefix}/{warehouse.name}", dashboard, now.isoformat())
    if dashboard is not None:
        _put(fs, f"{base}/{REDIRECT}", _redirect_page(dashboard))
    _put(fs, f"{base}/{POINTER}", published.to_json())
    _prune(fs, base, keep)
    return published


def _prune(fs: pafs.FileSystem, base: str, keep: int) -> None:
    builds = fs.get_file_info(pafs.FileSelector(f"{base}/{BUILDS}", allow_not_found=True))
    names = sorted(i.base_name for i in builds if i.type == pafs.FileType.Directory)
    for old in names[:-keep] if keep > 0 else []:
        fs.delete_dir(f"{base}/{BUILDS}/{old}")


def read_pointer(uri: str) -> Published:
    """The build ``current.json`` under `uri` names."""
    fs, base = _open(uri)
    try:
        with fs.open_input_stream(f"{base}/{POINTER}") as f:
            doc = json.loads(f.read())
    except (FileNotFoundError, OSError) as e:
        raise PublishError(f"nothing is published at {uri} (no {POINTER}): {e}") from None
    return Published(**doc)


def fetch_warehouse(uri: str, dest: str | Path) -> Published:
    """Download the current published warehouse to `dest` (written beside it, then renamed)."""
    fs, base = _open(uri)
    published = read_pointer(uri)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.download")
    try:
        with fs.open_input_stream(f"{base}/{published.warehouse}") as src, open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return published


def main(argv: list[str] | None = None) -> None:
    """``fetch <publish uri> <file>``: the current warehouse, for `sql` or a BI tool on any machine."""
    parser = argparse.ArgumentParser(prog="python -m circleci_analytics.warehouse.publish")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the current published warehouse")
    fetch.add_argument("uri")
    fetch.add_argument("dest")
    args = parser.parse_args(argv)
    try:
        published = fetch_warehouse(args.uri, args.dest)
    except PublishError as e:
        parser.exit(2, f"error: {e}\n")
    print(f"build {published.build_id} (published {published.published_at}) -> {args.dest}")


if __name__ == "__main__":
    main()
