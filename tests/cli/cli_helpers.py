"""Helpers for the CLI tests: run `main()` in-process (exit code and output), walk commands."""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal

import click
import pytest

SQL_ROWS = [
    ("gh/acme/web", Decimal("12.50"), date(2026, 5, 30)),
    ("gh/acme/api", Decimal("7.25"), date(2026, 5, 31)),
    ('circleci/O/P, "quoted"', Decimal("0.01"), date(2026, 5, 31)),
]


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`circleci-analytics <args>` through `main()` (the console script): exit code, stdout, stderr."""
    from circleci_analytics.cli import main

    monkeypatch.setattr(sys, "argv", ["circleci-analytics", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1 if code else 0), out, err


def command_paths(group: click.Group | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand, as paths like ("simulator", "truth")."""
    from circleci_analytics.cli import cli

    group = group or cli
    out: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += command_paths(cmd, (*prefix, name))
    return out
