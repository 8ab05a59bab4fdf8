"""Export windows: the API accepts at most 31 days per job, inclusive at both ends.

Consecutive windows share their boundary instant (``w[i].end == w[i+1].start``): both ends
are inclusive, so a job run started exactly on a boundary is exported twice and removed by
the ``job_id`` de-duplication, while no instant can fall into a gap between windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["END_MARGIN", "MAX_LOOKBACK", "MAX_WINDOW", "Window", "as_utc", "plan_windows"]

#: Longest window the API accepts (the field text; the tag text says 32 days).
MAX_WINDOW = timedelta(days=31)
#: `end` is clamped to now minus this ("Date cannot be in the future."; mcp-server uses 60 s).
END_MARGIN = timedelta(seconds=60)
#: `start` must be no more than one year ago.
MAX_LOOKBACK = timedelta(days=365)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC, whole seconds (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, order=True)
class Window:
    """An inclusive export window ``[start, end]`` in UTC."""

    start: datetime
    end: datetime

    @property
    def start_iso(self) -> str:
        return _iso(self.start)

    @property
    def end_iso(self) -> str:
        return _iso(self.end)

    @property
    def label(self) -> str:
        return f"{self.start:%Y%m%dT%H%M%SZ}_{self.end:%Y%m%dT%H%M%SZ}"

    def halves(self) -> tuple[Window, Window]:
        """Two windows covering this one, sharing the middle instant."""
        mid = as_utc(self.start + (self.end - self.start) / 2)
        return Window(self.start, mid), Window(mid, self.end)

    def __str__(self) -> str:
        return f"[{self.start_iso}, {self.end_iso}]"


def plan_windows(
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    max_window: timedelta = MAX_WINDOW,
    end_margin: timedelta = END_MARGIN,
    max_lookback: timedelta = MAX_LOOKBACK,
) -> list[Window]:
    """Split ``[start, end]`` into windows of at most ``max_window``.

    ``end`` is clamped to ``now - end_margin``. Raises ``ValueError`` when ``start`` is more
    than ``max_lookback`` before ``now`` or not before the (clamped) end.
    """
    start, end, now = as_utc(start), as_utc(end), as_utc(now)
    if max_window <= timedelta(0):
        raise ValueError("max_window must be positive")
    oldest = now - max_lookback
    if start < oldest:
        raise ValueError(
            f"usage export start {_iso(start)} is more than {max_lookback.days} days ago; "
            f"the API keeps one year: use a start on or after {_iso(oldest)}"
        )
    end = min(end, now - end_margin)
    if start >= end:
        raise ValueError(
            f"usage export window is empty: start {_iso(start)} is not before end {_iso(end)} "
            f"(end is clamped to now - {int(end_margin.total_seconds())}s)"
        )
    windows: list[Window] = []
    cursor = start
    while True:
        stop = min(cursor + max_window, end)
        windows.append(Window(cursor, stop))
        if stop >= end:
            return windows
        cursor = stop
