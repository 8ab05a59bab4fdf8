"""CircleCI's own OpenAPI document for API v2, vendored (MIT; see NOTICE beside it).

The simulator's conformance tests read it from here, so a clone of the project needs
nothing beside it to check every operation against CircleCI's published schemas.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SPEC_PATH", "load_spec"]

#: The vendored document (unmodified; its source and SHA-256 are in NOTICE).
SPEC_PATH = Path(__file__).with_name("circleci-openapi.json")


@cache
def load_spec() -> dict[str, Any]:
    """The parsed document (parsed once per process)."""
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))
