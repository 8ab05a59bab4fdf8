"""The model runner: Parquet lake -> DuckDB warehouse file, built from ``sql/``.

Steps, in one DuckDB connection on a temporary file beside the target:

1. **sources** - every lake table (`warehouse.tables.TABLES`) becomes ``lake.<table>``:
   a view over its Parquet files for a local lake; for an object-store lake (DuckDB's
   httpfs is not available offline) the pyarrow dataset is registered and copied into a
   table. A table with no files yet is an empty table of its registered schema.
2. **seeds** - ``seed_resource_classes`` from ``circleci_analytics.RESOURCE_CLASSES_CSV``.
3. **models** - ``sql/{staging,intermediate,marts}/**.sql``, in dependency order derived from
   ``{{ ref('model') }}`` (``{{ source('table') }}`` and ``{{ var('name') }}`` are the
   other two placeholders). Materialisation is decided by layer in `MATERIALIZATIONS`.
4. **data tests** - generic tests declared in ``schema.yml`` files (``unique_key``,
   ``not_null``, ``accepted_values``, ``relationships``) and singular tests
   ``sql/tests/*.sql``; each query returns the failing rows (``-- severity: warn`` on
   a singular test's first line makes it a warning).
5. Only when all of that succeeded is the temporary file renamed over the warehouse, so
   a crash or a failing test leaves the previous warehouse intact and usable.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import yaml

from circleci_analytics import RESOURCE_CLASSES_CSV
from circleci_analytics.warehouse.lake import Lake
from circleci_analytics.warehouse.tables import TABLES

__all__ = [
    "DEFAULT_DB_PATH",
    "DEFAULT_HEADROOM",
    "DEFAULT_PRICE_PER_CREDIT",
    "DEFAULT_SQL_DIR",
    "MATERIALIZATIONS",
    "MATERIALIZATION_OVERRIDES",
    "BuildError",
    "BuildResult",
    "DataTestError",
    "Model",
    "ModelError",
    "ModelRun",
    "TestRun",
    "build_warehouse",
    "load_models",
]

DEFAULT_DB_PATH = "./data/warehouse.duckdb"
DEFAULT_PRICE_PER_CREDIT = Decimal("0.0006")
DEFAULT_HEADROOM = 0.8
DEFAULT_SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
LAYERS = ("staging", "intermediate", "marts")
#: How each layer is materialised (the one place this is decided) ...
MATERIALIZATIONS: dict[str, str] = {"staging": "view", "intermediate": "table", "marts": "table"}
#: ... and the exceptions: the widest table (one row per job run) is written once, as
#: ``int_job_runs_keyed`` (de-duplicated, keyed, with re-run attempts); what follows it row
#: for row are views: ``int_job_runs_enriched`` adds the flaky-failure flag through a join
#: with one small row per tested job, ``fct_job_runs``/``fct_test_runs`` are projections.
#: Writing tens of millions of wide rows (text columns above all) is the costliest step of
#: a build, so it happens once; the views cost nothing to build, and every reader scans
#: only the columns it needs.
MATERIALIZATION_OVERRIDES: dict[str, str] = {
    "int_job_runs_enriched": "view",
    "fct_job_runs": "view",
    "fct_test_runs": "view",
}
SEEDS = ("seed_resource_classes",)

_PLACEHOLDER = re.compile(r"\{\{\s*(ref|source|var)\(\s*['\"]([^'\"]+)['\"]\s*\)\s*\}\}")


class BuildError(Exception):
    """The warehouse could not be built; the previous warehouse file is untouched."""


class ModelError(BuildError):
    """A model's SQL failed (the message names the model and its file)."""


