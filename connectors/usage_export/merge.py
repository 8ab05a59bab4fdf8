"""Merge gzipped usage-export CSV parts into one typed Parquet file.

Each part is parsed on its own by polars' native CSV reader (all columns read as text,
by header name, so any column order works) and converted with vectorised expressions;
only one part is in memory at a time, so memory follows the largest part, not the export.
Rows land in ``usage_job_runs.parquet`` (schema ``USAGE_JOB_RUNS_SCHEMA``), one row group
per part, de-duplicated on ``job_id`` (first occurrence wins, across parts and windows).

Malformed rows are never dropped silently. They go to ``usage_quarantine.parquet``
(``QUARANTINE_SCHEMA``: part, 1-based line number, the raw line and the reason) and are
counted in the result:

* a wrong number of fields (checked exactly with the ``csv`` module for every row that the
  fast parser flags as ragged: padding in the last column or an overflow field),
* a number, decimal, timestamp or flag that does not parse,
* a missing ``JOB_ID``.

A row with one extra *empty* trailing field (``...,1.0,``) loses nothing and is kept.
Blank lines are skipped and counted. Line numbers assume no quoted field spans lines.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.errors import DataError
from connectors.usage_export.schema import (
    CSV_COLUMNS,
    DECIMAL_PRECISION,
    DECIMAL_SCALE,
    QUARANTINE_SCHEMA,
    REQUIRED_COLUMNS,
    USAGE_JOB_RUNS_SCHEMA,
    column_kind,
)

__all__ = ["MergeStats", "PartInput", "UsageMerger", "check_gzip", "merge_parts", "read_header"]

NULL_TOKEN = "\\N"
_ROW = "__row"
_OVERFLOW = "__overflow"
_TRUE = ("y", "yes", "true", "t", "1")
_FALSE = ("n", "no", "false", "f", "0")
_TS_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_KNOWN = frozenset(CSV_COLUMNS)
_QUARANTINE_BATCH = 10_000


@dataclass(frozen=True)
class PartInput:
    """One downloaded part: a local ``.csv.gz`` file and the export window it belongs to."""

    path: Path
    name: str
    window_start: datetime
    window_end: datetime


@dataclass
class MergeStats:
    """What the merge saw: rows written, rows quarantined, duplicates, columns."""

    rows: int = 0
    parts: int = 0
    quarantined: int = 0
    duplicates: int = 0
    blank_lines: int = 0
    unknown_columns: set[str] = field(default_factory=set)
    missing_optional_columns: set[str] = field(default_factory=set)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


def check_gzip(path: Path, *, chunk_size: int = 1 << 20) -> int:
    """Decompress ``path`` fully (CRC and length checked by zlib); return the byte count.

    Raises ``DataError`` for a truncated or corrupt file.
    """
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                total += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"usage export part {path.name}: corrupt or truncated gzip ({exc})") from exc
    return total


def read_header(path: Path, name: str) -> list[str]:
    """The upper-cased column names of a part (empty list for an empty file)."""
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        return []
    names = [n.strip().upper() for n in next(csv.reader([first]))]
    seen: set[str] = set()
    for n in names:
        if not n:
            raise DataError(f"usage export part {name}: empty column name in header")
        if n in seen:
            raise DataError(f"usage export part {name}: column {n} appears twice in header")
        seen.add(n)
    return names


# Tried in order, each only on the values the previous formats left unparsed; the first
# is polars' fast path for CircleCI's usual layout. Naive values are UTC.
_TS_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%Y-%m-%d %H:%M:%S.%6f", False),
    ("%Y-%m-%d %H:%M:%S", False),
    ("%Y-%m-%d %H:%M:%S%.f", False),
    ("%Y-%m-%dT%H:%M:%S%.f", False),
    ("%Y-%m-%dT%H:%M:%S%.f%#z", True),
    ("%Y-%m-%d %H:%M:%S%.f%#z", True),
    ("%Y-%m-%d", False),
)
_UTC = pl.Datetime("us", "UTC")


def _parse_with(values: pl.Series, fmt: str, zoned: bool) -> pl.Series:
    if zoned:
        parsed = values.str.to_datetime(fmt, strict=False, time_unit="us")
        return parsed.dt.convert_time_zone("UTC")
    return values.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


def _sniff_format(values: pl.Series) -> tuple[str, bool]:
    """The first layout that parses a sample of the non-null values (polars' fast paths
    are per format, so one well-chosen format does almost all the work)."""
    present = values.drop_nulls()
    sample = present.filter(present != "").head(64)
    for fmt, zoned in _TS_FORMATS:
        if sample.len() == 0 or _parse_with(sample, fmt, zoned).null_count() == 0:
            return fmt, zoned
    return _TS_FORMATS[0]


def parse_timestamps(values: pl.Series) -> pl.Series:
    """UTC timestamps from text in any accepted layout; null where nothing parses."""
    fmt, zoned = _sniff_format(values)
    out = _parse_with(values, fmt, zoned)
    todo = values.is_not_null() & out.is_null()
    if not todo.any():  # the usual case: one layout throughout
        return out
    values = values.str.strip_chars()
    for fmt, zoned in _TS_FORMATS:
        idx = todo.arg_true()
        parsed = _parse_with(values.gather(idx), fmt, zoned)
        ok = parsed.is_not_null()
        if ok.any():
            out = out.scatter(idx.filter(ok), parsed.filter(ok))
            todo = todo.scatter(idx.filter(ok), False)
            if not todo.any():
                break
    return out


def _convert(name: str) -> pl.Expr:
    """Typed value of CSV column ``name`` (text in, ``\\N`` and empty already null)."""
    raw = pl.col(name)
    kind = column_kind(name)
    if kind == "flag":
        low = raw.str.to_lowercase()
        return pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False)
    if kind == "credit":
        return raw.cast(pl.Decimal(DECIMAL_PRECISION, DECIMAL_SCALE), strict=False)
    if kind == "int":
        return raw.cast(pl.Int64, strict=False)
    if kind == "float":
        return raw.cast(pl.Float64, strict=False)
    if kind == "timestamp":
        return raw.map_batches(parse_timestamps, return_dtype=_UTC)
    return raw


def _typed_null(name: str) -> pl.Expr:
    dtype = pl.from_arrow(pa.array([], USAGE_JOB_RUNS_SCHEMA.field(name.lower()).type)).dtype
    return pl.lit(None, dtype=dtype)


def _raw_lines(path: Path, wanted: Iterable[int]) -> dict[int, str]:
    """The raw text of the given 1-based physical line numbers of a gzipped part."""
    want = set(wanted)
    found: dict[int, str] = {}
    if not want:
        return found
    last = max(want)
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        for number, line in enumerate(fh, start=1):
            if number in want:
                found[number] = line.rstrip("\r\n")
            if number >= last:
                break
    return found


def _field_count(line: str) -> int:
    return len(next(csv.reader([line]), []))


class UsageMerger:
    """Append parts one at a time; ``close()`` finishes both Parquet files.

    ``output`` is the job-run Parquet file, ``quarantine`` the malformed-row file.
    """

    def __init__(
        self, output: Path, quarantine: Path, *, extracted_at: datetime, batch_rows: int = 100_000
    ) -> None:
        self.output = Path(output)
        self.quarantine = Path(quarantine)
        self.extracted_at = extracted_at
        self.batch_rows = batch_rows
        self.stats = MergeStats()
        self._seen_hashes = pl.Series("h", [], dtype=pl.UInt64)
        self._seen_ids = pl.Series("job_id", [], dtype=pl.String)
        self._quarantine_rows: list[dict[str, object]] = []
        self._quarantine_writer: pq.ParquetWriter | None = None
        self._quarantine_tmp = self.quarantine
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_output = self.output.with_name(self.output.name + ".partial")
        self._writer = pq.ParquetWriter(self._tmp_output, USAGE_JOB_RUNS_SCHEMA, compression="zstd")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-parquet")
        self._pending: Future[None] | None = None

    # -- one part ----------------------------------------------------------------------------
    def add_part(self, part: PartInput) -> int:
        """Parse, check and append one part; return the rows it added."""
        header = read_header(part.path, part.name)
        self.stats.parts += 1
        if not header:
            return 0
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"usage export part {part.name}: required column {missing[0]} is missing"
                + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
                + f"; header has {len(header)} columns"
            )
        unknown = [c for c in header if c not in _KNOWN]
        absent = [c for c in CSV_COLUMNS if c not in header]
        self.stats.unknown_columns.update(unknown)
        self.stats.missing_optional_columns.update(absent)

        schema = {c: pl.String for c in header} | {_OVERFLOW: pl.String}
        frame = pl.scan_csv(
            part.path,
            has_header=False,
            skip_rows=1,
            schema=schema,
            missing_columns="insert",
            truncate_ragged_lines=True,
            empty_string_is_null=False,
            null_values=NULL_TOKEN,
            row_index_name=_ROW,
            encoding="utf8",
        )
        last = header[-1]
        known = [c for c in header if c in _KNOWN]
        typed_cols = [c for c in known if column_kind(c) != "string"]
        job_id = pl.col("JOB_ID")
        # A typed value fails when its text is neither null (\N), nor empty, nor parseable.
        fails = {c: pl.col(c).is_not_null() & (pl.col(c) != "") & pl.col(f"__t_{c}").is_null() for c in typed_cols}
        fails["JOB_ID"] = job_id.is_null() | (job_id.str.strip_chars() == "")
        # One bit per failing check, so the raw text of typed columns can be dropped before
        # collecting (it is re-read from the file for the few rows that need it).
        failmask = pl.sum_horizontal(
            [fail.cast(pl.UInt64) * (1 << bit) for bit, fail in enumerate(fails.values())]
        )
        frame = (
            frame.with_columns(
                # Ragged rows: padded by the reader (last column "") or a field beyond the header.
                ((pl.col(last) == "") | (pl.col(_OVERFLOW) != "")).alias("__ragged"),
                *[_convert(c).alias(f"__t_{c}") for c in typed_cols],
            )
            .with_columns(failmask.alias("__failmask"))
            .drop([*typed_cols, _OVERFLOW])
        )
        added = 0
        # Batches bound memory whatever the part size; each becomes one row group.
        for df in frame.collect_batches(chunk_size=self.batch_rows):
            if df.height == 0:
                continue
            df = self._screen(df, part, header, list(fails))
            if df.height == 0:
                continue
            out = self._dedupe(self._shape(df, known, unknown, part))
            del df
            table = out.to_arrow().cast(USAGE_JOB_RUNS_SCHEMA)
            del out
            self._write(table)
            self.stats.rows += table.num_rows
            added += table.num_rows
        return added

    def _dedupe(self, out: pl.DataFrame) -> pl.DataFrame:
        """Drop job ids already written (first occurrence wins) and repeats within ``out``.

        Seen ids are kept as 64-bit hashes (16 MB per 2M rows); a hash hit is confirmed
        against the exact ids, so a collision can never drop a row.
        """
        before = out.height
        ids = out.get_column("job_id")
        hashes = ids.hash(seed=0)
        if self._seen_hashes.len():
            hit = hashes.is_in(self._seen_hashes.implode())
            if hit.any():
                hit_ids = ids.filter(hit)
                dup = pl.Series(hit_ids.is_in(self._seen_ids.implode()))
                drop = hit.scatter(hit.arg_true(), dup)
                out, ids, hashes = out.filter(~drop), ids.filter(~drop), hashes.filter(~drop)
        if ids.n_unique() != out.height:
            first = ids.is_first_distinct()
            out, ids, hashes = out.filter(first), ids.filter(first), hashes.filter(first)
        self.stats.duplicates += before - out.height
        self._seen_hashes.append(hashes)
        self._seen_ids.append(ids)
        return out

    def _write(self, table: pa.Table) -> None:
        """Write in the background so the next part is parsed while this one is encoded."""
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._writer.write_table, table)

    def _screen(
        self, df: pl.DataFrame, part: PartInput, header: list[str], checks: list[str]
    ) -> pl.DataFrame:
        """Split off blank lines and malformed rows (into the quarantine); return the rest."""
        suspects = df.filter(pl.col("__ragged") | (pl.col("__failmask") != 0)).select(
            _ROW, "__ragged", "__failmask"
        )
        if suspects.height == 0:
            return df.drop("__ragged", "__failmask")
        lines = _raw_lines(part.path, (r + 2 for r in suspects.get_column(_ROW)))
        bad_rows: list[int] = []
        for row, ragged, mask in suspects.iter_rows():
            why = "; ".join(
                "missing JOB_ID" if c == "JOB_ID" else f"unparseable {column_kind(c)} in {c}"
                for bit, c in enumerate(checks)
                if mask >> bit & 1
            )
            number = row + 2
            raw = lines.get(number, "")
            if not raw.strip():
                self.stats.blank_lines += 1
                bad_rows.append(row)
                continue
            if ragged:
                fields = _field_count(raw)
                if fields != len(header) and not (fields == len(header) + 1 and raw.endswith(",")):
                    why = f"expected {len(header)} fields, got {fields}"
            if why:
                self._quarantine(part, number, raw, why)
                bad_rows.append(row)
        df = df.drop("__ragged", "__failmask")
        if not bad_rows:
            return df
        return df.filter(~pl.col(_ROW).is_in(pl.Series(bad_rows, dtype=df.schema[_ROW]).implode()))

    def _quarantine(self, part: PartInput, number: int, raw: str, reason: str) -> None:
        self.stats.quarantined += 1
        key = reason.split(" in ")[0] if reason.startswith("unparseable") else reason.split(",")[0]
        key = "wrong field count" if key.startswith("expected") else key
        self.stats.quarantine_reasons[key] = self.stats.quarantine_reasons.get(key, 0) + 1
        if len(self._quarantine_rows) >= _QUARANTINE_BATCH:
            self._flush_quarantine()
        self._quarantine_rows.append(
            {
                "part": part.name,
                "line_number": number,
                "raw_line": raw,
                "reason": reason,
                "export_window_start": part.window_start,
                "export_window_end": part.window_end,
                "extracted_at": self.extracted_at,
            }
        )

    def _flush_quarantine(self) -> None:
        if self._quarantine_writer is None:
            self._quarantine_tmp = self.quarantine.with_name(self.quarantine.name + ".partial")
            self._quarantine_writer = pq.ParquetWriter(self._quarantine_tmp, QUARANTINE_SCHEMA, compression="zstd")
        table = pa.Table.from_pylist(self._quarantine_rows, schema=QUARANTINE_SCHEMA)
        self._quarantine_writer.write_table(table)
        self._quarantine_rows.clear()

    def _shape(self, df: pl.DataFrame, known: list[str], unknown: list[str], part: PartInput) -> pl.DataFrame:
        """Rename to snake_case, add missing/extra/lineage columns, in schema order."""
        exprs: list[pl.Expr] = []
        present = set(known)
        for c in CSV_COLUMNS:
            if c not in present:
                exprs.append(_typed_null(c).alias(c.lower()))
            elif column_kind(c) == "string":
                exprs.append(pl.col(c).alias(c.lower()))
            else:
                exprs.append(pl.col(f"__t_{c}").alias(c.lower()))
        if unknown:
            extra = pl.struct([pl.col(c) for c in unknown]).struct.json_encode()
        else:
            extra = pl.lit(None, dtype=pl.String)
        ts = pl.Datetime("us", "UTC")
        exprs += [
            extra.alias("extra_columns"),
            pl.lit(part.window_start).cast(ts).alias("export_window_start"),
            pl.lit(part.window_end).cast(ts).alias("export_window_end"),
            pl.lit(self.extracted_at).cast(ts).alias("extracted_at"),
        ]
        return df.select(exprs)

    # -- finish ------------------------------------------------------------------------------
    def close(self) -> MergeStats:
        """Finish the job-run file (atomically renamed) and write the quarantine file."""
        if self._pending is not None:
            self._pending.result()
        self._pool.shutdown()
        self._writer.close()
        self._tmp_output.replace(self.output)
        if self._quarantine_writer is None:
            table = pa.Table.from_pylist(self._quarantine_rows, schema=QUARANTINE_SCHEMA)
            pq.write_table(table, self.quarantine, compression="zstd")
        else:
            if self._quarantine_rows:
                self._flush_quarantine()
            self._quarantine_writer.close()
            self._quarantine_tmp.replace(self.quarantine)
        return self.stats

    def abort(self) -> None:
        """Drop the partial output (after an error)."""
        self._pool.shutdown(wait=True)
        try:
            self._writer.close()
            if self._quarantine_writer is not None:
                self._quarantine_writer.close()
        finally:
            self._tmp_output.unlink(missing_ok=True)
            if self._quarantine_writer is not None:
                self._quarantine_tmp.unlink(missing_ok=True)


def merge_parts(
    parts: Iterable[PartInput], output: Path, quarantine: Path, *, extracted_at: datetime
) -> MergeStats:
    """Merge ``parts`` into ``output`` (and ``quarantine``); see ``UsageMerger``."""
    merger = UsageMerger(output, quarantine, extracted_at=extracted_at)
    try:
        for part in parts:
            merger.add_part(part)
    except BaseException:
        merger.abort()
        raise
    return merger.close()


def extra_columns_dict(value: str | None) -> dict[str, str | None]:
    """Decode an ``extra_columns`` cell."""
    return json.loads(value) if value else {}

