"""Serve the simulator on loopback: in the foreground (CLI) or in a thread (tests, demo)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

import uvicorn

from . import Simulator, create_app

__all__ = ["serve", "running_server", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve until interrupted."""
    uvicorn.run(create_app(sim), host=host, port=port, log_level=log_level)


@contextlib.contextmanager
def running_server(sim: Simulator, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """A real HTTP server on loopback in a background thread; yields its API base URL."""
    port = port or free_port(host)
    config = uvicorn.Config(create_app(sim), host=host, port=port, log_level="error", lifespan="off")
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
