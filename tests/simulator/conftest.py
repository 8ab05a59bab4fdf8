"""Fixtures for the simulator tests: tiny simulators at a fixed `now`, in-process clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sim_helpers import SyncASGIClient, tiny_config

from circleci_analytics.simulator import OrgSpec, Simulator, create_app

#: The second org of the two-org fixtures: a GitHub-App org (slug circleci/<orgId>).
GITHUB_APP_ORG = OrgSpec("acme-labs", vcs_type="circleci", n_projects=2)


@pytest.fixture(scope="session")
def sim() -> Simulator:
    """A shared, read-only tiny simulator (no faults, no rate limits). Do not mutate it:
    tests that create exports or count calls build their own with `make_sim`."""
    return Simulator(tiny_config())


@pytest.fixture(scope="session")
def truth(sim: Simulator):
    return sim.truth()


@pytest.fixture(scope="session")
def client(sim: Simulator) -> Iterator[SyncASGIClient]:
    with SyncASGIClient(create_app(sim), headers={"Circle-Token": sim.token}) as c:
        yield c


@pytest.fixture(scope="session")
def sim2() -> Simulator:
    """A shared, read-only tiny simulator with two orgs: the GitHub org of `sim` (same
    history) and a GitHub-App org with two projects."""
    return Simulator(tiny_config(extra_orgs=(GITHUB_APP_ORG,)))


@pytest.fixture(scope="session")
def client2(sim2: Simulator) -> Iterator[SyncASGIClient]:
    with SyncASGIClient(create_app(sim2), headers={"Circle-Token": sim2.token}) as c:
        yield c


@pytest.fixture
def make_sim() -> Callable[..., Simulator]:
    def factory(**changes: Any) -> Simulator:
        return Simulator(tiny_config(**changes))

    return factory


@pytest.fixture
def make_client() -> Iterator[Callable[..., SyncASGIClient]]:
    """`make_client(sim, auth=True, **httpx kwargs)`: a client for `sim`, closed after the test."""
    made: list[SyncASGIClient] = []

    def factory(sim: Simulator, auth: bool = True, **kwargs: Any) -> SyncASGIClient:
        headers = {"Circle-Token": sim.token} if auth else {}
        c = SyncASGIClient(create_app(sim), headers=headers, **kwargs)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()
