"""Merge gzipped usage-export CSV parts into one typed Parquet file.

All parts are merged in one streaming polars query: each part is scanned by polars' native
CSV reader (every column read as text, by header name, so any column order works),
converted with vectorised expressions, concatenated, de-duplicated on ``job_id`` (first
occurrence wins, across parts and windows) and written by ``sink_parquet``. Nothing is
collected in Python except the row numbers of the rows that fail a check (taken by the
query's filter, ``_SuspectTap``), so memory stays bounded whatever the export size, and
parsing, converting and Parquet encoding overlap on all cores. Timestamps are parsed with
the layout sniffed from each part's first rows, then the other layouts on what is left.
Rows land in ``usage_job_runs.parquet`` (schema ``USAGE_JOB_RUNS_SCHEMA``).

Malformed rows are never dropped silently. They go to ``usage_quarantine.parquet``
(``QUARANTINE_SCHEMA``: part, 1-based line number, the raw line and the reason) and are
counted in the result:

* a wrong number of fields (checked exactly with the ``csv`` module for every row that the
  fast parser flags as ragged: an empty last column, which may be padding, or a field
  beyond the header),
* a number, decimal, timestamp or flag that does not parse,
* a missing ``JOB_ID``.

A row with one extra *empty* trailing field (``...,1.0,``) loses nothing and is kept.
Blank lines are skipped and counted. Line numbers assume no quoted field spans lines.

A short row whose fields all parse (its padding looks like an empty last value) can only be
told apart from a good row by re-reading its line; if there is one, the query runs a second
time with that row excluded, so de-duplication never lets it shadow a later good row.
"""

from __future__ import annotations

import base64
import csv
import gzip
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from circleci_analytics.connectors.errors import DataError
from circleci_analytics.connectors.usage_export.schema import (
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
_PART = "__part"
_FAILMASK = "__failmask"
_SHORT = "__short"
_LONG = "__long"
# Two spare columns: the first may hold one extra empty trailing field (kept); anything in
# the second, or anything but "" in the first, is a row with too many fields.
_OVERFLOW = ("__overflow", "__overflow2")
_TRUE = ("y", "yes", "true", "t", "1")
_FALSE = ("n", "no", "false", "f", "0")
_KNOWN = frozenset(CSV_COLUMNS)
_QUARANTINE_BATCH = 10_000
# Failure bits: bit i is CSV_COLUMNS[i] (for JOB_ID: missing); the top bit marks a row the
# first pass found to be short.
_BIT = {c: i for i, c in enumerate(CSV_COLUMNS)}
_SHORT_BIT = 63
_OUTPUT_COLUMNS = tuple(USAGE_JOB_RUNS_SCHEMA.names)


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


def _sample(path: Path, header: list[str], *, size: int = 1 << 18) -> pl.DataFrame:
    """The first rows of a part (about ``size`` bytes of text), every column as text."""
    with gzip.open(path, "rb") as fh:
        head = fh.read(size)
    head = head[: head.rfind(b"\n") + 1] if b"\n" in head else head
    try:
        return pl.read_csv(
            head,
            has_header=True,
            new_columns=header,
            schema_overrides={c: pl.String for c in header},
            infer_schema=False,
            truncate_ragged_lines=True,
            null_values=NULL_TOKEN,
            encoding="utf8-lossy",
        )
    except (pl.exceptions.PolarsError, ValueError):
        return pl.DataFrame({c: [] for c in header}, schema={c: pl.String for c in header})


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
    # cache=False: timestamps are nearly all distinct, so polars' parse cache only costs.
    if zoned:
        parsed = values.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)
        return parsed.dt.convert_time_zone("UTC")
    return values.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC", cache=False)


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
    """Typed value of CSV column ``name`` (text in, ``\\N`` already null)."""
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
        return _parse_expr(raw, *_TS_FORMATS[0])
    return raw


def _parse_expr(values: pl.Expr, fmt: str, zoned: bool) -> pl.Expr:
    if zoned:
        parsed = values.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)
        return parsed.dt.convert_time_zone("UTC")
    return values.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC", cache=False)


def _timestamp_stages(name: str, first: tuple[str, bool]) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """``parse_timestamps`` as three native expressions, applied in three ``with_columns``:
    parse with the part's sniffed layout; keep (stripped) the text that did not parse; fill
    in from the other layouts in order. The fallbacks see a column that is almost all null,
    which polars skips at no cost, so mixed layouts stay cheap without Python in the loop."""
    raw, typed, rest = pl.col(name), f"__t_{name}", f"__r_{name}"
    leftover = pl.when(pl.col(typed).is_null() & raw.is_not_null()).then(raw).str.strip_chars()
    fallbacks = [_parse_expr(pl.col(rest), fmt, zoned) for fmt, zoned in _TS_FORMATS]
    return (
        _parse_expr(raw, *first).alias(typed),
        leftover.alias(rest),
        pl.coalesce(pl.col(typed), *fallbacks).alias(typed),
    )


