"""Building request paths: project slugs, workflow names and other path segments.

Rules (see ``circleci-api.md`` section 1, "Slugs"):

* A project slug (``gh/org/repo``, ``bb/org/repo`` or the opaque
  ``circleci/<orgId>/<projectId>``) is never parsed or validated. It is split on
  ``/`` only to percent-encode each component; the ``/`` between components is
  kept. Input is taken as *unencoded* text (a literal ``%`` becomes ``%25``).
* A workflow name (or any other free-text value) is ONE path segment:
  ``quote(name, safe="")``, so ``/`` becomes ``%2F``, ``&`` ``%26``, space ``%20``.

The resulting strings are already percent-encoded; the client sends them as the
raw path so ``%2F`` reaches the server unchanged.
"""

from __future__ import annotations

from string import Formatter
from urllib.parse import quote

__all__ = ["encode_project_slug", "encode_segment", "render_path"]


def encode_segment(value: object) -> str:
    """Percent-encode ``value`` as a single path segment (``/`` included)."""
    return quote(str(value), safe="")


def encode_project_slug(slug: str) -> str:
    """Percent-encode each component of a project (or org) slug, keeping the ``/`` separators."""
    if not slug or not slug.strip("/"):
        raise ValueError("project slug must not be empty")
    return "/".join(quote(part, safe="") for part in slug.strip("/").split("/"))


_SLUG_FIELDS = frozenset({"project_slug", "org_slug"})


def render_path(template: str, **values: object) -> str:
    """Fill ``template`` (e.g. ``/insights/{project_slug}/workflows/{workflow_name}``).

    ``project_slug`` / ``org_slug`` keep their ``/`` separators; every other field is
    encoded as one segment. Missing fields raise ``KeyError`` naming the field.
    """
    encoded: dict[str, str] = {}
    for _, field, _, _ in Formatter().parse(template):
        if field is None or field in encoded:
            continue
        if field not in values:
            raise KeyError(f"path template {template!r} needs {field!r}")
        value = values[field]
        encoded[field] = (
            encode_project_slug(str(value)) if field in _SLUG_FIELDS else encode_segment(value)
        )
    return template.format(**encoded)
