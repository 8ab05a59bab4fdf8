"""BI tools bundle DuckDB 1.4/1.5: the warehouse must open there, read-only, every mart readable.

The check runs in an isolated environment with the older DuckDB (``uv run --isolated --with
duckdb==1.4.*``; PyPI is reachable in CI), on a warehouse built and then rebuilt
incrementally (the copy of yesterday's file keeps its storage version).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from warehouse_helpers import T0, usage_table

from circleci_analytics.warehouse import Lake, build_warehouse

ROOT = Path(__file__).resolve().parents[2]
READER = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
marts = [r[0] for r in con.execute(
    "select table_name from information_schema.tables where table_schema = 'main' "
    "and (table_name like 'fct_%' or table_name like 'dim_%' or table_name = 'warehouse_meta') order by 1").fetchall()]
counts = {m: con.execute(f"select count(*) from (select * from {m})").fetchone()[0] for m in marts}
print(json.dumps({"version": duckdb.__version__, "counts": counts}))
"""


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv not found (make env bootstraps it into .tools/)")
    return uv


@pytest.fixture(scope="module")
def rebuilt_warehouse(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("old-duckdb")
    lake = Lake(root / "lake")
    lake.land("usage_job_runs", usage_table(30))
    db = root / "warehouse.duckdb"
    build_warehouse(lake, db, docs=False)
    lake.land("usage_job_runs", usage_table(30, start=T0 + timedelta(days=1), prefix="next"))
    result = build_warehouse(lake, db, docs=False)
    assert result.incremental
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        marts = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "and (table_name like 'fct_%' or table_name like 'dim_%' or table_name = 'warehouse_meta') order by 1"
        ).fetchall()]  # fmt: skip
        counts = {m: con.execute(f"select count(*) from {m}").fetchone()[0] for m in marts}
    return db, counts


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.4.*", "1.5.*"])
def test_older_duckdb_opens_the_warehouse_read_only_and_reads_every_mart(rebuilt_warehouse, version):
    db, expected = rebuilt_warehouse
    proc = subprocess.run(
        [_uv(), "run", "--isolated", "--no-project", "--quiet", "--with", f"duckdb=={version}",
         "python", "-c", READER, str(db)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["version"].startswith(version.rstrip(".*"))
    assert got["counts"] == expected
    assert len(expected) >= 20 and expected["fct_job_runs"] == 60
