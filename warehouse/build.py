"""Build the DuckDB warehouse from the lake by running the dbt project in ``sql/``.

`build_warehouse` runs dbt in-process (``dbtRunner``) against a new file beside the target,
``.<name>.<pid>.<id>.building``, and renames it over the warehouse only when every model
built and no data or unit test failed, so a crash, a broken model or a failing test leaves
the previous warehouse intact and usable:

1. **the file** - a copy of yesterday's warehouse, so incremental models (see
   ``sql/README.md``) only rebuild their recent days; a new file on the first build, with
   ``full_refresh`` (after a model definition changed) or when the copy is not wanted.
   Builds left behind by a crashed process are removed first.
2. **sources** - every lake table is a relation in schema ``lake``: for a local lake dbt's
   on-run-start hook ``stage_lake_sources`` makes it a view over the table's Parquet files;
   an object-store lake (DuckDB's httpfs is not available offline) is copied here, through
   pyarrow, into tables. A table with no files yet is an empty table of its schema.
3. **dbt** - ``dbt build`` of the seeds and models, then ``dbt test`` (data tests, unit
   tests), then ``dbt docs generate --static`` (one offline HTML file, written beside the
   warehouse as `docs_path`).
4. **swap** - ``os.replace`` of the new file over the warehouse.

The file is written in DuckDB storage version `storage_version` (default ``v1.4.0``) so
DuckDB 1.4 and 1.5, which BI tools bundle, can open it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import yaml

from circleci_analytics.warehouse.lake import Lake
from circleci_analytics.warehouse.tables import TABLES

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_HEADROOM",
    "DEFAULT_PRICE_PER_CREDIT",
    "DEFAULT_SQL_DIR",
    "DEFAULT_STORAGE_VERSION",
    "BuildError",
    "BuildResult",
    "DataTestError",
    "LakeFileError",
    "ModelError",
    "ModelRun",
    "TestRun",
    "build_warehouse",
    "docs_path",
    "remove_stale_builds",
]

DEFAULT_DB_PATH = "./data/warehouse.duckdb"
#: The oldest DuckDB storage format the warehouse is written in: 1.4 and 1.5 read it.
DEFAULT_STORAGE_VERSION = "v1.4.0"
DEFAULT_SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
#: The dbt project's vars (``sql/dbt_project.yml``): the build parameters' defaults are declared
#: there once, so `cd sql && dbt build` and the pipeline agree.
_PROJECT_VARS: dict[str, Any] = yaml.safe_load((DEFAULT_SQL_DIR / "dbt_project.yml").read_text())["vars"]
DEFAULT_PRICE_PER_CREDIT = Decimal(str(_PROJECT_VARS["price_per_credit"]))
DEFAULT_HEADROOM = float(_PROJECT_VARS["headroom"])
#: The vars that shape the profile (see sql/profiles.yml); the others only reach compiled SQL.
_PARSE_VARS = ("lake_root", "storage_version", "memory_limit", "threads")
#: Lake tables whose partitions feed the incremental models (their date partitions say
#: which days changed since the previous build).
INCREMENTAL_INPUTS = ("usage_job_runs", "job_tests", "workflow_runs")
#: Slack for clock skew between the machine that lands files and this one (object stores;
#: a local lake's files are stamped by this machine's clock).
MTIME_SLACK = timedelta(minutes=5)
_PARTITION_DATE = re.compile(r"/(?:date|snapshot_date)=(\d{4}-\d{2}-\d{2})/")
_BUILDING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<id>[0-9a-f]{8})\.building(\.wal)?$")


class BuildError(Exception):
    """The warehouse could not be built; the previous warehouse file is untouched."""


class ModelError(BuildError):
    """A model (or seed) failed: the message names it, its file and DuckDB's error."""


class LakeFileError(BuildError):
    """A lake file could not be read (truncated or corrupt Parquet): the message names it."""


class DataTestError(BuildError):
    """Data or unit tests failed; `result` holds every test run with its failing rows."""

    def __init__(self, message: str, result: BuildResult):
        super().__init__(message)
        self.result = result


@dataclass
class ModelRun:
    name: str
    layer: str
    materialization: str
    seconds: float
    rows: int | None = None
    status: str = "success"


@dataclass
class TestRun:
    name: str
    model: str | None
    severity: str
    failing_rows: int  # -1: the test itself errored
    seconds: float
    sample: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "data"  # or "unit"

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


