"""Serve a rendered dashboard directory over HTTP (`circleci-analytics dashboard --serve`).

The pages work from disk too; serving only helps when a browser blocks file:// or the
dashboard lives on another machine. Static files only, loopback by default.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["DashboardServer", "serve_dashboard", "start_dashboard_server"]

DEFAULT_PORT = 8050


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@dataclass
class DashboardServer:
    """A running background server; `close()` stops it."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return _index_url(self.httpd)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _server(out_dir: str | Path, host: str, port: int) -> ThreadingHTTPServer:
    root = Path(out_dir)
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"no dashboard in {root} (render it first: circleci-analytics dashboard)")
    handler = functools.partial(_QuietHandler, directory=str(root))
    return ThreadingHTTPServer((host, port), handler)


def _index_url(httpd: ThreadingHTTPServer) -> str:
    host, port = httpd.server_address[:2]
    if isinstance(host, bytes):  # typeshed allows bytes; an inet server's host is a str
        host = host.decode()
    return f"http://{host}:{port}/index.html"


def start_dashboard_server(out_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> DashboardServer:
    """Serve `out_dir` in a background thread (port 0: any free port); for tests and embedding."""
    httpd = _server(out_dir, host, port)
    thread = threading.Thread(target=httpd.serve_forever, name="dashboard-server", daemon=True)
    thread.start()
    return DashboardServer(httpd, thread)


def serve_dashboard(out_dir: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                    *, on_ready=None) -> None:  # fmt: skip
    """Serve `out_dir` until interrupted (Ctrl-C). `on_ready(url)` is called once listening."""
    httpd = _server(out_dir, host, port)
    if on_ready is not None:
        on_ready(_index_url(httpd))
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
