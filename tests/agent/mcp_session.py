"""The `mcp` SDK's own client, driven from synchronous tests: `Client` runs on an anyio
blocking portal (an event loop in a thread), entered and left in one task."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult

#: In the server's environment: it must never come back in an answer.
TOKEN_CANARY = "CCIPAT_agentcanary_0123456789abcdef0123456789abcdef01234567"


def console_script() -> str:
    """The installed `circleci-analytics` script beside this Python (what an MCP client's `command` runs)."""
    found = shutil.which("circleci-analytics", path=str(Path(sys.executable).parent)) or shutil.which(
        "circleci-analytics"
    )
    assert found, "the circleci-analytics console script is not installed (make env)"
    return found


def stdio_server(*args: str, cwd: Path, env: dict[str, str] | None = None) -> StdioServerParameters:
    """`circleci-analytics <args>` as an MCP client launches it (a clean environment plus `env`)."""
    return StdioServerParameters(command=console_script(), args=list(args), cwd=cwd, env=env)


class McpSession:
    """One connected client: call tools and read resources synchronously."""

    def __init__(self, portal: BlockingPortal, client: Client):
        self.portal = portal
        self.client = client

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        return self.portal.call(self.client.call_tool, tool, arguments or {})

    def answer(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The structured answer of a call that must succeed; it is JSON and the text says the same."""
        result = self.call(tool, arguments)
        assert not result.is_error, result.content[0].text
        assert json.loads(result.content[0].text) == result.structured_content
        return result.structured_content

    def error(self, tool: str, **arguments: Any) -> str:
        """The message of a call that must fail with a tool error."""
        result = self.call(tool, arguments)
        assert result.is_error, f"{tool}({arguments}) succeeded: {result.structured_content}"
        return result.content[0].text

    def list_tools(self):
        return self.portal.call(self.client.list_tools).tools

    def read_resource(self, uri: str) -> str:
        return self.portal.call(self.client.read_resource, uri).contents[0].text


@contextmanager
def mcp_session(server: StdioServerParameters | str) -> Iterator[McpSession]:
    """A session with a server launched over stdio (`StdioServerParameters`) or at a streamable-HTTP URL."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(server)) as client:
        yield McpSession(portal, client)
