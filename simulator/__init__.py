"""A ground-truth simulator of CircleCI API v2, served over HTTP or in-process.

    sim = Simulator(SimConfig(seed=7, preset="tiny"))
    app = create_app(sim)                       # ASGI: httpx.ASGITransport(app=app)
    truth = sim.truth()                         # GroundTruth: tables and metrics

See backend.py for the operations and what is not implemented.
"""

from __future__ import annotations

from .app import ROUTES, create_app
from .backend import Backend
from .catalog import Org, Project
from .config import DEFAULT_TOKEN, PRESETS, FamilyLimit, FaultRule, SimConfig
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
    "SimConfig",
    "Simulator",
    "create_app",
    "write_truth",
]


class Simulator:
    """One simulated CircleCI organisation: its backend (state), history and truth."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self.backend = Backend(self.config)
        self.history: History = self.backend.history

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def org(self) -> Org:
        return self.history.catalog.org

    @property
    def projects(self) -> tuple[Project, ...]:
        return self.history.catalog.projects

    def truth(self, **kwargs) -> GroundTruth:
        return GroundTruth(self.history, **kwargs)

    def __repr__(self) -> str:
        return f"Simulator(seed={self.config.seed}, preset={self.config.preset!r}, now={self.history.now.isoformat()})"
