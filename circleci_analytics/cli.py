"""The `circleci-analytics` command line: parses arguments, calls library code, maps errors
to messages and exit codes (0 ok, 1 pipeline failure, 2 user error)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

# Prefect's ephemeral server: first start on a fresh PREFECT_HOME is slow, and there is no
# internet for telemetry. Set before anything imports prefect.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

__all__ = ["main", "cli"]


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-06-01T12:00:00Z)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="circleci-analytics")
def cli() -> None:
    """CircleCI analytics: credits, flaky tests and MTTR from the CircleCI API into
    Parquet, DuckDB and a dashboard.

    \b
    Example:
      circleci-analytics demo            # whole pipeline on the built-in simulator
    """


# -- simulator -------------------------------------------------------------------------------
@cli.group()
def simulator() -> None:
    """The built-in CircleCI API simulator (ground truth for tests and the demo)."""


def _sim_options(f):
    f = click.option("--seed", type=int, default=42, show_default=True, help="History seed.")(f)
    f = click.option("--scale", "preset", type=click.Choice(["tiny", "demo", "large"]), default="demo",
                     show_default=True, help="Size of the simulated org.")(f)  # fmt: skip
    f = click.option("--now", default=None, help="Simulated current time (ISO 8601); default: real now.")(f)
    return f


@simulator.command("serve")
@_sim_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Divide rate-limit periods (3600: '10 per hour' becomes 10 per second).")  # fmt: skip
@click.option("--latency", type=float, default=0.0, show_default=True, help="Injected seconds per API call.")
def simulator_serve(seed: int, preset: str, now: str | None, host: str, port: int, time_scale: float, latency: float) -> None:
    """Serve the simulated CircleCI API v2 on loopback.

    \b
    Example:
      circleci-analytics simulator serve --port 8765 --seed 7 --scale demo
      curl -H "Circle-Token: $(circleci-analytics simulator token)" \\
           http://127.0.0.1:8765/api/v2/me
    """
    from simulator import SimConfig, Simulator
    from simulator.server import serve

    sim = Simulator(SimConfig(seed=seed, preset=preset, now=_parse_now(now), time_scale=time_scale, latency_seconds=latency))
    click.echo(f"CircleCI simulator: http://{host}:{port}/api/v2  org={sim.org.slug} ({sim.org.id})  "
               f"projects={len(sim.projects)}  Ctrl-C to stop", err=True)  # fmt: skip
    serve(sim, host=host, port=port)


@simulator.command("token")
def simulator_token() -> None:
    """Print the personal API token the simulator accepts.

    \b
    Example:
      export CIRCLECI_TOKEN=$(circleci-analytics simulator token)
    """
    from simulator import DEFAULT_TOKEN

    click.echo(DEFAULT_TOKEN)


@simulator.command("truth")
@_sim_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data/truth", show_default=True)
def simulator_truth(seed: int, preset: str, now: str | None, out_dir: str) -> None:
    """Write the simulator's ground truth: tables (Parquet) and metrics (JSON).

    \b
    Example:
      circleci-analytics simulator truth --scale tiny --seed 7 --now 2026-06-01T12:00:00Z --out /tmp/truth
    """
    from simulator import SimConfig, Simulator, write_truth

    sim = Simulator(SimConfig(seed=seed, preset=preset, now=_parse_now(now)))
    counts = write_truth(sim.history, out_dir)
    for name, n in counts.items():
        click.echo(f"{name:>14}: {n}")
    click.echo(f"written to {Path(out_dir).resolve()}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
