"""Prefect flows: `nightly` (extract -> land -> build -> dashboard) and `backfill`.

The logic lives in plain functions (`flows.steps`); the flows only orchestrate them, with the
Prefect tasks both share in `flows.tasks`.
"""

from __future__ import annotations

import os

# Prefect's ephemeral server needs ~30 s on a fresh PREFECT_HOME, and no telemetry offline.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from .backfill import backfill, backfill_windows  # noqa: E402
from .nightly import nightly  # noqa: E402
from .summary import RunSummary  # noqa: E402
from .tasks import resolve_token  # noqa: E402

__all__ = ["RunSummary", "backfill", "backfill_windows", "nightly", "resolve_token"]