@dataclass
class BuildResult:
    """What `build_warehouse` did: models built, tests run and failed, timings."""

    db_path: Path
    as_of_date: date | None = None
    sources: dict[str, int] = field(default_factory=dict)  # lake table -> files
    models: list[ModelRun] = field(default_factory=list)
    tests: list[TestRun] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    incremental: bool = False
    rebuild_from: date | None = None  # incremental builds: the first day rebuilt
    docs_path: Path | None = None

    @property
    def failed_tests(self) -> list[TestRun]:
        return [t for t in self.tests if not t.passed and t.severity == "error"]

    @property
    def warnings(self) -> list[TestRun]:
        return [t for t in self.tests if not t.passed and t.severity == "warn"]

    def summary(self) -> str:
        how = "incremental" if self.incremental else "full"
        return (
            f"built {len(self.models)} models ({how}), ran {len(self.tests)} tests "
            f"({len(self.failed_tests)} failed, {len(self.warnings)} warnings) in {self.seconds:.1f}s -> {self.db_path}"
        )


def docs_path(db_path: str | Path) -> Path:
    """Where the build writes the dbt docs site (one static HTML file) for `db_path`."""
    db = Path(db_path)
    return db.with_name(db.stem + ".dbt-docs.html")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_builds(db_path: str | Path) -> list[Path]:
    """Delete ``.<name>.<pid>.<id>.building`` files (and WALs) of processes that are gone."""
    db = Path(db_path)
    removed = []
    for p in db.parent.glob(f".{db.name}.*.building*"):
        m = _BUILDING.match(p.name)
        if m and m["name"] == db.name and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _project_var(sql_dir: Path, name: str) -> Any:
    """A var's default from ``dbt_project.yml`` (declared there once)."""
    return yaml.safe_load((sql_dir / "dbt_project.yml").read_text())["vars"][name]


def _previous_build(db: Path) -> dict[str, Any] | None:
    """The existing warehouse's build parameters (None: no usable previous build)."""
    if not db.is_file():
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        cur = con.execute("select price_per_credit, headroom, build_started_at, team_rules from warehouse_meta")
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None
    except duckdb.Error:
        return None
    finally:
        con.close()


#: What in the dbt project is not part of its definition (dbt's own output and state).
_NOT_DEFINITION = {"target", "logs", "dbt_packages", ".user.yml"}
#: Beside dbt's artifacts: the definitions fingerprints of the warehouse built last, of the last
#: build whose unit tests passed and of the docs site written last.
CHECKED_FILE = "checked.json"


def definitions_fingerprint(sql_dir: Path) -> str:
    """A digest of what the models, tests and docs are made of: every file of the dbt project
    and the versions of dbt and DuckDB (the data is not part of it)."""
    digest = hashlib.sha256()
    for path in sorted(sql_dir.rglob("*")):
        rel = path.relative_to(sql_dir)
        if rel.parts[0] not in _NOT_DEFINITION and path.is_file():
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{dist}={importlib.metadata.version(dist)}\0".encode())
    return digest.hexdigest()


