"""Slugs and path segments are validated before any request; a project answer must look like a project."""

from __future__ import annotations

import httpx
import pytest
from connector_helpers import run

from circleci_analytics.connectors import (
    DataError,
    InvalidPath,
    extract_projects,
    render_path,
    validate_project_slug,
)


@pytest.mark.parametrize(
    ("slug", "problem"),
    [
        ("gh/x/../../../me", "part 3 ('..') would be read as the path segment '..'"),
        ("gh/x/.", "part 3 ('.') would be read as the path segment '.'"),
        ("gh/./x", "part 2 ('.') would be read"),
        ("gh/x/%2e%2E", "part 3 ('%2e%2E') would be read as the path segment '..'"),
        ("gh/x/.%2e", "would be read as the path segment '..'"),
        ("gh/x/%252e%252e", "would be read as the path segment '..'"),  # encoded twice
        ("gh//x", "part 2 ('') is empty"),
        ("gh/%20/x", "part 2 ('%20') is empty"),
        ("", "is empty"),
        (" / ", "is empty"),
        ("gh/acme", "has 2 part(s); a project slug is <vcs>/<org>/<repo>"),
        ("gh/acme/api/extra", "has 4 part(s)"),
    ],
)
def test_bad_project_slugs_are_refused_naming_the_slug(slug: str, problem: str) -> None:
    with pytest.raises(InvalidPath) as info:
        validate_project_slug(slug)
    assert f"project slug {slug!r}" in str(info.value) and problem in str(info.value)
    assert isinstance(info.value, ValueError)  # what the settings layer (pydantic) turns into a message
    with pytest.raises(InvalidPath):
        render_path("/project/{project_slug}", project_slug=slug)


@pytest.mark.parametrize(
    "slug", ["gh/acme/api", " gh/acme/api/ ", "circleci/43G3kM5RtfFE7v5sa4nWAU/44n9pujWcTnVZ2b5S8Fnat", "gh/a.b/..x"]
)
def test_good_project_slugs_pass(slug: str) -> None:
    assert validate_project_slug(slug) == slug.strip().strip("/")


@pytest.mark.parametrize("field", ["workflow_name", "job_number", "org_id", "workflow_id"])
@pytest.mark.parametrize("value", ["..", ".", "", "%2e%2e"])
def test_every_rendered_segment_is_checked(field: str, value: str) -> None:
    with pytest.raises(InvalidPath, match=field.replace("_", " ")):
        render_path(f"/x/{{{field}}}/y", **{field: value})


def test_org_slug_segments_are_checked() -> None:
    assert render_path("/insights/{org_slug}/summary", org_slug="gh/acme") == "/insights/gh/acme/summary"
    with pytest.raises(InvalidPath, match="org slug 'gh/..'"):
        render_path("/insights/{org_slug}/summary", org_slug="gh/..")


def test_workflow_names_with_dots_inside_are_fine() -> None:
    path = render_path(
        "/insights/{project_slug}/workflows/{workflow_name}", project_slug="gh/a/b", workflow_name="..a/b"
    )
    assert path == "/insights/gh/a/b/workflows/..a%2Fb"


def test_the_client_refuses_a_dot_segment_path_before_sending(make_client) -> None:
    calls: list[httpx.Request] = []

    async def go() -> None:
        async with make_client(lambda r: calls.append(r) or httpx.Response(200, json={})) as client:
            await client.get_json("/project/gh/x/%2E%2E/%2e%2e/%2e%2e/me")

    with pytest.raises(InvalidPath, match="segment '%2E%2E'"):
        run(go())
    assert calls == []


def test_a_dot_dot_project_slug_never_reaches_the_server(make_client) -> None:
    calls: list[httpx.Request] = []

    async def go() -> None:
        async with make_client(lambda r: calls.append(r) or httpx.Response(200, json={})) as client:
            await extract_projects(client, ["gh/acme/api", "gh/x/../../../me"])

    with pytest.raises(InvalidPath, match=r"project slug 'gh/x/\.\./\.\./\.\./me'"):
        run(go())
    assert calls == []  # not even the good slug: all are checked first


def test_an_answer_that_is_not_a_project_is_a_data_error_naming_the_slug(make_client) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)  # what GET /me answers: a user, not a project
        return httpx.Response(200, json={"id": "u-1", "login": "dev-0", "name": "Dev 0", "avatar_url": None})

    async def go() -> None:
        async with make_client(handler) as client:
            await extract_projects(client, ["gh/acme/api"])

    with pytest.raises(DataError) as info:
        run(go())
    message = str(info.value)
    assert "project 'gh/acme/api' did not answer with a project" in message
    assert "no slug, organization_id, organization_name, organization_slug" in message
    assert len(calls) == 1  # a data error is not retried


@pytest.mark.slow
def test_cli_run_refuses_a_dot_dot_slug_before_any_request(tmp_path) -> None:
    from connector_helpers import run_cli

    from circleci_analytics.simulator import SimConfig, Simulator
    from circleci_analytics.simulator.server import running_server

    sim = Simulator(SimConfig(seed=7, preset="tiny"))
    slug = "gh/x/../../../me"
    with running_server(sim) as url:
        proc = run_cli(["run", "--org-id", sim.org.id, "--org-slug", sim.org.slug, "--api-url", url,
                        "--project", sim.projects[0].slug, "--project", slug, "--lake", str(tmp_path / "lake")],
                       tmp_path, sim.token, timeout=120)  # fmt: skip
    stderr = proc.stderr.decode()
    assert proc.returncode == 2, stderr
    assert f"project slug '{slug}'" in stderr and "would be read as the path segment '..'" in stderr
    assert "Traceback" not in stderr
    assert sim.backend.faults.calls("getCurrentUser") == 0
    assert sum(sim.backend.faults.calls(op) for op in ("getProjectBySlug", "createUsageExport")) == 0
    assert not (tmp_path / "lake").exists()