def _polars_dtype(name: str) -> pl.DataType:
    return pl.Series(pa.array([], USAGE_JOB_RUNS_SCHEMA.field(name).type)).dtype


def _typed_null(name: str) -> pl.Expr:
    return pl.lit(None, dtype=_polars_dtype(name.lower()))


def _sink_schemas() -> tuple[pa.Schema, dict[str, str]]:
    """What ``sink_parquet`` is given so the file reads back as ``USAGE_JOB_RUNS_SCHEMA``.

    polars writes strings as ``large_string``; the Parquet column types and nullability come
    from the first schema, the Arrow types readers see from the ``ARROW:schema`` metadata.
    """
    polars_side = pa.schema(
        [f.with_type(pa.large_string()) if f.type == pa.string() else f for f in USAGE_JOB_RUNS_SCHEMA]
    )
    arrow_meta = base64.b64encode(USAGE_JOB_RUNS_SCHEMA.serialize().to_pybytes()).decode()
    return polars_side, {"ARROW:schema": arrow_meta}


def _raw_lines(path: Path, wanted: Iterable[int], *, chunk_size: int = 1 << 22) -> dict[int, str]:
    """The raw text of the given 1-based physical lines (``\\n``-separated, as polars splits
    them) of a gzipped part, found by splitting decompressed blocks, not line by line."""
    pending = iter(sorted(set(wanted)))
    target = next(pending, None)
    found: dict[int, str] = {}
    line_no = 1  # the number of the line that starts ``carry``
    carry = b""
    with gzip.open(path, "rb") as fh:
        while target is not None:
            chunk = fh.read(chunk_size)
            if not chunk:  # the last line, if it has no newline
                if carry and target == line_no:
                    found[target] = carry.rstrip(b"\r").decode("utf-8", errors="replace")
                break
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            while target is not None and target < line_no + len(lines):
                found[target] = lines[target - line_no].rstrip(b"\r").decode("utf-8", errors="replace")
                target = next(pending, None)
            line_no += len(lines)
    return found


def _field_count(line: str) -> int:
    return len(next(csv.reader([line]), []))


@dataclass(frozen=True)
class _Part:
    """A queued part: its input, header and what its first rows tell about it."""

    input: PartInput
    header: tuple[str, ...]
    unknown: tuple[str, ...]
    layouts: dict[str, tuple[str, bool]]  # timestamp column -> layout sniffed from the first rows


