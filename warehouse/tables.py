"""Every lake table: one per catalogued stream, its spec derived from the stream's declaration.

The streams are declared once, in ``connectors.catalogue`` (data: field map, primary key,
lake layout). The lake reads that declaration and nothing else of the connectors, so data
and imports run one way, connectors -> warehouse; this module adds only what the lake itself
needs (``snapshot_date`` for snapshots, the natural key).

Partitioning (hive style, ``key=value`` directories) uses only safe values: dates and the
organisation id (a UUID, and encoded anyway, see ``warehouse.lake.encode_partition_value``).
Branch names, workflow names and other free text are never part of a path.

Write modes:

* ``merge``    - rows are keyed by ``natural_key`` (the stream's primary key); landing a row
  again replaces it. The partition of a row is a function of the row, so a key never moves
  partition.
* ``snapshot`` - Insights answers are point-in-time; each extraction lands under
  ``snapshot_date`` (the UTC date of ``extracted_at``), keyed by the stream's primary key and
  ``snapshot_date`` (the latest extraction of a day wins). Snapshots accumulate, so history
  outlives Insights' 90-day retention.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from circleci_analytics.connectors.catalogue import CATALOGUE
from circleci_analytics.connectors.streams import Stream, WriteMode

__all__ = ["TABLES", "TableSpec", "table_spec"]


@dataclass(frozen=True)
class TableSpec:
    """How one lake table is laid out.

    ``partition_by`` maps each partition key to its source: ``("date", "<timestamp column>")``
    partitions by the UTC date of that column (falling back to ``extracted_at`` when null),
    ``("value", "<column>")`` by the (encoded) column value.
    """

    name: str
    schema: pa.Schema
    natural_key: tuple[str, ...]
    partition_by: tuple[tuple[str, str, str], ...] = ()  # (partition key, kind, source column)
    mode: WriteMode = "merge"
    description: str = ""

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.partition_by)


def from_stream(stream: Stream) -> TableSpec:
    """The lake table of a catalogued stream."""
    schema, key = stream.schema, stream.primary_key
    if stream.lake.mode == "snapshot":
        schema = schema.append(pa.field("snapshot_date", pa.date32(), nullable=False))
        key = (*key, "snapshot_date")
    return TableSpec(stream.name, schema, key, stream.lake.partition_by, stream.lake.mode, stream.description)


#: What the alerts (``alerts/``) sent: one row per rule x incident x destination. Not from the
#: API: written after each nightly build, so it outlives the warehouse that is rebuilt each night.
ALERT_HISTORY_SCHEMA = pa.schema([  # type: ignore[arg-type]  # pyarrow-stubs: Field[T] is invariant
    pa.field("rule", pa.string(), nullable=False),
    pa.field("incident_key", pa.string(), nullable=False),
    pa.field("destination", pa.string(), nullable=False),
    pa.field("subject", pa.string()),
    pa.field("figure", pa.float64()),
    pa.field("threshold", pa.float64()),
    pa.field("unit", pa.string()),
    pa.field("line", pa.string()),
    pa.field("page", pa.string()),
    pa.field("as_of_date", pa.date32()),
    pa.field("run_id", pa.string()),
    pa.field("first_attempt_at", pa.timestamp("us", tz="UTC")),
    pa.field("attempts", pa.int32()),
    pa.field("delivered_at", pa.timestamp("us", tz="UTC")),
    pa.field("error", pa.string()),
    pa.field("extracted_at", pa.timestamp("us", tz="UTC"), nullable=False),
])  # fmt: skip

#: Tables the pipeline writes itself (not API streams, so not in the catalogue).
ALERT_HISTORY = TableSpec(
    "alert_history",
    ALERT_HISTORY_SCHEMA,
    ("rule", "incident_key", "destination"),
    description="Alerts per rule x incident x destination: delivered or not, attempts (written by alerts/).",
)

#: The registry: lake table name -> its spec.
TABLES: dict[str, TableSpec] = {
    **{name: from_stream(stream) for name, stream in CATALOGUE.items()},
    ALERT_HISTORY.name: ALERT_HISTORY,
}


def table_spec(name: str) -> TableSpec:
    """The spec of lake table `name` (``KeyError`` with the known names otherwise)."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown lake table {name!r}; known tables: {', '.join(sorted(TABLES))}") from None
