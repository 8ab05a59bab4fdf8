"""Helpers shared by the connector tests (imported as a plain module)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
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


def run_cli(
    args: list[str], home: Path, token: str, timeout: float = 420, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """`circleci-analytics <args>` in a subprocess with its own PREFECT_HOME under `home`."""
    script = Path(sys.executable).parent / "circleci-analytics"  # the console script `make env` installs
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CIRCLECI_"))}
    clean.update(PREFECT_HOME=str(home / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                 PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", CIRCLECI_TOKEN=token, **env)  # fmt: skip
    return subprocess.run([str(script), *args], env=clean, cwd=home, capture_output=True, timeout=timeout)
