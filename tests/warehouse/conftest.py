"""Shared fixtures for warehouse tests (helpers: warehouse_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The truth -> lake helpers live beside the mart tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    return tmp_path / "lake"