def _checked(artifacts: Path) -> dict[str, str]:
    """Which definitions (fingerprints) the warehouse was built with, unit tests passed on and
    the docs site shows."""
    try:
        return dict(json.loads((artifacts / CHECKED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _record_checked(artifacts: Path, **fingerprints: str) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / CHECKED_FILE).write_text(json.dumps({**_checked(artifacts), **fingerprints}))


def changed_since(lake: Lake, since: datetime) -> date | None:
    """The earliest partition day of `INCREMENTAL_INPUTS` written at or after `since`."""
    cutoff_ns = int((since - (timedelta(0) if lake.is_local else MTIME_SLACK)).timestamp() * 1e9)
    days: list[date] = []
    for name in INCREMENTAL_INPUTS:
        files = lake.files(name)
        for info in lake.fs.get_file_info(files) if files else ():
            if info.mtime_ns is not None and info.mtime_ns >= cutoff_ns:
                m = _PARTITION_DATE.search("/" + info.path)
                days.append(date.fromisoformat(m.group(1)) if m else date.min)
    return min(days) if days else None


def _stage_object_store(path: Path, lake: Lake, storage_version: str) -> dict[str, int]:
    """Copy every lake table of an object-store lake into schema ``lake`` of `path`."""
    counts: dict[str, int] = {}
    con = duckdb.connect(str(path), config={"storage_compatibility_version": storage_version})
    try:
        con.execute("drop schema if exists lake cascade")
        con.execute("create schema lake")
        for name, spec in TABLES.items():
            files = lake.files(name)
            counts[name] = len(files)
            data: Any = lake.dataset(name) if files else spec.schema.empty_table()
            con.register("_lake_table", data)
            try:
                con.execute(f"create table lake.{name} as select * from _lake_table")
            finally:
                con.unregister("_lake_table")
        con.execute("checkpoint")
    finally:
        con.close()
    return counts


def _close_duckdb() -> None:
    """Close the database dbt-duckdb keeps open after a command (its profile's keep_open).

    Its one environment is class state of the adapter; without this the file would stay
    open in this process while it is checked, renamed and opened again.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager

    with manager._LOCK:
        if manager._ENV is not None:
            manager._ENV.close()
            manager._ENV = None


class _Dbt:
    """dbt in this process, on one project, profile and set of vars (parsed once)."""

    def __init__(self, project_dir: Path, artifacts: Path, variables: dict[str, Any], parse_path: Path):
        from dbt.cli.main import dbtRunner
        from dbt.contracts.graph.manifest import Manifest

        def args(values: dict[str, Any]) -> list[str]:
            return [
                "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
                "--target-path", str(artifacts / "target"), "--log-path", str(artifacts / "logs"),
                "--vars", json.dumps(values), "--quiet", "--no-send-anonymous-usage-stats", "--no-use-colors",
            ]  # fmt: skip

        self.args = args
        self.variables = variables
        # Parsed with what does not change from build to build (the warehouse's own path, not
        # the building file's; no per-build vars: they are only read when SQL is compiled),
        # so dbt's partial parsing applies; the commands then run with the parsed manifest.
        stable = {k: v for k, v in variables.items() if k in _PARSE_VARS}
        parsed = dbtRunner().invoke(["parse", *args({**stable, "warehouse_path": str(parse_path)})])
        if not parsed.success:
            raise BuildError(f"dbt could not parse {project_dir}: {parsed.exception}")
        assert isinstance(parsed.result, Manifest)  # what `dbt parse` returns
        self.manifest = parsed.result
        self.runner = dbtRunner(manifest=self.manifest)

    def invoke(self, *args: str, **overrides: Any) -> Any:
        """Run one dbt command with the build's vars (`overrides` replace some of them)."""
        try:
            res = self.runner.invoke([*args, *self.args({**self.variables, **overrides})])
        finally:
            _close_duckdb()
        if res.exception is not None:
            message = str(res.exception).strip()
            raise _lake_file_error(message, f"dbt {args[0]}") or BuildError(f"dbt {args[0]} failed: {message}")
        return res


def _model_runs(results: Any) -> Iterator[ModelRun]:
    for r in results:
        node = r.node
        if node.resource_type not in ("model", "seed"):
            continue
        layer = "seeds" if node.resource_type == "seed" else node.fqn[1]
        rows = (r.adapter_response or {}).get("rows_affected")
        yield ModelRun(node.name, layer, node.config.materialized, r.execution_time, rows, str(r.status))


_FILE_IN_ERROR = re.compile(r"[\"'](?P<file>[^\"']+\.parquet)[\"']")


def _lake_file_error(message: str, where: str) -> LakeFileError | None:
    """A `LakeFileError` naming the Parquet file DuckDB could not read, if that is the error."""
    lake_file = _FILE_IN_ERROR.search(message)
    if lake_file is None:
        return None
    reason = next((line.strip() for line in message.splitlines() if "Error" in line), message.splitlines()[0])
    return LakeFileError(
        f"lake file {lake_file['file']} could not be read (truncated or corrupt Parquet?): {reason}. "
        f"Land its window again or delete the file; the previous warehouse was kept. (During {where}.)"
    )


def _model_error(results: Any) -> BuildError | None:
    for r in results:
        if str(r.status) == "error" and r.node.resource_type in ("model", "seed"):
            message = (r.message or "").strip()
            where = f"model {r.node.name} ({r.node.original_file_path})"
            return _lake_file_error(message, where) or ModelError(f"{where} failed: {message}")
    return None


def _test_runs(results: Any) -> Iterator[TestRun]:
    for r in results:
        node = r.node
        if node.resource_type not in ("test", "unit_test"):
            continue
        status = str(r.status)
        if status == "pass":
            failing = 0
        elif status == "error":
            failing = -1
        else:
            failing = int(r.failures or 1)
        attached = getattr(node, "attached_node", None) or ""
        model = (
            attached.split(".")[-1]
            if attached
            else (node.depends_on.nodes[-1].split(".")[-1] if node.depends_on.nodes else None)
        )
        kind = "unit" if node.resource_type == "unit_test" else "data"
        sample = [{"error": (r.message or "").strip()}] if failing else []
        severity = str(getattr(node.config, "severity", "error")).lower()  # unit tests have none: error
        yield TestRun(node.name, model, severity, failing, r.execution_time, sample, kind)


def _failing_rows(path: Path, results: Any, tests: list[TestRun], limit: int = 5) -> None:
    """Replace each failed data test's sample with its first failing rows."""
    failed = {t.name: t for t in tests if t.failing_rows > 0 and t.kind == "data"}
    if not failed:
        return
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        for r in results:
            t = failed.get(r.node.name)
            sql = getattr(r.node, "compiled_code", None)
            if t is None or not sql:
                continue
            try:
                cur = con.execute(f"select * from ({sql}) as failing limit {limit}")
            except duckdb.Error:
                continue
            cols = [d[0] for d in cur.description]
            t.sample = [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def _describe_failures(failures: list[TestRun]) -> str:
    lines = [f"{len(failures)} test(s) failed; the previous warehouse was kept:"]
    for t in failures:
        what = "errored" if t.failing_rows < 0 else f"{t.failing_rows} failing row(s)"
        lines.append(f"- {t.name} (model {t.model}): {what}")
        for row in t.sample[:5]:
            lines.append(f"    {row}")
    return "\n".join(lines)


def build_warehouse(
    lake_root: str | Path | Lake = "./data/lake",
    db_path: str | Path = DEFAULT_DB_PATH,
    *,
    price_per_credit: Decimal | float | str = DEFAULT_PRICE_PER_CREDIT,
    headroom: float = DEFAULT_HEADROOM,
    as_of_date: date | None = None,
    fail_on_test_error: bool = True,
    full_refresh: bool = False,
    storage_version: str = DEFAULT_STORAGE_VERSION,
    memory_limit: str | None = None,
    threads: int | None = None,
    docs: bool = True,
    sql_dir: str | Path = DEFAULT_SQL_DIR,
    teams: Sequence[Mapping[str, Any]] = (),
) -> BuildResult:
    """Build the DuckDB warehouse at `db_path` from the lake at `lake_root` with dbt.

    `price_per_credit` (USD, default 0.0006) and `headroom` (default 0.8) feed the marts;
    `as_of_date` (default: derived from the usage export, see ``int_reporting_dates_resolved``)
    anchors month-to-date, trailing windows and "currently flaky". Incremental models rebuild
    only their recent days on a copy of the existing warehouse; `full_refresh` rebuilds them
    whole. Raises `ModelError` (`LakeFileError` for an unreadable lake file) when a model
    fails and `DataTestError` when a test fails (unless `fail_on_test_error` is false, in
    which case the warehouse is swapped in and the failures are in the result); in both
    cases the previous warehouse file is left as it was. `memory_limit` is DuckDB's (the
    profile's default otherwise); `threads` the models dbt builds at once (default: one in a
    full build, the profile's in an incremental one). `teams`: the team ownership rules
    (`circleci_analytics.teams.team_rules`; none: every team is 'unassigned').
    """
    t_start = time.perf_counter()
    price = Decimal(str(price_per_credit))
    if price < 0 or price.as_tuple().exponent < -10:  # type: ignore[operator]
        raise ValueError(f"price_per_credit must be >= 0 with at most 10 decimals, got {price_per_credit!r}")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom!r}")
    lake = lake_root if isinstance(lake_root, Lake) else Lake(lake_root)
    db = Path(db_path).expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(db)
    result = BuildResult(db)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.building")
    artifacts = db.with_name(db.name + ".dbt")
    started = datetime.now(UTC)
    sql_dir = Path(sql_dir)
    previous = None if full_refresh else _previous_build(db)
    rules = [dict(rule) for rule in teams]
    # Incremental only on a previous build of the same parameters (dollars and teams are
    # stored in incremental marts); otherwise everything is rebuilt.
    incremental = bool(
        previous
        and previous.get("build_started_at") is not None
        and Decimal(str(previous["price_per_credit"])) == price
        and float(previous["headroom"]) == float(headroom)
        and json.loads(previous.get("team_rules") or "[]") == rules
    )
    variables: dict[str, Any] = {
        "warehouse_path": str(tmp),
        "lake_root": lake.root if lake.is_local else "",
        "price_per_credit": str(price),
        "headroom": float(headroom),
        "as_of_date": as_of_date.isoformat() if as_of_date else None,
        "storage_version": storage_version,
        "build_started_at": started.isoformat(),
        "teams": rules,
    }
    if incremental:
        assert previous is not None
        changed = changed_since(lake, previous["build_started_at"])
        lookback = timedelta(days=int(_project_var(sql_dir, "lookback_days")))
        # Nothing landed: the incremental models rebuild no day.
        rebuild_from = date.max - lookback * 2 if changed is None else max(changed, date.min + lookback * 2) - lookback
        variables["rebuild_from"] = rebuild_from.isoformat()
        result.rebuild_from = rebuild_from
    if memory_limit:
        variables["memory_limit"] = memory_limit
    if threads:
        variables["threads"] = int(threads)
    try:
        t0 = time.perf_counter()
        result.incremental = incremental
        if incremental:
            shutil.copyfile(db, tmp)
        result.timings["copy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if lake.is_local:
            result.sources = {name: len(lake.files(name)) for name in TABLES}
        else:
            result.sources = _stage_object_store(tmp, lake, storage_version)
        result.timings["sources"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        dbt = _Dbt(sql_dir, artifacts, variables, db)
        fingerprint = definitions_fingerprint(sql_dir)
        checked = _checked(artifacts)
        result.timings["parse"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        flags = [] if incremental else ["--full-refresh"]
        if incremental and checked.get("built") == fingerprint:
            # Same definitions as the copied warehouse's: what only seeds feed and the views
            # past staging are as they should be. The models fed by the lake are built, and
            # the staging views too (their de-duplication reads the days this build reads).
            flags = ["--select", "source:*+", "--exclude", *(f"config.materialized:view,path:models/{layer}"
                                                              for layer in ("intermediate", "marts"))]  # fmt: skip
        if not incremental and not threads:
            # A full build's models each read millions of rows and DuckDB spreads one query over
            # every core: models side by side only share memory (and spill), so one at a time.
            flags.extend(["--threads", "1"])
        # JSON artifacts are not written: nothing reads them and each costs seconds at this size.
        built = dbt.invoke(
            "build",
            "--exclude-resource-type",
            "test",
            "--exclude-resource-type",
            "unit_test",
            "--no-write-json",
            *flags,
        )
        result.models = list(_model_runs(built.result))
        result.timings["models"] = time.perf_counter() - t0
        error = _model_error(built.result)
        if error is not None:
            raise error
        t0 = time.perf_counter()
        # Unit tests check the models' logic on fixed inputs, not the data: once they passed on
        # these definitions, an incremental build skips them (as dbt advises for production
        # runs); a full build, or any change to the project, runs them. Data tests of
        # incremental models read the rebuilt rows only (macros/get_where_subquery.sql).
        # The lake is staged already: lake_root '' skips the on-run-start hook.
        unit_tests_known = incremental and checked.get("unit_tests") == fingerprint
        skip_unit = ["--exclude-resource-type", "unit_test"] if unit_tests_known else []
        tested = dbt.invoke("test", "--no-write-json", *skip_unit, lake_root="")
        result.tests = list(_test_runs(tested.result))
        _failing_rows(tmp, tested.result, result.tests)
        result.timings["tests"] = time.perf_counter() - t0
        errored = [t for t in result.tests if t.failing_rows < 0]
        failures = result.failed_tests + [t for t in errored if t.severity != "error"]
        if failures and fail_on_test_error:
            raise DataTestError(_describe_failures(failures), result)

        con = duckdb.connect(str(tmp), read_only=True)
        try:
            as_of = con.execute("select as_of_date from warehouse_meta").fetchone()
        finally:
            con.close()
        result.as_of_date = as_of[0] if as_of else None
        # The docs site shows the definitions (models, columns, tests, lineage), not the data:
        # the one beside the warehouse is kept while they are unchanged.
        new_docs = docs and not (checked.get("docs") == fingerprint and docs_path(db).is_file())
        if new_docs:
            t0 = time.perf_counter()
            dbt.invoke("docs", "generate", "--static", "--no-compile")
            result.timings["docs"] = time.perf_counter() - t0
        os.replace(tmp, db)
        db.with_name(db.name + ".wal").unlink(missing_ok=True)
        if new_docs:
            site = artifacts / "target" / "static_index.html"
            with tempfile.NamedTemporaryFile(dir=db.parent, prefix=f".{db.stem}.", delete=False) as f:
                f.write(site.read_bytes())
            os.replace(f.name, docs_path(db))
        if docs:
            result.docs_path = docs_path(db)
        passed = not result.failed_tests and not errored
        _record_checked(
            artifacts,
            built=fingerprint,
            **({"unit_tests": fingerprint} if passed else {}),
            **({"docs": fingerprint} if new_docs else {}),
        )
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    result.seconds = time.perf_counter() - t_start
    return result