class _SuspectTap:
    """Filter predicate of the streaming query that also keeps the suspect rows' checks.

    Called by polars once per batch with the check columns (as a struct): returns which rows
    are good (every field parsed, no field beyond the header) and keeps the ``__part``,
    ``__row`` and check values of bad rows and of rows that may be short, so the row data
    itself never leaves the engine. Batches can arrive on several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: list[pl.DataFrame] = []
        self.good = 0

    def __call__(self, checks: pl.Series) -> pl.Series:
        df = checks.struct.unnest()
        ok = (df.get_column(_FAILMASK) == 0) & ~df.get_column(_LONG)
        suspects = df.filter(~ok | df.get_column(_SHORT))
        with self._lock:
            self.good += int(ok.sum())
            if suspects.height:
                self._found.append(suspects)
        return ok

    def suspects(self) -> pl.DataFrame:
        schema = {_PART: pl.UInt32, _ROW: pl.UInt32, _FAILMASK: pl.UInt64, _SHORT: pl.Boolean, _LONG: pl.Boolean}
        if not self._found:
            return pl.DataFrame(schema=schema)
        return pl.concat(self._found).unique([_PART, _ROW]).sort(_PART, _ROW)


class UsageMerger:
    """Queue parts with ``add_part()``; ``close()`` merges them and finishes both Parquet files.

    ``add_part`` checks a part's header at once (a missing required column raises
    ``DataError`` before any row is read); the rows of all parts are parsed, checked and
    written in one streaming pass by ``close()``. ``output`` is the job-run Parquet file,
    ``quarantine`` the malformed-row file; ``batch_rows`` is the Parquet row-group size.
    """

    def __init__(self, output: Path, quarantine: Path, *, extracted_at: datetime, batch_rows: int = 100_000) -> None:
        self.output = Path(output)
        self.quarantine = Path(quarantine)
        self.extracted_at = extracted_at
        self.batch_rows = batch_rows
        self.stats = MergeStats()
        self._parts: list[_Part] = []
        self._quarantine_rows: list[dict[str, object]] = []
        self._quarantine_writer: pq.ParquetWriter | None = None
        self._quarantine_tmp = self.quarantine.with_name(self.quarantine.name + ".partial")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.quarantine.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_output = self.output.with_name(self.output.name + ".partial")

    # -- queueing ------------------------------------------------------------------------------
    def add_part(self, part: PartInput) -> None:
        """Check the header of one part and queue it for ``close()``."""
        header = read_header(part.path, part.name)
        self.stats.parts += 1
        if not header:
            return
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"usage export part {part.name}: required column {missing[0]} is missing"
                + (f" (also {', '.join(missing[1:])})" if missing[1:] else "")
                + f"; header has {len(header)} columns"
            )
        unknown = tuple(c for c in header if c not in _KNOWN)
        self.stats.unknown_columns.update(unknown)
        self.stats.missing_optional_columns.update(c for c in CSV_COLUMNS if c not in header)
        stamps = [c for c in header if c in _KNOWN and column_kind(c) == "timestamp"]
        sample = _sample(part.path, header) if stamps else None
        layouts = {c: _sniff_format(sample.get_column(c)) for c in stamps} if sample is not None else {}
        self._parts.append(_Part(part, tuple(header), unknown, layouts))

    # -- the query -----------------------------------------------------------------------------
    def _scan(self, index: int, part: _Part, short_rows: list[int]) -> pl.LazyFrame:
        """One part as typed output columns plus ``__part``, ``__row`` and the check columns."""
        header = part.header
        schema = {c: pl.String for c in header} | {o: pl.String for o in _OVERFLOW}
        frame = pl.scan_csv(
            part.input.path,
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
        typed = [c for c in header if c in _KNOWN and column_kind(c) != "string"]
        job_id = pl.col("JOB_ID")
        fails = [(pl.col(c).is_not_null() & (pl.col(c) != "") & pl.col(f"__t_{c}").is_null(), _BIT[c]) for c in typed]
        fails.append((job_id.is_null() | (job_id.str.strip_chars() == ""), _BIT["JOB_ID"]))
        if short_rows:
            fails.append((pl.col(_ROW).is_in(pl.Series(short_rows, dtype=pl.UInt32).implode()), _SHORT_BIT))
        failmask = pl.sum_horizontal([fail.cast(pl.UInt64) * (1 << bit) for fail, bit in fails])
        first, second = (pl.col(o) for o in _OVERFLOW)
        too_long = first.is_null() | (first != "") | second.is_null() | (second != "")
        # Padding (the reader fills a short row with ""), or a genuinely empty last value.
        maybe_short = (pl.col(header[-1]) == "").fill_null(False)

        out: list[pl.Expr] = []
        present = set(header)
        for c in CSV_COLUMNS:
            if c not in present:
                out.append(_typed_null(c).alias(c.lower()))
            elif column_kind(c) == "string":
                out.append(pl.col(c).alias(c.lower()))
            else:
                out.append(pl.col(f"__t_{c}").alias(c.lower()))
        if part.unknown:
            extra = pl.struct([pl.col(c) for c in part.unknown]).struct.json_encode()
        else:
            extra = pl.lit(None, dtype=pl.String)
        p = part.input
        out += [
            extra.alias("extra_columns"),
            pl.lit(p.window_start).cast(_UTC).alias("export_window_start"),
            pl.lit(p.window_end).cast(_UTC).alias("export_window_end"),
            pl.lit(self.extracted_at).cast(_UTC).alias("extracted_at"),
            pl.lit(index, dtype=pl.UInt32).alias(_PART),
            pl.col(_ROW),
            failmask.alias(_FAILMASK),
            maybe_short.alias(_SHORT),
            too_long.alias(_LONG),
        ]
        stamps = [_timestamp_stages(c, part.layouts[c]) for c in typed if column_kind(c) == "timestamp"]
        others = [_convert(c).alias(f"__t_{c}") for c in typed if column_kind(c) != "timestamp"]
        if stamps:
            frame = frame.with_columns(*others, *(s[0] for s in stamps))
            frame = frame.with_columns(s[1] for s in stamps).with_columns(s[2] for s in stamps)
        elif others:
            frame = frame.with_columns(others)
        return frame.select(out)

    def _run(self, short_rows: dict[int, list[int]]) -> tuple[pl.DataFrame, int]:
        """Stream every part into the output file; return the suspect rows and the good-row count."""
        frames = [self._scan(i, part, short_rows.get(i, [])) for i, part in enumerate(self._parts)]
        checks = pl.struct(_PART, _ROW, _FAILMASK, _SHORT, _LONG)
        tap = _SuspectTap()
        written = (
            pl.concat(frames, how="vertical")
            .filter(checks.map_batches(tap, return_dtype=pl.Boolean, is_elementwise=True))
            .filter(pl.col("job_id").is_first_distinct())
            .select(_OUTPUT_COLUMNS)
        )
        polars_schema, metadata = _sink_schemas()
        try:
            written.sink_parquet(
                self._tmp_output,
                compression="zstd",
                row_group_size=self.batch_rows,
                arrow_schema=polars_schema,
                metadata=metadata,
            )
        except pl.exceptions.ComputeError as exc:
            names = ", ".join(p.input.name for p in self._parts[:5])
            raise DataError(f"usage export parts ({names}{', ...' if len(self._parts) > 5 else ''}): {exc}") from exc
        return tap.suspects(), tap.good

    def _classify(self, suspects: pl.DataFrame) -> tuple[list[tuple[int, int, str, str]], int, dict[int, list[int]]]:
        """Decide each suspect row from its raw line.

        Returns the quarantine entries ``(part, line, raw, reason)``, the blank-line count and,
        per part, rows that are short although every field parsed (they were written).
        """
        entries: list[tuple[int, int, str, str]] = []
        blank = 0
        short_written: dict[int, list[int]] = {}
        for (index,), rows in suspects.sort(_PART, _ROW).group_by(_PART, maintain_order=True):
            part = self._parts[int(index)]
            expected = len(part.header)
            lines = _raw_lines(part.input.path, (r + 2 for r in rows.get_column(_ROW)))
            for _, row, mask, short, long in rows.iter_rows():
                number = row + 2
                raw = lines.get(number, "")
                if not raw.strip():
                    blank += 1
                    continue
                why = ""
                if short or long or mask >> _SHORT_BIT & 1:
                    fields = _field_count(raw)
                    if fields != expected and not (fields == expected + 1 and raw.endswith(",")):
                        why = f"expected {expected} fields, got {fields}"
                if not why:
                    why = "; ".join(
                        "missing JOB_ID" if c == "JOB_ID" else f"unparseable {column_kind(c)} in {c}"
                        for c in CSV_COLUMNS
                        if mask >> _BIT[c] & 1
                    )
                if not why and long:  # the fast and the exact parser disagree on the fields
                    why = "malformed CSV row"
                if not why:
                    continue  # a genuinely empty last value: the row is good and was written
                if mask == 0 and not long:
                    short_written.setdefault(int(index), []).append(row)
                entries.append((int(index), number, raw, why))
        return entries, blank, short_written

    # -- quarantine ----------------------------------------------------------------------------
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
            self._quarantine_writer = pq.ParquetWriter(self._quarantine_tmp, QUARANTINE_SCHEMA, compression="zstd")
        table = pa.Table.from_pylist(self._quarantine_rows, schema=QUARANTINE_SCHEMA)
        self._quarantine_writer.write_table(table)
        self._quarantine_rows.clear()

    # -- finish --------------------------------------------------------------------------------
    def close(self) -> MergeStats:
        """Merge the queued parts: write the job-run file and the quarantine file (both
        atomically renamed into place) and return the stats."""
        try:
            self._merge()
            if self._quarantine_rows or self._quarantine_writer is None:
                self._flush_quarantine()
            assert self._quarantine_writer is not None
            self._quarantine_writer.close()
            self._quarantine_writer = None
        except BaseException:
            self.abort()
            raise
        self._tmp_output.replace(self.output)
        self._quarantine_tmp.replace(self.quarantine)
        return self.stats

    def _merge(self) -> None:
        if not self._parts:
            pq.write_table(USAGE_JOB_RUNS_SCHEMA.empty_table(), self._tmp_output, compression="zstd")
            return
        suspects, good = self._run({})
        entries, blank, short_written = self._classify(suspects)
        if short_written:
            # Those rows took part in de-duplication; run again with them excluded.
            suspects, good = self._run(short_written)
            entries, blank, short_written = self._classify(suspects)
            assert not short_written, "short rows are excluded on the second pass"
        rows = pq.ParquetFile(self._tmp_output).metadata.num_rows
        self.stats.rows = rows
        self.stats.duplicates = good - rows
        self.stats.blank_lines = blank
        for index, number, raw, reason in entries:
            self._quarantine(self._parts[index].input, number, raw, reason)

    def abort(self) -> None:
        """Drop the partial output (after an error)."""
        try:
            if self._quarantine_writer is not None:
                self._quarantine_writer.close()
                self._quarantine_writer = None
        finally:
            self._tmp_output.unlink(missing_ok=True)
            self._quarantine_tmp.unlink(missing_ok=True)


def merge_parts(parts: Iterable[PartInput], output: Path, quarantine: Path, *, extracted_at: datetime) -> MergeStats:
    """Merge ``parts`` into ``output`` (and ``quarantine``); see ``UsageMerger``."""
    merger = UsageMerger(output, quarantine, extracted_at=extracted_at)
    try:
        for part in parts:
            merger.add_part(part)
    except BaseException:
        merger.abort()
        raise
    return merger.close()
