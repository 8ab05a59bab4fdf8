"""A nightly on an s3:// lake publishes what it built beside the lake: the warehouse other
machines fetch is the one the run built, and the dashboard's entry page leads to its pages."""

from __future__ import annotations

import pytest
from flow_helpers import TOKEN, make_sim, run_nightly
from pyarrow.fs import FileSelector, FileType

from circleci_analytics.simulator.server import running_server
from circleci_analytics.warehouse.publish import default_publish_uri, fetch_warehouse, read_pointer

pytestmark = pytest.mark.xdist_group("prefect")


def test_a_nightly_on_an_s3_lake_publishes_its_warehouse_and_dashboard(prefect_harness, s3_lake, tmp_path,
                                                                       monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("CIRCLECI_TOKEN", TOKEN)
    sim = make_sim()
    with running_server(sim) as url:
        state = run_nightly(sim, url, tmp_path, lake_root=s3_lake.root, initial_lookback_days=3, tests_lookback_days=1,
                            render_dashboard=True)  # fmt: skip
    assert state.is_completed(), state
    summary = state.result()
    uri = default_publish_uri(s3_lake.root)
    pointer = read_pointer(uri)
    assert summary.published == f"s3://lake-bucket/analytics/published/current.json -> build {pointer.build_id}"
    assert "endpoint_override" not in summary.markdown().split("published:")[1]
    fetch_warehouse(uri, tmp_path / "fetched.duckdb")
    assert (tmp_path / "fetched.duckdb").read_bytes() == (tmp_path / "warehouse.duckdb").read_bytes()
    fs = s3_lake.fs
    base = "lake-bucket/analytics/published"
    with fs.open_input_stream(f"{base}/index.html") as f:
        assert f'url={pointer.dashboard}"' in f.read().decode()
    with fs.open_input_stream(f"{base}/{pointer.dashboard}") as f:
        assert f.read() == (tmp_path / "dashboard" / "index.html").read_bytes()
    local_pages = {p.relative_to(tmp_path / "dashboard").as_posix() for p in (tmp_path / "dashboard").rglob("*")
                   if p.is_file()}  # fmt: skip
    prefix = f"{base}/builds/{pointer.build_id}/dashboard/"
    published = {i.path.removeprefix(prefix) for i in fs.get_file_info(FileSelector(prefix, recursive=True))
                 if i.type == FileType.File}  # fmt: skip
    assert published == local_pages
