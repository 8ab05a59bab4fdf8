"""A backfill's progress: a Prefect progress artifact, and on a terminal a rich progress bar
(export windows landed of all, and what the run is waiting for: the export's polling, or a
rate limit / retry the client is waiting out)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["BackfillProgress"]

#: The logger whose retry lines say what the client waits for (`connectors.client`).
CLIENT_LOGGER = "circleci_analytics.connectors.client"


class BackfillProgress:
    """Windows landed over every org: one Prefect progress artifact, and a rich bar when
    `console` (default: stderr) is a terminal."""

    def __init__(self, total: int, done: int, console: Console | None = None) -> None:
        self.total, self.done = total, done
        self.artifact_id: UUID | None = None
        console = console or Console(stderr=True)
        self.bar: Progress | None = None
        if console.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[wait]}"), console=console)  # fmt: skip
            self.task = self.bar.add_task("usage export windows", total=total, completed=done, wait="")
        self._waits = _WaitHandler(self)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    async def start(self, description: str) -> None:
        self.artifact_id = await acreate_progress_artifact(progress=self.percent, key="circleci-backfill-progress",
                                                          description=description)  # fmt: skip
        if self.bar is not None:
            self.bar.start()
            logging.getLogger(CLIENT_LOGGER).addHandler(self._waits)

    def stop(self) -> None:
        if self.bar is not None:
            logging.getLogger(CLIENT_LOGGER).removeHandler(self._waits)
            self.bar.stop()

    def waiting(self, what: str) -> None:
        """Show what the run waits for now ("" once it goes on)."""
        if self.bar is not None:
            self.bar.update(self.task, wait=what)

    async def sleep(self, seconds: float) -> None:
        """The usage export's pause between status polls, shown while it lasts."""
        self.waiting(f"polling the export job: next poll in {seconds:,.0f} s")
        try:
            await asyncio.sleep(seconds)
        finally:
            self.waiting("")

    async def advance(self) -> None:
        self.done += 1
        if self.artifact_id is not None:
            await aupdate_progress_artifact(artifact_id=self.artifact_id, progress=self.percent)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, wait="")


class _WaitHandler(logging.Handler):
    """Turns the client's "retrying ... waiting N s" lines (429s, 5xx) into the bar's wait text."""

    def __init__(self, progress: BackfillProgress) -> None:
        super().__init__(level=logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        message: Any = record.getMessage()
        if "waiting" in message:
            self.progress.waiting(message)
