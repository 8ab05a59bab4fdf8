"""`circleci-analytics serve`: the nightly flow on its cron schedule, on one machine.

Prefect schedules runs only with a real server (its scheduler service); `flow.serve` against
the ephemeral in-process API never starts anything. So, unless `$PREFECT_API_URL` names a
server to use, `serve` starts and supervises a persistent local Prefect server on loopback,
its database and home in `prefect_dir` (restarted if it dies), and serves the nightly
deployment against it (re-registered if the runner gives up while the server was down).

One `serve` per data folder: an exclusive `flock` on `<prefect_dir>/serve.lock`, held for
the life of the process (the kernel drops it if the process dies, so it never goes stale),
makes a second `serve` refuse with a message naming the first. Refusing rather than joining
keeps exactly one runner and one set of settings per deployment: two runners with different
settings would silently overwrite each other's deployment parameters.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from circleci_analytics.settings import Settings, SettingsError

__all__ = ["AlreadyServing", "LocalPrefectServer", "serve_lock", "serve_nightly"]

DEPLOYMENT_NAME = "circleci-nightly"
LOCK_FILE = "serve.lock"
STARTUP_TIMEOUT = 240.0  # a first start migrates a new database; slow on a busy machine


class AlreadyServing(SettingsError):
    """Another `serve` holds this data folder."""


@contextmanager
def serve_lock(prefect_dir: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Hold `<prefect_dir>/serve.lock` (exclusive, non-blocking); yields a function that
    records facts about this holder (pid, API URL) for the message a second `serve` prints."""
    prefect_dir.mkdir(parents=True, exist_ok=True)
    path = prefect_dir / LOCK_FILE
    handle: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole serve
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            holder = {}
        handle.close()
        raise AlreadyServing(
            f"another `circleci-analytics serve` (pid {holder.get('pid', '?')}, since {holder.get('started_at', '?')}, "
            f"Prefect API {holder.get('api_url', '?')}) is already serving {prefect_dir}; it schedules the nightly "
            "runs, so this one would only double them: stop it first, or use it"
        ) from None

    known = {"pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}

    def record(facts: dict[str, Any]) -> None:
        known.update(facts)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(known))
        handle.flush()

    record({})
    try:
        yield record
    finally:
        handle.close()  # releases the lock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class LocalPrefectServer:
    """A persistent Prefect server (API, UI, scheduler) on loopback, restarted if it dies.

    Its database is `<home>/prefect.db`, its log `<home>/server.log`.
    """

    def __init__(self, home: Path, port: int = 0, echo: Callable[[str], None] = print,
                 on_spawn: Callable[[int], None] = lambda pid: None) -> None:  # fmt: skip
        self.home = home.resolve()
        self.port = port or _free_port()
        self.echo, self.on_spawn = echo, on_spawn
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def environment(self) -> dict[str, str]:
        """What this server and its clients (the runner, flow-run processes) run with."""
        return {"PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip

    def _spawn(self) -> None:
        env = {**os.environ, **self.environment()}
        env.pop("PREFECT_API_URL")  # the server itself serves, it has no API to call
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "circleci_analytics.prefect_server", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self.on_spawn(self._proc.pid)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if api_healthy(self.api_url):
                return
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with code {self._proc.returncode} while starting "
                                   f"(see {self.home / 'server.log'})")  # fmt: skip
            time.sleep(0.5)
        if not self._stopping.is_set():
            raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s "
                               f"(see {self.home / 'server.log'})")  # fmt: skip

    def start(self, timeout: float = STARTUP_TIMEOUT) -> str:
        """Start the server and its watcher; returns the API URL once it answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._spawn()
        self._wait_healthy(timeout)
        self._watcher = threading.Thread(target=self._watch, name="prefect-server-watcher", daemon=True)
        self._watcher.start()
        return self.api_url

    def _watch(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            self.echo(f"the Prefect server exited (code {code}); restarting it on {self.api_url}")
            time.sleep(delay)
            try:
                self._spawn()
                self._wait_healthy(STARTUP_TIMEOUT)
                self.restarts += 1
                self.echo(f"the Prefect server is back on {self.api_url}")
                delay = 1.0
            except RuntimeError as e:
                self.echo(f"restarting the Prefect server failed: {e}; trying again")
                delay = min(delay * 2, 60.0)

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve_deployment(settings: Settings, echo: Callable[[str], None], api_url: str) -> None:
    """`nightly.serve` until stopped; re-registered if the runner gives up on an unreachable API."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from circleci_analytics.flows import nightly

    # The token is excluded from the dump: each run builds its settings from these values and
    # reads the token from $CIRCLECI_TOKEN, which the runner's flow-run processes inherit.
    parameters = {"settings": settings.model_dump(mode="json")}
    while True:
        try:
            nightly.serve(
                name=DEPLOYMENT_NAME, schedule=Cron(settings.schedule_cron, timezone=settings.timezone),
                parameters=parameters, limit=1, global_limit=1, entrypoint_type=EntrypointType.MODULE_PATH,
                print_starting_message=False,
            )  # fmt: skip
            return  # stopped (Ctrl-C or SIGTERM)
        except KeyboardInterrupt:
            return
        except Exception as e:  # the runner gave up (e.g. the API was down for three polls)
            echo(f"the runner stopped ({type(e).__name__}: {e}); serving again once the Prefect API answers")
            while not api_healthy(api_url):
                time.sleep(2)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve_nightly(settings: Settings, echo: Callable[[str], None] = print) -> None:
    """Serve the nightly deployment on `settings.schedule_cron` until interrupted."""
    home = Path(settings.prefect_dir).expanduser()
    with serve_lock(home) as record:
        external = os.environ.get("PREFECT_API_URL")
        server = None
        if external:
            api_url = external.rstrip("/")
            if not api_healthy(api_url, timeout=10):
                raise SettingsError(f"PREFECT_API_URL={external} does not answer; start that server, or unset "
                                    "PREFECT_API_URL to let `serve` run its own")  # fmt: skip
        else:
            server = LocalPrefectServer(
                home, settings.prefect_port, echo, on_spawn=lambda pid: record({"server_pid": pid})
            )
            api_url = server.api_url
            echo(f"starting a local Prefect server (database {home.resolve() / 'prefect.db'}) ...")
        record({"api_url": api_url})
        signal.signal(signal.SIGTERM, _interrupt)  # ends the serve like Ctrl-C, so the server is stopped too
        try:
            if server is not None:
                server.start()
                os.environ.update(server.environment())  # for this process and the flow runs it starts
            echo(f"serving the nightly flow on '{settings.schedule_cron}' ({settings.timezone}); Prefect API "
                 f"{api_url}, UI {api_url.removesuffix('/api')}; Ctrl-C to stop")  # fmt: skip
            _serve_deployment(settings, echo, api_url)
        except KeyboardInterrupt:
            pass
        finally:
            if server is not None:
                server.stop()
