"""Pipeline lists that are generated one day at a time, only as far as the page asked for.

`listPipelines` spans every project of an org over the whole history (millions of pipelines
for the `large` preset), so building the list per request is not an option. A feed answers
the one thing the HTTP layer's pager asks of a list result, a slice ``feed[a:b]``: it walks
days newest first, skips whole days before the slice from the plans' per-day counts (no
generation) when nothing is filtered, and generates only the days the slice touches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .catalog import Project
from .history import History, Pipeline

__all__ = ["PipelineFeed"]


class PipelineFeed:
    """Pipelines of `projects`, newest first, rendered with `render`, kept where `keep` is true.

    Order: by day, newest first; within a day one project's pipelines come by number,
    highest first (as `/project/{slug}/pipeline` has always listed them), and several
    projects' pipelines by creation time, newest first (ties: higher project index, then
    higher number first). Pipelines are created on their own day, so the order is by
    creation time across days.
    """

    def __init__(self, history: History, projects: Sequence[Project], render: Callable[[Pipeline], dict],
                 keep: Callable[[Pipeline], bool] | None = None):  # fmt: skip
        self.history = history
        self.projects = tuple(projects)
        self.render = render
        self.keep = keep

    def _count(self, day: int) -> int:
        return sum(self.history.plan(p).pipelines_per_day[day] for p in self.projects)

    def _day(self, day: int) -> list[Pipeline]:
        if len(self.projects) == 1:
            out = list(reversed(self.history.pipelines(self.projects[0], day)))
        else:
            out = [pl for p in self.projects for pl in self.history.pipelines(p, day)]
            out.sort(key=lambda pl: (pl.created_at, pl.project.index, pl.number), reverse=True)
        return out if self.keep is None else [pl for pl in out if self.keep(pl)]

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        if not isinstance(window, slice) or window.step not in (None, 1):
            raise TypeError("a PipelineFeed only supports contiguous slices")
        start, stop = window.start or 0, window.stop
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("a PipelineFeed slice needs non-negative bounds")
        out: list[dict[str, Any]] = []
        seen = 0  # pipelines (after filtering) newer than the current day
        for day in range(self.history.days - 1, -1, -1):
            if stop is not None and seen >= stop:
                break
            if self.keep is None:
                n = self._count(day)
                if seen + n <= start:
                    seen += n
                    continue
            for pl in self._day(day):
                if stop is not None and seen >= stop:
                    break
                if seen >= start:
                    out.append(self.render(pl))
                seen += 1
        return out
