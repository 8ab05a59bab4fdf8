"""Building request paths: project slugs, workflow names and other path segments.

Rules (see ``circleci-api.md`` section 1, "Slugs"):

* A project slug (``gh/org/repo``, ``bb/org/repo`` or the opaque
  ``circleci/<orgId>/<projectId>``) has three parts; their content is not
  interpreted. It is split on ``/`` only to percent-encode each component; the
  ``/`` between components is kept. Input is taken as *unencoded* text (a literal
  ``%`` becomes ``%25``).
* A workflow name (or any other free-text value) is ONE path segment:
  ``quote(name, safe="")``, so ``/`` becomes ``%2F``, ``&`` ``%26``, space ``%20``.
* No segment may be empty, ``.`` or ``..``, nor percent-encode one of those
  (``%2e%2e``, even twice): HTTP clients and servers resolve dot segments, so
  ``gh/x/../../../me`` would otherwise request ``/me``. ``InvalidPath`` names the
  value, before any request is sent.

The resulting strings are already percent-encoded; the client sends them as the
raw path so ``%2F`` reaches the server unchanged.
"""

from __future__ import annotations

from string import Formatter
from urllib.parse import quote, unquote

from circleci_analytics.connectors.errors import InvalidPath

__all__ = [
    "check_path",
    "check_segment",
    "encode_project_slug",
    "encode_segment",
    "render_path",
    "validate_project_slug",
]

_SLUG_HELP = "a project slug is <vcs>/<org>/<repo>, e.g. gh/acme/api or circleci/<org-id>/<project-id>"


def _decoded(segment: str) -> str:
    for _ in range(4):  # "%252e" is "%2e" is "."
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    return segment


def _problem(segment: str) -> str | None:
    """Why ``segment`` cannot be a path segment, or None if it can."""
    decoded = _decoded(segment)
    if not decoded.strip():
        return "is empty"
    if decoded in (".", ".."):
        return f"would be read as the path segment {decoded!r}, which changes the request's path"
    return None


def check_segment(value: object, what: str) -> str:
    """``str(value)`` if it is a usable path segment, else ``InvalidPath`` naming ``what``."""
    text = str(value)
    problem = _problem(text)
    if problem is not None:
        raise InvalidPath(f"{what} {text!r} {problem}")
    return text


def check_path(path: str) -> str:
    """``path`` if none of its segments is (or percent-encodes) ``.`` or ``..``, else ``InvalidPath``.

    The client's last line of defence for paths built without ``render_path``.
    """
    for segment in path.split("?", 1)[0].split("/"):
        if _decoded(segment) in (".", ".."):
            raise InvalidPath(f"API path {path!r}: segment {segment!r} {_problem(segment)}")
    return path


def encode_segment(value: object) -> str:
    """Percent-encode ``value`` as a single path segment (``/`` included)."""
    return quote(str(value), safe="")


def _slug_parts(slug: object, what: str) -> list[str]:
    if not isinstance(slug, str) or not slug.strip().strip("/"):
        raise InvalidPath(f"{what} {slug!r} is empty")
    parts = slug.strip().strip("/").split("/")
    for i, part in enumerate(parts, start=1):
        problem = _problem(part)
        if problem is not None:
            raise InvalidPath(f"{what} {slug!r}: part {i} ({part!r}) {problem}")
    return parts


def validate_project_slug(slug: str) -> str:
    """``slug`` without surrounding whitespace and slashes, if it is a usable project slug.

    Raises ``InvalidPath`` naming the slug when it does not have three parts or one part is
    empty, ``.`` or ``..`` (also percent-encoded).
    """
    parts = _slug_parts(slug, "project slug")
    if len(parts) != 3:
        raise InvalidPath(f"project slug {slug!r} has {len(parts)} part(s); {_SLUG_HELP}")
    return "/".join(parts)


def encode_project_slug(slug: str, what: str = "slug") -> str:
    """Percent-encode each component of a project (or org) slug, keeping the ``/`` separators."""
    return "/".join(quote(part, safe="") for part in _slug_parts(slug, what))


def render_path(template: str, **values: object) -> str:
    """Fill ``template`` (e.g. ``/insights/{project_slug}/workflows/{workflow_name}``).

    ``project_slug`` / ``org_slug`` keep their ``/`` separators; every other field is
    encoded as one segment. Missing fields raise ``KeyError`` naming the field; a value
    that would change the path raises ``InvalidPath`` naming it.
    """
    encoded: dict[str, str] = {}
    for _, field, _, _ in Formatter().parse(template):
        if field is None or field in encoded:
            continue
        if field not in values:
            raise KeyError(f"path template {template!r} needs {field!r}")
        value = values[field]
        if field == "project_slug":
            encoded[field] = encode_project_slug(validate_project_slug(str(value)))
        elif field == "org_slug":
            encoded[field] = encode_project_slug(str(value), "org slug")
        else:
            encoded[field] = encode_segment(check_segment(value, field.replace("_", " ")))
    return template.format(**encoded)
