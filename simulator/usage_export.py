"""Usage export: job state machine and the gzipped CSV parts it produces.

A job is `created`, then `processing`, then `completed` (or `failed` with `error_reason`)
as real time passes (`SimConfig.export_processing_seconds`). Rows are the executed job runs
of the job's organisation whose JOB_RUN_STARTED_AT lies in [start, end] (both inclusive), one
row per job run.

Parts are planned up front from the cheap per-day pipeline counts (no generation needed),
grouping projects so each part holds about `export_rows_per_part` rows, then generated and
gzipped on the fly when downloaded, so a 31-day export of the `large` preset streams in
bounded memory. Each part has its own header row with UPPER-CASE names; nulls are `\\N`;
timestamps `YYYY-MM-DD HH:MM:SS` (UTC); flags `true/false` or `Y/N`. VCS_NAME is `github`
for every org, GitHub-App ones included (what CircleCI writes there for those is unverified).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .catalog import Project
from .config import SimConfig
from .history import CREDIT_TYPES, EPOCH, History, JobRun

__all__ = ["USAGE_COLUMNS", "ExportJob", "ExportPart", "plan_parts", "iter_rows", "iter_part_gzip", "render_part"]

USAGE_COLUMNS = (
    "ORGANIZATION_ID", "ORGANIZATION_NAME", "ORGANIZATION_CREATED_DATE", "PROJECT_ID", "PROJECT_NAME",
    "PROJECT_CREATED_DATE", "LAST_BUILD_FINISHED_AT", "VCS_NAME", "VCS_URL", "VCS_BRANCH", "PIPELINE_ID",
    "PIPELINE_CREATED_AT", "PIPELINE_NUMBER", "IS_UNREGISTERED_USER", "PIPELINE_TRIGGER_SOURCE",
    "PIPELINE_TRIGGER_USER_ID", "WORKFLOW_ID", "WORKFLOW_NAME", "WORKFLOW_FIRST_JOB_QUEUED_AT",
    "WORKFLOW_FIRST_JOB_STARTED_AT", "WORKFLOW_STOPPED_AT", "IS_WORKFLOW_SUCCESSFUL", "JOB_NAME", "JOB_ID",
    "JOB_RUN_NUMBER", "JOB_RUN_DATE", "JOB_RUN_QUEUED_AT", "JOB_RUN_STARTED_AT", "JOB_RUN_STOPPED_AT",
    "JOB_BUILD_STATUS", "RESOURCE_CLASS", "OPERATING_SYSTEM", "EXECUTOR", "PARALLELISM", "JOB_RUN_SECONDS",
    "MEDIAN_CPU_UTILIZATION_PCT", "MAX_CPU_UTILIZATION_PCT", "MEDIAN_RAM_UTILIZATION_PCT",
    "MAX_RAM_UTILIZATION_PCT", "COMPUTE_CREDITS", "DLC_CREDITS", "USER_CREDITS", "STORAGE_CREDITS",
    "NETWORK_CREDITS", "LEASE_CREDITS", "LEASE_OVERAGE_CREDITS", "IPRANGES_CREDITS", "TOTAL_CREDITS",
)  # fmt: skip
#: The unknown column an export may carry (it was in the 2025-07 spec, then removed).
EXTRA_COLUMN = "IS_DEFAULT_BRANCH"
NULL = "\\N"


@dataclass(frozen=True)
class ExportPart:
    index: int
    project_indexes: tuple[int, ...]
    estimated_rows: int


@dataclass
class ExportJob:
    id: str
    org_id: str
    start: datetime
    end: datetime
    created_wall: float  # simulator clock (seconds) at creation
    parts: list[ExportPart] = field(default_factory=list)
    fail_reason: str | None = None

    def state(self, wall: float, processing_seconds: float) -> str:
        elapsed = wall - self.created_wall
        if elapsed < processing_seconds / 3:
            return "created"
        if elapsed < processing_seconds:
            return "processing"
        return "failed" if self.fail_reason else "completed"


def plan_parts(
    history: History, projects: list[Project], start: datetime, end: datetime, rows_per_part: int
) -> list[ExportPart]:
    """Group projects into parts of about `rows_per_part` rows (estimated from plans)."""
    first, last = history.day_of(start), history.day_of(end)
    parts: list[ExportPart] = []
    group: list[int] = []
    acc = 0
    for p in projects:
        plan = history.plan(p)
        jobs_per_pipeline = sum(len(w.jobs) for w in p.workflows_defs if w.name != "nightly-e2e")
        est = (
            sum(plan.pipelines_per_day[d] for d in range(max(0, first), min(last, history.days - 1) + 1))
            * jobs_per_pipeline
        )
        group.append(p.index)
        acc += est
        if acc >= rows_per_part:
            parts.append(ExportPart(len(parts), tuple(group), acc))
            group, acc = [], 0
    if group or not parts:
        parts.append(ExportPart(len(parts), tuple(group), acc))
    return parts


def _ts(t: datetime | None) -> str:
    # isoformat is several times faster than strftime; same text ("YYYY-MM-DD HH:MM:SS").
    return NULL if t is None else t.isoformat(" ", "seconds")[:19]


def _num(x: float | None) -> str:
    return NULL if x is None else repr(x)


def _credits(centi: int) -> str:
    return f"{centi // 100}.{centi % 100:02d}"


def iter_rows(
    history: History, project: Project, start: datetime, end: datetime, flag_style: str
) -> Iterator[dict[str, str]]:
    """One CSV row (as strings) per executed job run started in [start, end]."""
    yes, no = ("Y", "N") if flag_style == "YN" else ("true", "false")
    org = history.catalog.org_of(project)
    org_created = (
        (datetime.combine(EPOCH, datetime.min.time()) - timedelta(days=org.created_day_offset)).date().isoformat()
    )
    project_created = (
        (datetime.combine(EPOCH, datetime.min.time()) - timedelta(days=project.created_at_day_offset))
        .date()
        .isoformat()
    )
    last_build = _ts(history.last_build_finished_at[project.index])
    first, last = history.day_of(start) - 1, history.day_of(end)
    for pipeline in history.iter_pipelines(project, first, last):
        for wf in pipeline.workflows:
            executed = wf.executed_jobs
            if not executed:
                continue
            first_queued, first_started = wf.first_job_queued_at, wf.first_job_started_at
            for j in executed:
                if not start <= j.started_at <= end:
                    continue
                yield _row(history, org, org_created, project, project_created, last_build, pipeline, wf, j,
                           first_queued, first_started, yes, no)  # fmt: skip


def _row(history, org, org_created, project, project_created, last_build, pipeline, wf, j: JobRun,
         first_queued, first_started, yes, no) -> dict[str, str]:  # fmt: skip
    c = j.credits_centi
    row = {
        "ORGANIZATION_ID": org.id, "ORGANIZATION_NAME": org.name, "ORGANIZATION_CREATED_DATE": org_created,
        "PROJECT_ID": project.id, "PROJECT_NAME": project.name, "PROJECT_CREATED_DATE": project_created,
        "LAST_BUILD_FINISHED_AT": last_build, "VCS_NAME": "github", "VCS_URL": project.vcs_url,
        "VCS_BRANCH": pipeline.branch, "PIPELINE_ID": pipeline.id, "PIPELINE_CREATED_AT": _ts(pipeline.created_at),
        "PIPELINE_NUMBER": str(pipeline.number), "IS_UNREGISTERED_USER": no,
        "PIPELINE_TRIGGER_SOURCE": pipeline.trigger_type, "PIPELINE_TRIGGER_USER_ID": pipeline.actor_id,
        "WORKFLOW_ID": wf.id, "WORKFLOW_NAME": wf.name, "WORKFLOW_FIRST_JOB_QUEUED_AT": _ts(first_queued),
        "WORKFLOW_FIRST_JOB_STARTED_AT": _ts(first_started), "WORKFLOW_STOPPED_AT": _ts(wf.stopped_at),
        "IS_WORKFLOW_SUCCESSFUL": yes if wf.status == "success" else no, "JOB_NAME": j.name, "JOB_ID": j.id,
        "JOB_RUN_NUMBER": str(j.number), "JOB_RUN_DATE": j.started_at.date().isoformat(),
        "JOB_RUN_QUEUED_AT": _ts(j.queued_at), "JOB_RUN_STARTED_AT": _ts(j.started_at),
        "JOB_RUN_STOPPED_AT": _ts(j.stopped_at), "JOB_BUILD_STATUS": j.status, "RESOURCE_CLASS": j.resource_class,
        "OPERATING_SYSTEM": j.os, "EXECUTOR": j.executor, "PARALLELISM": str(j.parallelism),
        "JOB_RUN_SECONDS": str(j.run_seconds), "MEDIAN_CPU_UTILIZATION_PCT": _num(j.cpu_median),
        "MAX_CPU_UTILIZATION_PCT": _num(j.cpu_max), "MEDIAN_RAM_UTILIZATION_PCT": _num(j.ram_median),
        "MAX_RAM_UTILIZATION_PCT": _num(j.ram_max),
        "TOTAL_CREDITS": _credits(sum(c)),
        EXTRA_COLUMN: yes if pipeline.branch == project.default_branch else no,
    }  # fmt: skip
    for name, value in zip(CREDIT_TYPES, c):
        row[f"{name.upper()}_CREDITS"] = _credits(value)
    return row


def _quote(value: str) -> str:
    if "," in value or '"' in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def part_columns(config: SimConfig, job_id: str, part: int) -> list[str]:
    cols = list(USAGE_COLUMNS)
    if config.export_extra_column:
        cols.insert(len(cols) // 2, EXTRA_COLUMN)
    if config.export_shuffle_columns:
        random.Random(f"{job_id}:{part}").shuffle(cols)
    return cols


def render_part(history: History, config: SimConfig, job: ExportJob, part: ExportPart,
                malformed: bool = False) -> Iterator[str]:  # fmt: skip
    """CSV text of one part, in chunks of lines (header first)."""
    cols = part_columns(config, job.id, part.index)
    yield ",".join(cols) + "\n"
    if not malformed:
        yield from _render_fast(history, config, job, part, cols)
        return
    buf: list[str] = []
    n = 0
    for idx in part.project_indexes:
        project = history.catalog.projects[idx]
        for row in iter_rows(history, project, job.start, job.end, config.export_flag_style):
            buf.append(",".join(_quote(row[c]) for c in cols) + "\n")
            n += 1
            if malformed and n == 3:
                # A row cut short mid-line, as seen when an export is assembled badly.
                buf.append(",".join(_quote(row[c]) for c in cols[: len(cols) // 2]) + "\n")
                bad = dict(row, TOTAL_CREDITS="twelve", JOB_ID=row["JOB_ID"][:-4] + "bad0")
                buf.append(",".join(_quote(bad[c]) for c in cols) + "\n")
            if len(buf) >= 2000:
                yield "".join(buf)
                buf.clear()
    if buf:
        yield "".join(buf)


#: Column order of the value lists built by `_iter_lines` (USAGE_COLUMNS, then the extra one).
_LINE_COLUMNS = (*USAGE_COLUMNS, EXTRA_COLUMN)


def _render_fast(
    history: History, config: SimConfig, job: ExportJob, part: ExportPart, cols: list[str]
) -> Iterator[str]:
    """The rows of `render_part` without building a dict per row (same text, ~3x faster)."""
    order = [_LINE_COLUMNS.index(c) for c in cols]
    canonical = order == list(range(len(USAGE_COLUMNS)))
    buf: list[str] = []
    for idx in part.project_indexes:
        project = history.catalog.projects[idx]
        for vals in _iter_lines(history, project, job.start, job.end, config.export_flag_style):
            buf.append(",".join(vals[:48] if canonical else [vals[i] for i in order]))
            if len(buf) >= 2000:
                yield "\n".join(buf) + "\n"
                buf.clear()
    if buf:
        yield "\n".join(buf) + "\n"


def _iter_lines(
    history: History, project: Project, start: datetime, end: datetime, flag_style: str
) -> Iterator[list[str]]:
    """The CSV-quoted values of `iter_rows`, as lists in `_LINE_COLUMNS` order."""
    yes, no = ("Y", "N") if flag_style == "YN" else ("true", "false")
    org = history.catalog.org_of(project)
    org_created = (
        (datetime.combine(EPOCH, datetime.min.time()) - timedelta(days=org.created_day_offset)).date().isoformat()
    )
    project_created = (
        (datetime.combine(EPOCH, datetime.min.time()) - timedelta(days=project.created_at_day_offset))
        .date()
        .isoformat()
    )
    head = [
        _quote(org.id), _quote(org.name), org_created, _quote(project.id), _quote(project.name), project_created,
        _ts(history.last_build_finished_at[project.index]), "github", _quote(project.vcs_url),
    ]  # fmt: skip
    q: dict[str, str] = {}  # quoted job-level strings (few distinct values)

    def qq(value: str) -> str:
        out = q.get(value)
        if out is None:
            out = q[value] = _quote(value)
        return out

    first, last = history.day_of(start) - 1, history.day_of(end)
    for pipeline in history.iter_pipelines(project, first, last):
        pl_vals = head + [
            _quote(pipeline.branch), _quote(pipeline.id), _ts(pipeline.created_at), str(pipeline.number), no,
            qq(pipeline.trigger_type), _quote(pipeline.actor_id),
        ]  # fmt: skip
        default = yes if pipeline.branch == project.default_branch else no
        for wf in pipeline.workflows:
            executed = wf.executed_jobs
            if not executed:
                continue
            wf_vals = pl_vals + [
                _quote(wf.id), _quote(wf.name), _ts(wf.first_job_queued_at),
                _ts(wf.first_job_started_at), _ts(wf.stopped_at), yes if wf.status == "success" else no,
            ]  # fmt: skip
            for j in executed:
                started = j.started_at
                if not start <= started <= end:
                    continue
                c = j.credits_centi
                vals = wf_vals + [
                    qq(j.name), _quote(j.id), str(j.number), started.date().isoformat(), _ts(j.queued_at),
                    _ts(started), _ts(j.stopped_at), qq(j.status), qq(j.resource_class), qq(j.os), qq(j.executor),
                    str(j.parallelism), str(j.run_seconds), _num(j.cpu_median), _num(j.cpu_max), _num(j.ram_median),
                    _num(j.ram_max),
                ]  # fmt: skip
                vals += [_credits(v) for v in c]
                vals.append(_credits(sum(c)))
                vals.append(default)
                yield vals


def iter_part_gzip(chunks: Iterator[str], truncate: bool = False) -> Iterator[bytes]:
    """Gzip-compress text chunks as a stream; `truncate` cuts the stream (no gzip trailer)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    sent = 0
    for chunk in chunks:
        data = comp.compress(chunk.encode())
        if data:
            sent += len(data)
            yield data
    tail = comp.flush()
    if truncate:
        # Drop the end of the stream: the client sees a gzip member without its trailer.
        yield tail[: max(0, len(tail) // 2 - 8)]
        return
    yield tail
