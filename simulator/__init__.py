"""A ground-truth simulator of CircleCI API v2, served over HTTP or in-process.

    sim = Simulator(SimConfig(seed=7, preset="tiny"))
    app = create_app(sim)                       # ASGI: httpx.ASGITransport(app=app)
    truth = sim.truth()                         # GroundTruth: tables and metrics

Several orgs (a GitHub org and a GitHub-App org), each with its own history:

    sim = Simulator(SimConfig(seed=7, preset="tiny", extra_orgs=(OrgSpec("acme-labs"),)))
    sim.orgs                                    # (gh/acme-robotics, circleci/<orgId>)
    sim.truth(org=sim.orgs[1])                  # one org's truth; sim.truth(): every org's

See backend.py for the operations and what is not implemented.
"""

from __future__ import annotations

from .app import ROUTES, create_app
from .backend import Backend
from .catalog import Org, Project
from .config import DEFAULT_TOKEN, PRESETS, FamilyLimit, FaultRule, OrgSpec, SimConfig
from .history import History
from .truth import GroundTruth, write_truth

__all__ = [
    "DEFAULT_TOKEN",
    "PRESETS",
    "ROUTES",
    "FamilyLimit",
    "FaultRule",
    "GroundTruth",
    "History",
    "Org",
    "OrgSpec",
    "Project",
    "SimConfig",
    "Simulator",
    "create_app",
    "write_truth",
]


class Simulator:
    """The simulated CircleCI organisations: backend (state), history and truth."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self.backend = Backend(self.config)
        self.history: History = self.backend.history

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def org(self) -> Org:
        """The first org (the only one unless `SimConfig.extra_orgs` is set)."""
        return self.history.catalog.org

    @property
    def orgs(self) -> tuple[Org, ...]:
        """Every org, in /me/collaborations order (the first is `org`)."""
        return self.history.catalog.orgs

    @property
    def projects(self) -> tuple[Project, ...]:
        """Every org's projects (one org: that org's)."""
        return self.history.catalog.projects

    def projects_of(self, org: Org | str) -> tuple[Project, ...]:
        """One org's projects; `org` may be an `Org`, its id or its slug."""
        return self.history.catalog.projects_of(self.history.catalog.resolve_org(org))

    def truth(self, **kwargs) -> GroundTruth:
        """`GroundTruth(history, **kwargs)`: pass `org=` (an Org, id or slug) for one org's."""
        return GroundTruth(self.history, **kwargs)

    def __repr__(self) -> str:
        return f"Simulator(seed={self.config.seed}, preset={self.config.preset!r}, now={self.history.now.isoformat()})"
