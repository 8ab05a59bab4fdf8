"""Helpers shared by the connector tests (imported as a plain module)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
TOKEN = "sekrit-token-1234567890"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class FakeSleep:
    """Records requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def console_script() -> list[str]:
    """The installed `circleci-analytics` script (what `uv run circleci-analytics` runs)."""
    import shutil
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "circleci-analytics"
    if script.exists():
        return [str(script)]
    found = shutil.which("circleci-analytics")
    return [found] if found else [sys.executable, "-m", "circleci_analytics.cli"]


def run_cli(args: list[str], home: Any, token: str, timeout: float = 420, **env: str) -> Any:
    """`circleci-analytics <args>` in a subprocess with its own PREFECT_HOME under `home`."""
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    clean.update(PREFECT_HOME=str(home / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                 PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", CIRCLECI_TOKEN=token, **env)  # fmt: skip
    return subprocess.run([*console_script(), *args], env=clean, cwd=home, capture_output=True, timeout=timeout)
