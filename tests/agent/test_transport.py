"""The server as a process: streamable HTTP on loopback only, a warehouse swapped under a
running server, overlapping calls, a runaway query, and the command's own errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_session import console_script, mcp_session, stdio_server

from circleci_analytics.agent import create_server
from circleci_analytics.cli import cli

pytestmark = [pytest.mark.xdist_group("agent"), pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (Linux /proc/net/tcp{,6}, state 0A)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_streamable_http_on_loopback_only(warehouse, q, tmp_path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCLECI_")}
    proc = subprocess.Popen([console_script(), "mcp", "--warehouse", str(warehouse), "--transport", "http",
                             "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _listening_addresses(port):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the HTTP server did not start listening"
            time.sleep(0.1)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        with mcp_session(f"http://127.0.0.1:{port}/mcp") as mcp:
            assert len(mcp.list_tools()) == 10
            got = mcp.answer("credits_breakdown", group_by=["executor"], period="all")
            direct = q(
                "select executor, sum(total_credits) as c from fct_credit_spend_daily group by all order by c desc"
            )
            assert [(r["executor"], r["credits"]) for r in got["rows"]] == [
                (r["executor"], float(r["c"])) for r in direct
            ]
            assert "sql: refused" in mcp.error("run_sql", sql="drop table dim_projects")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"http://127.0.0.1:{port}/mcp" in proc.stderr.read()


def test_a_warehouse_swapped_by_the_nightly_build_is_read_at_the_next_call(warehouse, tmp_path) -> None:
    served = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, served)
    with mcp_session(stdio_server("mcp", "--warehouse", str(served), cwd=tmp_path)) as mcp:
        assert mcp.answer("warehouse_overview")["as_of_date"] == "2026-05-31"
        # What build_warehouse does: build another file, then rename it over the served one.
        tomorrow = tmp_path / ".warehouse.duckdb.building"
        shutil.copy(warehouse, tomorrow)
        with duckdb.connect(str(tomorrow)) as con:
            con.execute("update warehouse_meta set as_of_date = date '2026-06-01'")
            con.execute("delete from fct_flaky_tests")
        os.replace(tomorrow, served)
        assert mcp.answer("warehouse_overview")["as_of_date"] == "2026-06-01"
        assert mcp.answer("top_flaky_tests")["tests"] == 0
        served.unlink()  # between builds, or a wrong path: a clear error, and the server lives on
        assert "warehouse not found" in mcp.error("warehouse_overview")
        shutil.copy(warehouse, served)
        assert mcp.answer("warehouse_overview")["as_of_date"] == "2026-05-31"


def test_overlapping_calls_all_succeed(mcp) -> None:
    sql = "select count(*) as n from range(20000000) as t(i) where i % 7 = 0"

    async def together():
        calls = [mcp.client.call_tool("run_sql", {"sql": sql}) for _ in range(6)]
        calls += [mcp.client.call_tool("warehouse_overview", {}) for _ in range(6)]
        return await asyncio.gather(*calls)

    results = mcp.portal.call(together)
    assert [r.content[0].text for r in results if r.is_error] == []
    assert {r.structured_content["rows"][0][0] for r in results[:6]} == {2857143}


def test_a_runaway_query_is_stopped_and_the_server_keeps_answering(warehouse, tmp_path) -> None:
    # In this process (the SDK's in-memory transport), on a copy: DuckDB shares one instance per
    # path in a process, and the tests' own connection to `warehouse` has other settings.
    copy = shutil.copy(warehouse, tmp_path / "warehouse.duckdb")
    server = create_server(copy, query_timeout_seconds=0.5)

    async def run():
        async with Client(server) as client:
            slow = await client.call_tool("run_sql", {"sql": "select count(*) from range(1000000000000)"})
            after = await client.call_tool("warehouse_overview", {})
            return slow, after

    started = time.monotonic()
    slow, after = asyncio.run(run())
    assert slow.is_error and "ran longer than 0.5 s and was stopped" in slow.content[0].text
    assert time.monotonic() - started < 20
    assert not after.is_error and after.structured_content["as_of_date"] == "2026-05-31"


@pytest.mark.parametrize("make", ["missing", "folder", "corrupt"])
def test_the_command_refuses_an_unreadable_warehouse(tmp_path, make) -> None:
    path = tmp_path / "warehouse.duckdb"
    if make == "folder":
        path.mkdir()
    elif make == "corrupt":
        path.write_bytes(b"not duckdb" * 500)
    result = CliRunner().invoke(cli, ["mcp", "--warehouse", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_readme_client_configuration_starts_the_server(warehouse, tmp_path) -> None:
    (block,) = [b for b in re.findall(r"```json\n(.*?)```", README.read_text(), re.S) if "mcpServers" in b]
    config = json.loads(block)["mcpServers"]["circleci-analytics"]
    assert config["command"].endswith("/.venv/bin/circleci-analytics")
    args = [str(warehouse) if a.endswith("warehouse.duckdb") else a for a in config["args"]]
    with mcp_session(StdioServerParameters(command=console_script(), args=args, cwd=tmp_path)) as mcp:
        assert mcp.answer("warehouse_overview")["as_of_date"] == "2026-05-31"
