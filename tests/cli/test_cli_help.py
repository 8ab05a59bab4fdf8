"""Every command documents itself (an example in --help) and appears in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import command_paths
from click.testing import CliRunner

from circleci_analytics.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = command_paths()


def test_the_command_tree_is_what_we_document() -> None:
    # Guard against the walk finding nothing (which would make the tests below vacuous).
    assert {("demo",), ("run",), ("sql",), ("simulator",), ("simulator", "truth")} <= set(COMMANDS)


def test_top_level_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`circleci-analytics {' '.join(path)} --help` shows no example"
    assert f"circleci-analytics {' '.join(path)}" in result.output  # the example uses this very command


def readme_commands() -> set[tuple[str, ...]]:
    """Command paths mentioned as `circleci-analytics <cmd> [<subcmd>]` in the README."""
    found: set[tuple[str, ...]] = set()
    for m in re.finditer(r"circleci-analytics((?:\s+[a-z][a-z-]*){1,2})", README.read_text()):
        words = tuple(m.group(1).split())
        found.add(words[:1])
        found.add(words)
    return found


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    assert path in readme_commands(), f"README.md never mentions `circleci-analytics {' '.join(path)}`"
