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

Partition values are only dates and the organisation id, encoded so that nothing (``/``,
``..``, quotes, unicode) can escape the root: see `encode_partition_value`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from circleci_analytics.warehouse.tables import TableSpec, table_spec

__all__ = ["DEFAULT_LAKE_ROOT", "Lake", "LakeError", "LandResult", "conform", "encode_partition_value"]

DEFAULT_LAKE_ROOT = "./data/lake"
DATA_FILE = "data.parquet"
_SAFE = re.compile(r"^[A-Za-z0-9_\-]+$")
_MAX_DAY = dtime(23, 59, 59, 999999)
#: Partitions merged and written at once by `Lake.land`.
_LAND_THREADS = 4
#: Rows per Parquet row group (DuckDB's own row-group size: readers split work by it).
ROW_GROUP_ROWS = 122_880


class LakeError(Exception):
    """Data that cannot land as given (unknown columns, nulls in required columns, ...)."""


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
                raise LakeError(f"lake table {spec.name!r}: column {fld.name!r} does not cast to {fld.type}: {exc}") from exc
        elif fld.name == "snapshot_date" and spec.mode == "snapshot" and "extracted_at" in names:
            col = pl.from_arrow(table.select(["extracted_at"])).select(pl.col("extracted_at").dt.date()).to_arrow().column(0).cast(pa.date32())
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
    >>> lake.land("usage_job_runs", table, window=(start, end))   # doctest: +SKIP
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
        result = LandResult(spec.name, df.height)
        bounds = _window_bounds(window) if window is not None else None

        incoming: dict[str, pl.DataFrame] = {}
        if df.height:
            incoming = _split_partitions(spec, df)
        listed = self.partitions(spec.name) if (incoming or bounds is not None) else []
        existing = set(listed)
        touched = set(incoming)
        if bounds is not None:
            touched |= set(self._partitions_in_window(spec, bounds, self._scope(spec, df, scope), listed))

        def merge(rel: str) -> tuple[str, str, int]:
            new = incoming.get(rel)
            if rel not in existing:
                old = None
            elif bounds is not None and _covers_partition(spec, rel, bounds):
                old = None  # every old row lies in the window: replaced whole, not read
            else:
                old = self._read_partition(spec, rel)
                if old is not None and bounds is not None:
                    old = old.filter(~_in_window(spec, bounds))
            if old is not None and old.height:
                merged = pl.concat([old, new], how="vertical_relaxed") if new is not None else old
                merged = merged.unique(subset=keys, keep="last", maintain_order=True) if keys else merged
            else:
                merged = new
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

    def _scope(self, spec: TableSpec, df: pl.DataFrame, scope: Mapping[str, str] | None) -> dict[str, str]:
        if scope is not None:
            return {k: encode_partition_value(v) for k, v in scope.items()}
        out = {}
        for key, kind, col in spec.partition_by:
            if kind == "value" and df.height:
                values = df.get_column(col).unique().to_list()
                if len(values) == 1:
                    out[key] = encode_partition_value(values[0])
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
        options = {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS}
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


def _split_partitions(spec: TableSpec, df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """`df` split by partition, keyed by relative partition path (``org_id=../date=..``).

    Splits on the native partition values (a date, a value) and encodes each distinct
    key once, rather than formatting a path string for every row.
    """
    if not spec.partition_by:
        return {"": df}
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
    parts = df.with_columns(exprs).partition_by(names, as_dict=True, include_key=False)
    out: dict[str, pl.DataFrame] = {}
    for values, part in parts.items():
        segs = []
        for (key, kind, _col), value in zip(spec.partition_by, values):
            if value is None:
                segs.append(f"{key}=__null__")
            elif kind == "date":
                segs.append(f"{key}={value.isoformat()}")
            else:
                segs.append(f"{key}={encode_partition_value(value)}")
        rel = "/".join(segs)
        out[rel] = pl.concat([out[rel], part]) if rel in out else part
    return out


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


def land_many(lake: Lake, items: Iterable[tuple[str, Any]]) -> list[LandResult]:
    """Land several (table, data) pairs in order."""
    return [lake.land(name, data) for name, data in items]
