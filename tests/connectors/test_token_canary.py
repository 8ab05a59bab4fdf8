"""Canary tokens through the real CLI against the simulator: no form of the token is written anywhere.

Each run has its own PREFECT_HOME (Prefect's SQLite database, logs) under the test's temporary
folder, and every byte written there (lake, warehouse, dashboard, scratch, Prefect's home) plus
stdout and stderr is searched for every representation of the token.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from connector_helpers import run_cli

from circleci_analytics.connectors.auth import token_forms
from circleci_analytics.simulator import SimConfig, Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.slow

#: A token whose every encoding differs (quote, quote_plus, repr, JSON, bytes repr all escape
#: something), with a marker that survives any of them.
MARKER = "9f3b2c7d1e5a"
CANARY = f"CCIPAT_canary+/=%'\"\\_{MARKER}"
LOOKBACK_DAYS = "3"


def leaks(token: str, blob: bytes) -> list[str]:
    """The forms of ``token`` (and the bare marker) found in ``blob``."""
    forms = {*token_forms(token), MARKER}
    return sorted(f for f in forms if f.encode("utf-8", "backslashreplace") in blob)


def everything_written(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_args(sim: Simulator, url: str, root: Path) -> list[str]:
    return ["run", "--org-id", sim.org.id, "--org-slug", sim.org.slug, "--api-url", url,
            *[a for p in sim.projects for a in ("--project", p.slug)],
            "--lake", str(root / "lake"), "--warehouse", str(root / "warehouse.duckdb"),
            "--dashboard-dir", str(root / "dashboard"), "--lookback-days", LOOKBACK_DAYS]  # fmt: skip


ENV = {
    "CIRCLECI_ANALYTICS_EXPORT_POLL_SECONDS": "0.2",
    # Let Prefect store what httpx and the connectors log: more places for a leak to show.
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "httpx,circleci_analytics",
}


@pytest.mark.parametrize("given", [CANARY, CANARY + "\n", f" \t{CANARY}\r\n"], ids=["plain", "newline", "padded"])
def test_canary_token_is_used_stripped_and_never_written(tmp_path: Path, given: str) -> None:
    sim = Simulator(SimConfig(seed=7, preset="tiny", token=CANARY, export_processing_seconds=0.5))
    with running_server(sim) as url:
        proc = run_cli(run_args(sim, url, tmp_path), tmp_path, given, **ENV)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out.decode(errors="replace")[-4000:]
    assert b"nightly: success" in proc.stdout
    written = everything_written(tmp_path)
    assert any(name.endswith(".db") for name in written) and any(name.endswith(".parquet") for name in written)
    assert (tmp_path / "warehouse.duckdb").is_file() and (tmp_path / "dashboard" / "index.html").is_file()
    found = {name: leaks(CANARY, blob) for name, blob in {"stdout+stderr": out, **written}.items()}
    assert {name: forms for name, forms in found.items() if forms} == {}


def test_non_ascii_token_exits_2_at_once_and_writes_nothing(tmp_path: Path) -> None:
    token = f"CCIPAT_canary_é_{MARKER}"
    sim = Simulator(SimConfig(seed=7, preset="tiny", token=CANARY))
    with running_server(sim) as url:
        started = time.perf_counter()
        proc = run_cli(run_args(sim, url, tmp_path), tmp_path, token, timeout=120, **ENV)
        wall = time.perf_counter() - started
    assert proc.returncode == 2, (proc.stdout + proc.stderr).decode(errors="replace")
    assert b"the CircleCI token contains a non-ASCII character (position 15)" in proc.stderr
    assert wall < 30
    assert sum(sim.backend.faults.calls(op) for op in ("getProjectBySlug", "getCurrentUser")) == 0
    assert not any((tmp_path / name).exists() for name in ("lake", "warehouse.duckdb", "dashboard"))
    found = {name: leaks(token, blob) for name, blob in {"stdout+stderr": proc.stdout + proc.stderr,
                                                          **everything_written(tmp_path)}.items()}  # fmt: skip
    assert {name: forms for name, forms in found.items() if forms} == {}
