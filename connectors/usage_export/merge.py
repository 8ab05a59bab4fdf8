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


def _parse_timestamp(raw: pl.Expr) -> pl.Expr:
    naive = raw.str.to_datetime(_TS_FORMAT, strict=False, time_unit="us", time_zone="UTC")
    # ISO 8601: 'T' separator and/or a zone suffix (Z, +00:00); converted to UTC.
    iso = (
        raw.str.replace("T", " ", literal=True)
        .str.to_datetime(_TS_FORMAT + "%#z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
    )
    iso_naive = raw.str.replace("T", " ", literal=True).str.to_datetime(
        _TS_FORMAT, strict=False, time_unit="us", time_zone="UTC"
    )
    date_only = raw.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us", time_zone="UTC")
    return pl.coalesce(naive, iso_naive, iso, date_only)


def _convert(name: str) -> pl.Expr:
    """Typed value of CSV column ``name`` (text in, ``\\N`` and empty already null)."""
    raw = pl.col(name)
    kind = column_kind(name)
    if kind == "flag":
        low = raw.str.strip_chars().str.to_lowercase()
        return pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False)
    if kind == "credit":
        return raw.str.strip_chars().cast(pl.Decimal(DECIMAL_PRECISION, DECIMAL_SCALE), strict=False)
    if kind == "int":
        return raw.str.strip_chars().cast(pl.Int64, strict=False)
    if kind == "float":
        return raw.str.strip_chars().cast(pl.Float64, strict=False)
    if kind == "timestamp":
        return _parse_timestamp(raw.str.strip_chars())
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

    def __init__(self, output: Path, quarantine: Path, *, extracted_at: datetime) -> None:
        self.output = Path(output)
        self.quarantine = Path(quarantine)
        self.extracted_at = extracted_at
        self.stats = MergeStats()
        self._seen = pl.Series("job_id", [], dtype=pl.String)
        self._quarantine_rows: list[dict[str, object]] = []
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_output = self.output.with_name(self.output.name + ".partial")
        self._writer = pq.ParquetWriter(self._tmp_output, USAGE_JOB_RUNS_SCHEMA, compression="zstd")

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
        # Empty text is null for typed columns (strict exports use \N; lenient ones leave it empty).
        blanked = [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in typed_cols]
        failures = [
            pl.when(pl.col(c).is_not_null() & pl.col(f"__t_{c}").is_null()).then(
                pl.lit(f"unparseable {column_kind(c)} in {c}")
            )
            for c in typed_cols
        ]
        job_id = pl.col("JOB_ID")
        failures.append(pl.when(job_id.is_null() | (job_id.str.strip_chars() == "")).then(pl.lit("missing JOB_ID")))
        frame = (
            # Ragged rows: padded by the reader (last column "") or with a field beyond the header.
            frame.with_columns(((pl.col(last) == "") | (pl.col(_OVERFLOW) != "")).alias("__ragged"))
            .with_columns(blanked)
            .with_columns([_convert(c).alias(f"__t_{c}") for c in typed_cols])
            .with_columns(pl.concat_str(failures, separator="; ", ignore_nulls=True).alias("__reason"))
        )
        df = frame.collect()
        if df.height == 0:
            return 0

        df = self._screen(df, part, header)
        if df.height == 0:
            return 0
        out = self._shape(df, known, unknown, part)
        before = out.height
        if self._seen.len():
            out = out.filter(~pl.col("job_id").is_in(self._seen.implode()))
        out = out.unique(subset="job_id", keep="first", maintain_order=True)
        self.stats.duplicates += before - out.height
        self._seen = pl.concat([self._seen, out.get_column("job_id")], rechunk=False)
        self._writer.write_table(out.to_arrow().cast(USAGE_JOB_RUNS_SCHEMA))
        self.stats.rows += out.height
        return out.height

    def _screen(self, df: pl.DataFrame, part: PartInput, header: list[str]) -> pl.DataFrame:
        """Split off blank lines and malformed rows (into the quarantine); return the rest."""
        reason = pl.col("__reason")
        suspects = df.filter(pl.col("__ragged") | (reason != "")).select(_ROW, "__ragged", "__reason")
        if suspects.height == 0:
            return df
        lines = _raw_lines(part.path, (r + 2 for r in suspects.get_column(_ROW)))
        bad_rows: list[int] = []
        for row, ragged, why in suspects.iter_rows():
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
        if not bad_rows:
            return df
        return df.filter(~pl.col(_ROW).is_in(pl.Series(bad_rows, dtype=df.schema[_ROW]).implode()))

    def _quarantine(self, part: PartInput, number: int, raw: str, reason: str) -> None:
        self.stats.quarantined += 1
        key = reason.split(" in ")[0] if reason.startswith("unparseable") else reason.split(",")[0]
        key = "wrong field count" if key.startswith("expected") else key
        self.stats.quarantine_reasons[key] = self.stats.quarantine_reasons.get(key, 0) + 1
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
        self._writer.close()
        self._tmp_output.replace(self.output)
        table = pa.Table.from_pylist(self._quarantine_rows, schema=QUARANTINE_SCHEMA)
        pq.write_table(table, self.quarantine, compression="zstd")
        return self.stats

    def abort(self) -> None:
        """Drop the partial output (after an error)."""
        try:
            self._writer.close()
        finally:
            self._tmp_output.unlink(missing_ok=True)


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

