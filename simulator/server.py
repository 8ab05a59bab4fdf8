"""Serve the simulator on loopback: in the foreground (CLI) or in a thread (tests, demo)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from . import Simulator, create_app
from .app import SimulatedDrop

__all__ = ["serve", "running_server", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for every connection dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedDrop)


def _quiet_drops() -> None:
    log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in log.filters):
        log.addFilter(_QuietDrops())


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve until interrupted."""
    _quiet_drops()
    uvicorn.run(create_app(sim), host=host, port=port, log_level=log_level)


@contextlib.contextmanager
def running_server(sim: Simulator, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """A real HTTP server on loopback in a background thread; yields its API base URL."""
    port = port or free_port(host)
    _quiet_drops()
    # A long keep-alive: clients reuse pooled connections without racing the server's close.
    config = uvicorn.Config(create_app(sim), host=host, port=port, log_level="error", lifespan="off",
                            timeout_keep_alive=60)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"circleci-sim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"simulator did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/api/v2"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
