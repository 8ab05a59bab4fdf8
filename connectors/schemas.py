"""The Arrow schema of every catalogued stream, derived from ``connectors.catalogue``.

``SCHEMAS["job_tests"]``, or as a constant named after the stream (``schemas.JOB_TESTS``).
"""

from __future__ import annotations

import pyarrow as pa

from circleci_analytics.connectors.catalogue import CATALOGUE

__all__ = ["SCHEMAS"]

SCHEMAS: dict[str, pa.Schema] = {name: stream.schema for name, stream in CATALOGUE.items()}


def __getattr__(name: str) -> pa.Schema:
    try:
        return SCHEMAS[name.lower()]
    except KeyError:
        raise AttributeError(f"no stream {name.lower()!r} in the catalogue") from None