class DataTestError(BuildError):
    """Data tests failed; `result` holds every test run with its failing rows."""

    def __init__(self, message: str, result: BuildResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    path: Path
    sql: str
    refs: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def materialization(self) -> str:
        return MATERIALIZATION_OVERRIDES.get(self.name, MATERIALIZATIONS[self.layer])


@dataclass
class ModelRun:
    name: str
    layer: str
    materialization: str
    seconds: float
    rows: int | None = None


@dataclass
class TestRun:
    name: str
    model: str | None
    severity: str
    failing_rows: int
    seconds: float
    sample: list[dict[str, Any]] = field(default_factory=list)

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

    @property
    def failed_tests(self) -> list[TestRun]:
        return [t for t in self.tests if not t.passed and t.severity == "error"]

    @property
    def warnings(self) -> list[TestRun]:
        return [t for t in self.tests if not t.passed and t.severity == "warn"]

    def summary(self) -> str:
        return (
            f"built {len(self.models)} models, ran {len(self.tests)} data tests "
            f"({len(self.failed_tests)} failed, {len(self.warnings)} warnings) in {self.seconds:.1f}s -> {self.db_path}"
        )


# -- model discovery -------------------------------------------------------------------------
def load_models(sql_dir: str | Path = DEFAULT_SQL_DIR) -> list[Model]:
    """Every model under `sql_dir`, in dependency order (refs first; ties by layer, name)."""
    root = Path(sql_dir)
    models: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.sql")):
            sql = path.read_text()
            refs = tuple(dict.fromkeys(m.group(2) for m in _PLACEHOLDER.finditer(sql) if m.group(1) == "ref"))
            sources = tuple(dict.fromkeys(m.group(2) for m in _PLACEHOLDER.finditer(sql) if m.group(1) == "source"))
            if path.stem in models:
                raise BuildError(f"model {path.stem!r} is defined twice: {models[path.stem].path} and {path}")
            models[path.stem] = Model(path.stem, layer, path, sql, refs, sources)
    for m in models.values():
        for r in m.refs:
            if r not in models and r not in SEEDS:
                raise BuildError(f"model {m.name} ({m.path}) refers to unknown model {r!r}")
        for s in m.sources:
            if s not in TABLES:
                raise BuildError(f"model {m.name} ({m.path}) refers to unknown lake table {s!r}")
    order: list[Model] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in SEEDS or state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise BuildError(f"dependency cycle: {' -> '.join(chain + (name,))}")
        state[name] = 1
        for r in models[name].refs:
            visit(r, chain + (name,))
        state[name] = 2
        order.append(models[name])

    rank = {layer: i for i, layer in enumerate(LAYERS)}
    for m in sorted(models.values(), key=lambda m: (rank[m.layer], m.name)):
        visit(m.name, ())
    return order


def _sql_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"cast('{value}' as decimal(18, 10))"
    if isinstance(value, (int, float)):
        return f"cast({float(value)!r} as double)"
    if isinstance(value, datetime):
        return f"cast('{value.isoformat()}' as timestamptz)"
    if isinstance(value, date):
        return f"date '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def render(sql: str, variables: Mapping[str, Any]) -> str:
    """Replace ``{{ ref('m') }}``, ``{{ source('t') }}`` and ``{{ var('v') }}``."""

    def sub(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        if kind == "ref":
            return name
        if kind == "source":
            return f"lake.{name}"
        if name not in variables:
            raise BuildError(f"unknown variable {name!r}; known: {sorted(variables)}")
        value = variables[name]
        if name == "as_of_date" and value is None:
            return "cast(null as date)"
        return _sql_literal(value)

    return _PLACEHOLDER.sub(sub, sql)


# -- data tests ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DataTest:
    name: str
    model: str | None
    sql: str
    severity: str = "error"
    #: For generic tests: a cheap pass-check, ``(kind, model, columns)``. ``not_null`` checks
    #: of one model share one scan; ``unique`` first groups by a 64-bit hash of the key
    #: (equal keys hash equal, so no duplicate hash means no duplicate key). Only a test
    #: whose check does not prove it passes runs its own SQL (which gives the failing rows).
    check: tuple[str, str, tuple[str, ...]] | None = None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_data_tests(sql_dir: str | Path = DEFAULT_SQL_DIR) -> list[_DataTest]:
    """Generic tests from every ``schema.yml`` plus singular tests from ``sql/tests``."""
    root = Path(sql_dir)
    tests: list[_DataTest] = []
    for schema_file in sorted(root.rglob("schema.yml")):
        doc = yaml.safe_load(schema_file.read_text()) or {}
        for model in doc.get("models", []):
            name = model["name"]
            if model.get("unique_key"):
                cols = ", ".join(_quote_ident(c) for c in model["unique_key"])
                tests.append(_DataTest(
                    f"unique_{name}", name,
                    f"select {cols}, count(*) as n_rows from {name} group by all having count(*) > 1",
                    check=("unique", name, tuple(model["unique_key"])),
                ))  # fmt: skip
            for col in model.get("columns", []):
                cname = col["name"]
                for test in col.get("tests", []) or []:
                    tests.append(_generic_test(name, cname, test))
    for path in sorted((root / "tests").glob("*.sql")):
        sql = path.read_text()
        first = sql.lstrip().splitlines()[0] if sql.strip() else ""
        severity = "warn" if re.match(r"--\s*severity:\s*warn", first) else "error"
        refs = [m.group(2) for m in _PLACEHOLDER.finditer(sql) if m.group(1) == "ref"]
        tests.append(_DataTest(path.stem, refs[0] if refs else None, sql, severity))
    return tests


def _generic_test(model: str, column: str, test: Any) -> _DataTest:
    col = _quote_ident(column)
    if test == "not_null":
        return _DataTest(
            f"not_null_{model}__{column}", model, f"select * from {model} where {col} is null",
            check=("not_null", model, (column,)),
        )  # fmt: skip
    if isinstance(test, Mapping) and "accepted_values" in test:
        values = ", ".join(_sql_literal(v) for v in test["accepted_values"])
        return _DataTest(
            f"accepted_values_{model}__{column}", model,
            f"select {col}, count(*) as n_rows from {model} where {col} is not null and {col} not in ({values}) group by 1",
        )  # fmt: skip
    if isinstance(test, Mapping) and "relationships" in test:
        to, fld = test["relationships"]["to"], _quote_ident(test["relationships"]["field"])
        return _DataTest(
            f"relationships_{model}__{column}__{to}", model,
            f"select child.{col} from {model} as child left join {to} as parent on child.{col} = parent.{fld} "
            f"where child.{col} is not null and parent.{fld} is null",
        )  # fmt: skip
    raise BuildError(f"unknown test {test!r} on {model}.{column}")


# -- the build -------------------------------------------------------------------------------
def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _create_sources(con: duckdb.DuckDBPyConnection, lake: Lake, result: BuildResult) -> None:
    con.execute("create schema if not exists lake")
    for name, spec in TABLES.items():
        files = lake.files(name)
        result.sources[name] = len(files)
        target = f"lake.{name}"
        if files and lake.is_local:
            file_list = "[" + ", ".join(_sql_string(f) for f in files) + "]"
            con.execute(
                f"create or replace view {target} as select * from read_parquet({file_list}, "
                f"hive_partitioning = false, union_by_name = true)"
            )
            continue
        data: Any = lake.dataset(name) if files else spec.schema.empty_table()
        tmp = f"_src_{uuid.uuid4().hex}"
        con.register(tmp, data)
        try:
            con.execute(f"create or replace table {target} as select * from {tmp}")
        finally:
            con.unregister(tmp)


def _create_seeds(con: duckdb.DuckDBPyConnection, resource_classes_csv: Path) -> None:
    con.execute(
        "create or replace table seed_resource_classes as select "
        "cast(executor as varchar) as executor, cast(resource_class as varchar) as resource_class, "
        "cast(family as varchar) as family, cast(credits_per_minute as double) as credits_per_minute, "
        "cast(vcpus as double) as vcpus, cast(ram_gb as double) as ram_gb "
        f"from read_csv({_sql_string(str(resource_classes_csv))}, header = true, all_varchar = true)"
    )


def _prove_passing(con: duckdb.DuckDBPyConnection, tests: list[_DataTest]) -> tuple[set[str], dict[str, float]]:
    """Names of generic tests their cheap checks prove passing, and the seconds each check took.

    One scan per model answers all its ``not_null`` tests; a ``unique`` test groups by a
    hash of the key. A check that errors (a missing column, say) proves nothing: the test
    then runs its own SQL and reports the error.
    """
    passing: set[str] = set()
    seconds: dict[str, float] = {}
    by_model: dict[str, list[_DataTest]] = {}
    for test in tests:
        if test.check and test.check[0] == "not_null":
            by_model.setdefault(test.check[1], []).append(test)
    for model, group in by_model.items():
        t0 = time.perf_counter()
        counts = ", ".join(f"count(*) filter (where {_quote_ident(t.check[2][0])} is null)" for t in group)  # type: ignore[index]
        try:
            nulls = con.execute(f"select {counts} from {model}").fetchone()
        except duckdb.Error:
            continue
        share = (time.perf_counter() - t0) / len(group)
        for test, n in zip(group, nulls or ()):
            seconds[test.name] = share
            if n == 0:
                passing.add(test.name)
    for test in tests:
        if test.check and test.check[0] == "unique":
            t0 = time.perf_counter()
            key = ", ".join(_quote_ident(c) for c in test.check[2])
            try:
                dup = con.execute(
                    f"select count(*) from (select hash({key}) as h from {test.check[1]} group by h having count(*) > 1)"
                ).fetchone()
            except duckdb.Error:
                continue
            seconds[test.name] = time.perf_counter() - t0
            if dup and dup[0] == 0:
                passing.add(test.name)
    return passing, seconds


def _run_test(
    con: duckdb.DuckDBPyConnection,
    test: _DataTest,
    variables: Mapping[str, Any],
    *,
    proven: bool = False,
    check_seconds: float = 0.0,
) -> TestRun:
    if proven:  # its cheap check already proved it passes (see _prove_passing)
        return TestRun(test.name, test.model, test.severity, 0, check_seconds)
    t0 = time.perf_counter()
    sql = render(test.sql, variables).strip().rstrip(";")
    try:
        cur = con.execute(f"select * from ({sql}) as failing limit 10")
        columns = [d[0] for d in cur.description]
        sample = cur.fetchall()
        count = len(sample)
        if count == 10:  # only count them all when there are more than the sample
            count = con.execute(f"select count(*) from ({sql}) as failing").fetchone()[0]  # type: ignore[index]
    except duckdb.Error as exc:
        return TestRun(test.name, test.model, test.severity, -1, time.perf_counter() - t0, [{"error": str(exc)}])
    rows = [dict(zip(columns, r)) for r in sample]
    return TestRun(test.name, test.model, test.severity, int(count), check_seconds + time.perf_counter() - t0, rows)


def _describe_failures(failures: list[TestRun]) -> str:
    lines = [f"{len(failures)} data test(s) failed; the previous warehouse was kept:"]
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
    sql_dir: str | Path = DEFAULT_SQL_DIR,
    resource_classes_csv: str | Path = RESOURCE_CLASSES_CSV,
    fail_on_test_error: bool = True,
    threads: int | None = None,
) -> BuildResult:
    """Build the DuckDB warehouse at `db_path` from the lake at `lake_root`.

    `price_per_credit` (USD, default 0.0006) and `headroom` (default 0.8) feed the marts;
    `as_of_date` (default: derived from the usage export, see ``int_reporting_dates_resolved``)
    anchors month-to-date, trailing windows and "currently flaky". Raises `ModelError` when a
    model fails and `DataTestError` when a data test fails (unless `fail_on_test_error` is
    false); in both cases the previous warehouse file is left as it was.
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
    result = BuildResult(db)
    variables = {"price_per_credit": price, "headroom": float(headroom), "as_of_date": as_of_date}
    models = load_models(sql_dir)
    tests = load_data_tests(sql_dir)

    tmp = db.with_name(f".{db.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.building")
    con = duckdb.connect(str(tmp))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("set preserve_insertion_order = false")
        if threads:
            con.execute(f"set threads = {int(threads)}")
        t0 = time.perf_counter()
        _create_sources(con, lake, result)
        _create_seeds(con, Path(resource_classes_csv))
        result.timings["sources"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        for model in models:
            tm = time.perf_counter()
            sql = render(model.sql, variables).strip().rstrip(";")
            kind = model.materialization
            try:
                con.execute(f"create or replace {kind} {model.name} as\n{sql}")
                rows = con.execute(f"select count(*) from {model.name}").fetchone()[0] if kind == "table" else None  # type: ignore[index]
            except duckdb.Error as exc:
                raise ModelError(f"model {model.name} ({model.path}) failed: {exc}") from exc
            result.models.append(ModelRun(model.name, model.layer, kind, time.perf_counter() - tm, rows))
        result.timings["models"] = time.perf_counter() - t0

        as_of = con.execute("select as_of_date from int_reporting_dates_resolved").fetchone()
        result.as_of_date = as_of[0] if as_of else None
        con.execute(
            "create or replace table warehouse_meta as select "
            f"{_sql_literal(price)} as price_per_credit, {_sql_literal(float(headroom))} as headroom, "
            f"{_sql_literal(result.as_of_date)} as as_of_date, "
            f"{_sql_literal(datetime.now(UTC))} as built_at"
        )

        t0 = time.perf_counter()
        proven, check_seconds = _prove_passing(con, tests)
        for test in tests:
            result.tests.append(_run_test(
                con, test, variables, proven=test.name in proven, check_seconds=check_seconds.get(test.name, 0.0)
            ))  # fmt: skip
        result.timings["tests"] = time.perf_counter() - t0
        errored = [t for t in result.tests if t.failing_rows < 0]
        failures = result.failed_tests + [t for t in errored if t.severity != "error"]
        if failures and fail_on_test_error:
            raise DataTestError(_describe_failures(failures), result)
        con.execute("checkpoint")
        con.close()
        os.replace(tmp, db)
        stale_wal = db.with_name(db.name + ".wal")
        if stale_wal.exists():
            stale_wal.unlink()
    except BaseException:
        try:
            con.close()
        except duckdb.Error:
            pass
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            if leftover.exists():
                leftover.unlink()
        raise
    result.seconds = time.perf_counter() - t_start
    return result

