"""The Parquet lake: typed, hive-partitioned, idempotent, atomically written.

Layout: ``<root>/<table>/<key>=<value>/.../data.parquet``, one file per partition, rows
sorted by the table's natural key (so landing the same data twice writes identical files).
The root is a local path (default ``./data/lake``) or any URI ``pyarrow.fs`` understands
(``s3://bucket/prefix?endpoint_override=...``).

Landing (`Lake.land`) is a merge per touched partition:

1. the incoming table is conformed to the registered schema (`warehouse.tables`) and
   de-duplicated on the natural key (last row wins);
2. for each partition touched by the new rows - and, with ``window=(start, end)``, every
   existing partition whose date lies in the window - the old rows are read, rows inside
   the window are dropped (the window is replaced whole: rows that vanished upstream
   vanish here), rows whose key re-appears are replaced, and the partition is rewritten;
3. each partition file is written to a temporary name and renamed over the old one
   (atomic on local disks; on object stores a single PUT is atomic), so a reader or a
   crash never sees a half-written file. Re-landing a window after a crash repairs it.

`Lake.land_file` lands a Parquet file too big to hold in memory with the same result, byte
for byte: it reads the file in batches (conforming and checking each, so bad input fails
before anything is written), spills each batch's rows to per-partition scratch files beside
the input, then merges one partition at a time. Peak memory is bounded by a batch and a few
partitions, not by the window.

Writers hold the lake's lease (`warehouse.lease`): one writer at a time per lake, even
across hosts sharing an object store. `Lake.lease` holds it for a whole run; `land` and
`land_file` take it for the call when the process does not hold it already. Taking it
removes the temporary files a crashed writer left behind.

An organisation's lease (`Lake.org_leases`) is narrower: it makes its holder the only run
extracting that org, the only writer of the org's pipeline state (``_state/``: cursors,
usage-export jobs). Every table but ``usage_job_runs`` has partitions that several orgs
share, so landing still takes the lake's lease, for the call only. Runs of different orgs
thus extract in parallel and land one at a time; a run of every org (``nightly``) takes the
org leases first, then the lake's (always in that order, so two runs never wait on each
other in a circle).

Partition values are only dates and the organisation id, encoded so that nothing (``/``,
``..``, quotes, unicode) can escape the root: see `encode_partition_value`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from circleci_analytics.warehouse.lease import (
    DEFAULT_TTL_SECONDS,
    DEFAULT_WAIT_SECONDS,
    LEASE_NAME,
    Lease,
    LeaseError,
    LeaseStore,
    LocalLeaseStore,
    S3LeaseStore,
    hold,
)
from circleci_analytics.warehouse.state import Documents
from circleci_analytics.warehouse.tables import TableSpec, table_spec

__all__ = ["DEFAULT_LAKE_ROOT", "Lake", "LakeError", "LandResult", "conform", "encode_partition_value"]

logger = logging.getLogger("circleci_analytics.warehouse")

DEFAULT_LAKE_ROOT = "./data/lake"
DATA_FILE = "data.parquet"
_SAFE = re.compile(r"^[A-Za-z0-9_\-]+$")
_MAX_DAY = dtime(23, 59, 59, 999999)
#: Partitions merged and written at once by `Lake.land`.
_LAND_THREADS = 4
#: Rows per Parquet row group (DuckDB's own row-group size: readers split work by it).
ROW_GROUP_ROWS = 122_880
#: Rows `Lake.land_file` reads at a time (the first pass's memory follows it: ~64k rows of
#: the usage export are ~100 MiB decoded).
_SPILL_BATCH_ROWS = 65_536
#: A partition file being written (renamed over ``data.parquet`` when complete).
_TEMP_FILE = re.compile(rf"^\.{re.escape(DATA_FILE)}\.[0-9a-f]{{32}}\.tmp$")
_ROW = "__row"


class LakeError(Exception):
    """Data that cannot land as given (unknown columns, nulls in required columns, ...)."""


#: In-process locks per (lake, table): threads of one lease holder land a table one at a time.
_table_locks: dict[tuple[str, str], threading.Lock] = {}
_table_locks_guard = threading.Lock()


@dataclass
class LandResult:
    """What one `Lake.land` call did."""

    table: str
    rows_in: int
    partitions_written: list[str] = field(default_factory=list)
    partitions_deleted: list[str] = field(default_factory=list)
    rows_written: int = 0
    seconds: float = 0.0


def encode_partition_value(value: Any) -> str:
    """A partition value as a safe single path segment.

    Dates become ``YYYY-MM-DD``; other values are percent-encoded (every byte outside
    ``[A-Za-z0-9_-]``, so ``/``, ``.`` and ``%`` too). The result never contains a path
    separator and is never ``.`` or ``..``; `decode_partition_value` reverses it.
    """
    if value is None:
        return "__null__"
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    text = str(value)
    if _SAFE.match(text) and not text.startswith("__"):
        return text
    if text == "":
        return "__empty__"
    return quote(text, safe="").replace(".", "%2E").replace("_", "%5F")


def decode_partition_value(segment: str) -> str | None:
    if segment == "__null__":
        return None
    return "" if segment == "__empty__" else unquote(segment)


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "table") and isinstance(data.table, pa.Table):  # connectors.Extract
        return data.table
    if isinstance(data, pl.DataFrame):
        return data.to_arrow()
    raise TypeError(f"cannot land {type(data).__name__}; pass a pyarrow Table or a connectors Extract")


def conform(data: Any, spec: TableSpec) -> pa.Table:
    """Cast `data` to the table's schema: columns in schema order, missing nullable columns
    as nulls, ``snapshot_date`` derived from ``extracted_at`` for snapshot tables.
    Unknown columns and nulls in required columns raise `LakeError`."""
    table = _as_table(data)
    names = set(table.column_names)
    unknown = sorted(names - set(spec.schema.names))
    if unknown:
        raise LakeError(f"lake table {spec.name!r}: unknown columns {unknown}; schema is warehouse.tables.TABLES")
    n = table.num_rows
    arrays = []
    for fld in spec.schema:
        if fld.name in names:
            col = table.column(fld.name)
            try:
                col = col.cast(fld.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LakeError(
                    f"lake table {spec.name!r}: column {fld.name!r} does not cast to {fld.type}: {exc}"
                ) from exc
        elif fld.name == "snapshot_date" and spec.mode == "snapshot" and "extracted_at" in names:
            col = (
                pl.DataFrame(table.select(["extracted_at"]))
                .select(pl.col("extracted_at").dt.date())
                .to_arrow()
                .column(0)
                .cast(pa.date32())
            )
        elif fld.nullable:
            col = pa.nulls(n, fld.type)
        else:
            raise LakeError(f"lake table {spec.name!r}: required column {fld.name!r} is missing")
        if not fld.nullable and col.null_count:
            raise LakeError(f"lake table {spec.name!r}: required column {fld.name!r} has {col.null_count} null values")
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _window_bounds(window: tuple[Any, Any]) -> tuple[datetime, datetime]:
    start, end = window

    def ts(v: Any, upper: bool) -> datetime:
        if isinstance(v, datetime):
            return v if v.tzinfo else v.replace(tzinfo=UTC)
        if isinstance(v, date):
            return datetime.combine(v, _MAX_DAY if upper else dtime.min, tzinfo=UTC)
        raise TypeError(f"window bounds must be dates or datetimes, got {type(v).__name__}")

    lo, hi = ts(start, False), ts(end, True)
    if hi < lo:
        raise ValueError(f"window end {hi} is before its start {lo}")
    return lo.astimezone(UTC), hi.astimezone(UTC)


class Lake:
    """A Parquet lake rooted at a local path or an object-store URI.

    >>> lake = Lake("./data/lake")
    >>> lake.land("usage_job_runs", table, window=(start, end))  # doctest: +SKIP
    """

    def __init__(self, root: str | Path = DEFAULT_LAKE_ROOT, *, filesystem: pafs.FileSystem | None = None):
        root_s = str(root)
        if filesystem is not None:
            self.fs, self.base = filesystem, root_s.rstrip("/")
        elif "://" in root_s and not root_s.startswith("file://"):
            self.fs, self.base = pafs.FileSystem.from_uri(root_s)
            self.base = self.base.rstrip("/")
        else:
            local = Path(root_s.removeprefix("file://")).expanduser().resolve()
            self.fs, self.base = pafs.LocalFileSystem(), local.as_posix()
        self.root = root_s
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        self._stores: dict[str, LeaseStore] = {}
        if self.is_local:
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"Lake({self.base!r}, fs={self.fs.type_name})"

    # -- paths -------------------------------------------------------------------------
    def table_path(self, name: str) -> str:
        return f"{self.base}/{table_spec(name).name}"

    def _partition_dir(self, name: str, rel: str) -> str:
        path = f"{self.table_path(name)}/{rel}" if rel else self.table_path(name)
        # Defence in depth: encoded segments cannot escape, and we check anyway.
        if any(seg in ("", ".", "..") for seg in path[len(self.base) + 1 :].split("/")):
            raise LakeError(f"partition path {rel!r} would escape the lake root")
        return path

    def files(self, name: str) -> list[str]:
        """Data files of table `name` (sorted; temporary files excluded)."""
        sel = pafs.FileSelector(self.table_path(name), recursive=True, allow_not_found=True)
        infos = self.fs.get_file_info(sel)
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name == DATA_FILE)

    def partitions(self, name: str) -> list[str]:
        """Relative partition paths (``date=2026-05-04``) that hold data."""
        prefix = self.table_path(name) + "/"
        out = []
        for f in self.files(name):
            rel = f[len(prefix) :] if f.startswith(prefix) else f
            out.append(rel[: -len(DATA_FILE)].rstrip("/"))
        return out

    def dataset(self, name: str) -> ds.Dataset:
        """A pyarrow dataset over the table (empty when nothing has landed)."""
        spec = table_spec(name)
        files = self.files(name)
        if not files:
            return ds.dataset(spec.schema.empty_table())
        return ds.dataset(files, schema=spec.schema, filesystem=self.fs, format="parquet")

    def read(self, name: str) -> pa.Table:
        """The whole table, sorted by partition then natural key."""
        return self.dataset(name).to_table()

    def documents(self, prefix: str = "_state") -> Documents:
        """Small JSON documents kept in the lake beside the tables (run state: watermarks,
        usage-export jobs), see `warehouse.state`."""
        return Documents(self.fs, f"{self.base}/{prefix}", atomic_rename=self.is_local)

    # -- the writer lease --------------------------------------------------------------
    def _lease_store(self, name: str = LEASE_NAME) -> LeaseStore:
        """The lease record `name` at the lake root (the lake's own by default)."""
        if name not in self._stores:
            if self.is_local:
                self._stores[name] = LocalLeaseStore(self.base, name)
            elif self.root.startswith("s3://"):
                self._stores[name] = S3LeaseStore(self.root, name)
            else:
                raise LeaseError(f"lake {self.root}: a writer lease needs a local path or an s3:// URI")
        return self._stores[name]

    @contextlib.contextmanager
    def lease(
        self, owner: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> Iterator[Lease]:
        """Hold the lake's writer lease for the block (re-entrant; see `warehouse.lease`).

        `owner` names the run to whoever waits (``"nightly <flow run id>"``). Another holder
        is waited for up to `wait_seconds`, then `LakeBusy` names it. Taking the lease removes
        a crashed writer's temporary files (counted in ``Lease.removed_temp_files``).

        >>> with lake.lease(owner="backfill 2026-01..2026-03"):  # doctest: +SKIP
        ...     lake.land("usage_job_runs", table, window=(start, end))
        """
        with hold(self._lease_store(), owner, wait_seconds=wait_seconds, ttl_seconds=ttl_seconds,
                  where=self.root, on_acquire=self._clean_after_crash) as held:  # fmt: skip
            yield held

    @contextlib.contextmanager
    def org_leases(
        self, org_ids: Iterable[str], owner: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> Iterator[list[Lease]]:  # fmt: skip
        """Hold the lease of each organisation of `org_ids` for the block (see the module doc),
        taken in id order so that two runs of overlapping orgs never each wait for the other.
        A run that holds the lake's lease too takes these first. Re-entrant like `lease`.

        >>> with lake.org_leases([org_id], owner="nightly-org <flow run id>"):  # doctest: +SKIP
        ...     ...  # extract the org, save its state; each land takes the lake's lease
        """
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(hold(self._lease_store(org_lease_name(org_id)), owner, wait_seconds=wait_seconds,
                                            ttl_seconds=ttl_seconds, where=f"{self.root} (org {org_id})"))
                   for org_id in sorted(set(org_ids))]  # fmt: skip

    @contextlib.contextmanager
    def run_leases(
        self, org_ids: Iterable[str], owner: str, *, wait_seconds: float = DEFAULT_WAIT_SECONDS
    ) -> Iterator[Lease]:
        """Hold every org's lease of `org_ids`, then the lake's (the order every writer takes
        them in), for a run that extracts those orgs and builds; yields the lake's lease."""
        with (
            self.org_leases(org_ids, owner, wait_seconds=wait_seconds),
            self.lease(owner, wait_seconds=wait_seconds) as held,
        ):
            yield held

    def _clean_after_crash(self, lease: Lease) -> None:
        try:
            lease.removed_temp_files = self.remove_stale_temp_files()
        except Exception as e:  # housekeeping (e.g. no permission to list uploads) never blocks a write
            logger.warning("could not look for a crashed writer's temporary files in lake %s: %s", self.root, e)
        if lease.removed_temp_files:
            logger.warning("removed %d temporary file(s) a crashed writer left in lake %s",
                           lease.removed_temp_files, self.root)  # fmt: skip

    def remove_stale_temp_files(self) -> int:
        """Remove what an interrupted writer left: temporary partition files (local lakes)
        and unfinished multipart uploads of partition files (S3). Returns how many.

        Only safe while holding the lease (no other writer can be mid-write): `lease` calls
        it when it takes the lease, so a run need not.
        """
        if self.is_local:
            removed = 0
            for tmp in Path(self.base).glob(f"*/**/.{DATA_FILE}.*.tmp"):
                if _TEMP_FILE.match(tmp.name) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    removed += 1
            return removed
        store = self._lease_store()
        if not isinstance(store, S3LeaseStore):
            return 0
        removed = 0
        pages = store.client.get_paginator("list_multipart_uploads").paginate(Bucket=store.bucket, Prefix=store.prefix)
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Key"].endswith(f"/{DATA_FILE}"):
                    key, upload_id = upload["Key"], upload["UploadId"]
                    store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
                    removed += 1
        return removed

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[Lease]:
        """The lease (taken for this call unless held) and this table's in-process lock."""
        with self.lease(f"Lake.land({name!r})") as held:
            with _table_locks_guard:
                lock = _table_locks.setdefault((self._lease_store().key, name), threading.Lock())
            with lock:
                held.check()
                yield held

    # -- landing -----------------------------------------------------------------------
    def land(
        self,
        name: str,
        data: Any,
        *,
        window: tuple[Any, Any] | None = None,
        scope: Mapping[str, str] | None = None,
    ) -> LandResult:
        """Merge `data` (Arrow table or connectors ``Extract``) into lake table `name`.

        `window` = (start, end), both inclusive (dates mean whole days): existing rows of the
        table whose partition-date column lies in it are replaced whole by `data`.
        `scope` restricts that replacement to partitions with these non-date partition
        values (e.g. ``{"org_id": ...}``); by default it is the single value of each such
        key present in `data`. Landing the same data twice leaves the lake unchanged.
        """
        t0 = time.perf_counter()
        spec = table_spec(name)
        table = conform(data, spec)
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        keys = list(spec.natural_key)
        if keys and df.height and df.select(pl.struct(keys).is_duplicated().any()).item():
            df = df.unique(subset=keys, keep="last", maintain_order=True)
        parts = _split_partitions(spec, df) if df.height else {}
        incoming = {rel: (lambda part=part: part) for rel, part in parts.items()}
        return self._merge(spec, df.height, incoming, window, scope, t0)

    def land_file(
        self,
        name: str,
        path: str | Path,
        *,
        window: tuple[Any, Any] | None = None,
        scope: Mapping[str, str] | None = None,
        batch_rows: int = _SPILL_BATCH_ROWS,
    ) -> LandResult:
        """`land` the rows of a local Parquet file, partition by partition.

        The same lake as ``land(name, pq.read_table(path), ...)``, byte for byte, with peak
        memory bounded by `batch_rows` rows and a few partitions instead of the file. Scratch
        files (a compressed copy of the rows, split by partition) go beside `path`.
        """
        t0 = time.perf_counter()
        spec = table_spec(name)
        path = Path(path)
        with tempfile.TemporaryDirectory(prefix=".land-", dir=path.parent) as scratch:
            spill = _spill_partitions(spec, path, Path(scratch), batch_rows)
            return self._merge(spec, spill.rows, spill.loaders(), window, scope, t0)

    def _merge(
        self,
        spec: TableSpec,
        rows_in: int,
        incoming: Mapping[str, Callable[[], pl.DataFrame]],
        window: tuple[Any, Any] | None,
        scope: Mapping[str, str] | None,
        t0: float,
    ) -> LandResult:
        """Merge each touched partition (see the module doc) under the writer lease."""
        result = LandResult(spec.name, rows_in)
        keys = list(spec.natural_key)
        bounds = _window_bounds(window) if window is not None else None
        with self._writing(spec.name) as held:
            listed = self.partitions(spec.name) if (incoming or bounds is not None) else []
            existing = set(listed)
            touched = set(incoming)
            if bounds is not None:
                touched |= set(self._partitions_in_window(spec, bounds, self._scope(spec, incoming, scope), listed))

            def merge(rel: str) -> tuple[str, str, int]:
                new = incoming[rel]() if rel in incoming else None
                if rel not in existing:
                    old = None
                elif bounds is not None and _covers_partition(spec, rel, bounds):
                    old = None  # every old row lies in the window: replaced whole, not read
                else:
                    old = self._read_partition(spec, rel)
                    if old is not None and bounds is not None:
                        old = old.filter(~_in_window(spec, bounds))
                merged: pl.DataFrame | None
                if old is not None and old.height:
                    merged = pl.concat([old, new], how="vertical_relaxed") if new is not None else old
                    merged = merged.unique(subset=keys, keep="last", maintain_order=True) if keys else merged
                else:
                    merged = new
                held.check()
                if merged is None or merged.height == 0:
                    if rel in existing:
                        self.fs.delete_file(f"{self._partition_dir(spec.name, rel)}/{DATA_FILE}")
                        return rel, "deleted", 0
                    return rel, "none", 0
                self._write_partition(spec, rel, merged)
                return rel, "written", merged.height

            # Partitions are independent files: merge and write them on a few threads (Parquet
            # encoding, compression and polars release the GIL). Results keep path order.
            ordered = sorted(touched)
            if len(ordered) > 1:
                with ThreadPoolExecutor(max_workers=min(_LAND_THREADS, len(ordered))) as pool:
                    outcomes = list(pool.map(merge, ordered))
            else:
                outcomes = [merge(rel) for rel in ordered]
        for rel, what, rows in outcomes:
            if what == "written":
                result.partitions_written.append(rel)
                result.rows_written += rows
            elif what == "deleted":
                result.partitions_deleted.append(rel)
        result.seconds = time.perf_counter() - t0
        return result

    def _scope(self, spec: TableSpec, incoming: Iterable[str], scope: Mapping[str, str] | None) -> dict[str, str]:
        if scope is not None:
            return {k: encode_partition_value(v) for k, v in scope.items()}
        segments = [dict(s.split("=", 1) for s in rel.split("/") if "=" in s) for rel in incoming]
        out = {}
        for key, kind, _col in spec.partition_by:
            if kind == "value":
                values = {segs[key] for segs in segments}
                if len(values) == 1:
                    out[key] = values.pop()
        return out

    def _partitions_in_window(
        self, spec: TableSpec, bounds: tuple[datetime, datetime], scope: dict[str, str], listed: list[str]
    ) -> list[str]:
        lo, hi = bounds[0].date(), bounds[1].date()
        date_keys = {k for k, kind, _ in spec.partition_by if kind == "date"}
        out = []
        for rel in listed:
            segs = dict(s.split("=", 1) for s in rel.split("/") if "=" in s)
            if any(segs.get(k) != v for k, v in scope.items()):
                continue
            dates = [segs[k] for k in date_keys if k in segs]
            if not date_keys or any(lo <= date.fromisoformat(d) <= hi for d in dates if d != "__null__"):
                out.append(rel)
        return out

    def _read_partition(self, spec: TableSpec, rel: str) -> pl.DataFrame | None:
        path = f"{self._partition_dir(spec.name, rel)}/{DATA_FILE}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        old = conform(pq.read_table(path, filesystem=self.fs), spec)
        df = pl.from_arrow(old)
        assert isinstance(df, pl.DataFrame)
        return df

    def _write_partition(self, spec: TableSpec, rel: str, df: pl.DataFrame) -> None:
        if spec.natural_key:
            df = df.sort(list(spec.natural_key))
        table = df.to_arrow().cast(spec.schema)
        directory = self._partition_dir(spec.name, rel)
        final = f"{directory}/{DATA_FILE}"
        self.fs.create_dir(directory, recursive=True)
        options: dict[str, Any] = {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS}
        if self.is_local:
            tmp = f"{directory}/.{DATA_FILE}.{uuid.uuid4().hex}.tmp"
            try:
                pq.write_table(table, tmp, filesystem=self.fs, **options)
                self.fs.move(tmp, final)
            except BaseException:
                if self.fs.get_file_info(tmp).type == pafs.FileType.File:
                    self.fs.delete_file(tmp)
                raise
        else:
            pq.write_table(table, final, filesystem=self.fs, **options)


def org_lease_name(org_id: str) -> str:
    """The record of an organisation's lease, beside the lake's own (``.lease.json``)."""
    return f".lease.org_id={encode_partition_value(org_id)}.json"


def _split_partitions(spec: TableSpec, df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """`df` split by partition, keyed by relative partition path (``org_id=../date=..``).

    Splits on the native partition values (a date, a value) and encodes each distinct
    key once, rather than formatting a path string for every row.
    """
    if not spec.partition_by:
        return {"": df}
    exprs, names = _partition_values(spec, df)
    parts = df.with_columns(exprs).partition_by(names, as_dict=True, include_key=False)
    out: dict[str, pl.DataFrame] = {}
    for values, part in parts.items():
        rel = _partition_path(spec, values)
        out[rel] = pl.concat([out[rel], part]) if rel in out else part
    return out


def _partition_rows(spec: TableSpec, df: pl.DataFrame) -> list[tuple[str, pl.Series]]:
    """Like `_split_partitions`, as row numbers in input order per partition path (for
    cutting an Arrow table): `df` need only hold the partitioning columns."""
    exprs, names = _partition_values(spec, df)
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW)
    groups = df.select(*exprs, rows).group_by(names, maintain_order=True).agg(_ROW)
    return [(_partition_path(spec, values), idx)
            for values, idx in zip(groups.select(names).iter_rows(), groups.get_column(_ROW))]  # fmt: skip


def _partition_values(spec: TableSpec, df: pl.DataFrame) -> tuple[list[pl.Expr], list[str]]:
    """Expressions (and their names) for each row's native partition values."""
    exprs, names = [], []
    for i, (_key, kind, col) in enumerate(spec.partition_by):
        name = f"__part{i}"
        if kind == "date":
            c = pl.col(col)
            if df.schema[col] != pl.Date:
                c = pl.coalesce(c, pl.col("extracted_at")).dt.convert_time_zone("UTC").dt.date()
            exprs.append(c.alias(name))
        else:
            exprs.append(pl.col(col).alias(name))
        names.append(name)
    return exprs, names


def _partition_path(spec: TableSpec, values: Iterable[Any]) -> str:
    segs = []
    for (key, kind, _col), value in zip(spec.partition_by, values):
        if value is None:
            segs.append(f"{key}=__null__")
        elif kind == "date":
            segs.append(f"{key}={value.isoformat()}")
        else:
            segs.append(f"{key}={encode_partition_value(value)}")
    return "/".join(segs)


@dataclass
class _Spill:
    """A Parquet file's rows, conformed, de-duplicated and split into per-partition scratch files."""

    root: Path
    rows: int
    partitions: set[str]
    #: Global row numbers of rows a later row with the same natural key replaces.
    losers: pl.Series | None

    def load(self, rel: str) -> pl.DataFrame:
        df = pl.read_parquet(self.files(rel), hive_partitioning=False)
        if self.losers is not None:
            df = df.filter(~pl.col(_ROW).is_in(self.losers))
        return df.drop(_ROW)

    def files(self, rel: str) -> list[Path]:
        return sorted((self.root / rel).glob("*.parquet"))  # batch order: input order

    def loaders(self) -> dict[str, Callable[[], pl.DataFrame]]:
        return {rel: functools.partial(self.load, rel) for rel in self.partitions}


def _spill_partitions(spec: TableSpec, path: Path, scratch: Path, batch_rows: int) -> _Spill:
    """Read `path` in batches of `batch_rows`: conform each (bad input raises before the lake
    is touched) and write its rows, numbered, to ``<scratch>/<partition>/<batch>.parquet``.

    The batches stay Arrow tables (cut with ``take``): polars only sees the partitioning and
    key columns. `land` keeps the last row of each natural key across the whole input; a key
    hash per row (8 bytes) finds whether any key repeats, and only then are the keys
    compared exactly and the earlier rows of each repeated key listed as losers.
    """
    keys = list(spec.natural_key)
    sources = sorted({col for _key, _kind, col in spec.partition_by} | ({"extracted_at"} & set(spec.schema.names)))
    # A buffered stream decodes page by page: memory follows the batch, not the row group.
    source = pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    spill = _Spill(scratch, 0, set(), None)
    hashes: list[pl.Series] = []
    for i, batch in enumerate(source.iter_batches(batch_size=batch_rows)):
        table = conform(batch, spec)
        n = table.num_rows
        if not n:
            continue
        table = table.append_column(_ROW, pa.array(range(spill.rows, spill.rows + n), pa.int64()))
        if keys:
            hashes.append(pl.DataFrame(table.select(keys)).select(pl.struct(keys).hash()).to_series())
        groups: Iterable[tuple[str, pl.Series | None]] = [("", None)]  # unpartitioned: every row
        if spec.partition_by:
            groups = _partition_rows(spec, pl.DataFrame(table.select(sources)))
        for j, (rel, rows) in enumerate(groups):
            (scratch / rel).mkdir(parents=True, exist_ok=True)
            part = table if rows is None else table.take(rows.to_arrow())
            pq.write_table(part, scratch / rel / f"{i:08d}-{j:05d}.parquet", compression="lz4", write_statistics=False)
            spill.partitions.add(rel)
        spill.rows += n
    if hashes and pl.concat(hashes).n_unique() < spill.rows:
        files = [f for rel in spill.partitions for f in spill.files(rel)]
        seen = pl.scan_parquet(files, hive_partitioning=False).select([*keys, _ROW]).sort(_ROW).collect()
        spill.losers = seen.filter(~pl.struct(keys).is_last_distinct()).get_column(_ROW)
        spill.rows -= spill.losers.len()
    return spill


def _covers_partition(spec: TableSpec, rel: str, bounds: tuple[datetime, datetime]) -> bool:
    """Whether the window holds every row a partition can hold (its whole date), so the old
    partition need not be read: the window replaces it whole."""
    date_keys = [k for k, kind, _ in spec.partition_by if kind == "date"]
    if len(date_keys) != 1:
        return False
    segs = dict(s.split("=", 1) for s in rel.split("/") if "=" in s)
    value = segs.get(date_keys[0])
    if value is None or value == "__null__":
        return False
    day = date.fromisoformat(value)
    lo, hi = bounds
    return lo <= datetime.combine(day, dtime.min, tzinfo=UTC) and hi >= datetime.combine(day, _MAX_DAY, tzinfo=UTC)


def _in_window(spec: TableSpec, bounds: tuple[datetime, datetime]) -> pl.Expr:
    date_cols = [col for _, kind, col in spec.partition_by if kind == "date"]
    if not date_cols:
        return pl.lit(True)
    col = date_cols[0]
    if spec.schema.field(col).type == pa.date32():
        return pl.col(col).is_between(bounds[0].date(), bounds[1].date(), closed="both").fill_null(False)
    c = pl.coalesce(pl.col(col), pl.col("extracted_at"))
    return c.is_between(bounds[0], bounds[1], closed="both").fill_null(False)
