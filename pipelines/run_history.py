"""Where run reports are kept: a file next to the pipeline's working folder, and a warehouse table.

- `<pipelines dir>/.<pipeline>.runs.jsonl`, one JSON report a line, next to the run lock: outside
  the working folder, so crash recovery (which may discard that folder) leaves it alone. Every
  run is there, also one that failed before it reached the warehouse. The last `KEEP_LOCAL`.
- `_lxp_runs` in the dataset: one row per run that reached the warehouse (its counts as columns,
  the whole report as JSON text). A runner that starts afresh each time (a CI job) keeps no
  files, but the warehouse keeps its history, as it keeps dlt's state.

Reading merges both by run id. The table is made with plain SQL through dlt's SQL client (types
from the destination's type mapper), outside dlt's schema: it is not data of the source.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from lxp_sync.pipelines.report import RunReport

log = logging.getLogger("lxp_sync")

RUNS_TABLE = "_lxp_runs"
KEEP_LOCAL = 500
_COLUMNS = (
    ("run_id", "text"),
    ("source", "text"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("status", "text"),
    ("error", "text"),
    ("seconds", "double"),
    ("inserted", "bigint"),
    ("updated", "bigint"),
    ("deleted", "bigint"),
    ("written", "bigint"),
    ("report", "text"),
)


def local_path(pipelines_dir: Path, pipeline_name: str) -> Path:
    return Path(pipelines_dir) / f".{pipeline_name}.runs.jsonl"


def keep(report: RunReport, pipelines_dir: Path, pipeline: Any = None) -> str | None:
    """Keep `report` locally and, with `pipeline` (its warehouse reached), in `_lxp_runs`.

    Returns a one-line warning when the warehouse copy failed (the local one is written first).
    """
    _append_local(local_path(pipelines_dir, report.pipeline), report)
    if pipeline is None:
        return None
    try:
        _insert(pipeline, report)
    except Exception as exc:
        from lxp_sync.pipelines.errors import redact

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return redact(
            f"{report.source}: the run report was kept locally only; writing it to "
            f"{RUNS_TABLE} failed: {type(exc).__name__}: {first}"
        )[:300]
    return None


def history(
    pipelines_dir: Path, pipeline_name: str, pipeline: Any = None, source: str | None = None
) -> list[RunReport]:
    """Every kept report of a pipeline, oldest first: the local file's and, with `pipeline`,
    the warehouse's (a report in both counts once)."""
    found = {r.run_id: r for r in read_local(local_path(pipelines_dir, pipeline_name))}
    if pipeline is not None:
        for report in read_warehouse(pipeline, source):
            found.setdefault(report.run_id, report)
    return sorted(found.values(), key=lambda r: (r.started_at, r.run_id))


def read_local(path: Path) -> list[RunReport]:
    if not path.is_file():
        return []
    reports = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            reports.append(RunReport.from_json(json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a kill: the others still count
    return reports


def _append_local(path: Path, report: RunReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(report.to_json(), separators=(",", ":")) + "\n"
    with path.open("a", encoding="utf-8") as file:
        file.write(line)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) > 2 * KEEP_LOCAL:
        trimmed = path.with_suffix(".tmp")
        trimmed.write_text("".join(lines[-KEEP_LOCAL:]), encoding="utf-8")
        os.replace(trimmed, path)


def _insert(pipeline: Any, report: RunReport) -> None:
    totals = report.totals
    values = {
        "run_id": report.run_id,
        "source": report.source,
        "started_at": _moment(report.started_at),
        "finished_at": _moment(report.finished_at),
        "status": report.status,
        "error": report.error,
        "seconds": float(report.seconds),
        "inserted": totals.inserted,
        "updated": totals.updated,
        "deleted": totals.deleted,
        "written": totals.written,
        "report": json.dumps(report.to_json(), separators=(",", ":")),
    }
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(RUNS_TABLE)
        mapper = client.capabilities.get_type_mapper()
        schema = {"name": RUNS_TABLE, "columns": {}}
        definitions = ", ".join(
            f"{client.escape_column_name(name)} "
            + mapper.to_destination_type(
                {"name": name, "data_type": kind, "timezone": True, "nullable": True}, schema
            )
            for name, kind in _COLUMNS
        )
        client.execute_sql(f"CREATE TABLE IF NOT EXISTS {table} ({definitions})")
        escape = client.capabilities.escape_literal
        names = ", ".join(client.escape_column_name(name) for name in values)
        literals = ", ".join(escape(value) for value in values.values())
        client.execute_sql(f"INSERT INTO {table} ({names}) VALUES ({literals})")


def read_warehouse(pipeline: Any, source: str | None = None, limit: int = 1000) -> list[RunReport]:
    """The reports in the dataset's `_lxp_runs` (none when it has no such table or is out of reach)."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(RUNS_TABLE)
            where = ""
            if source:
                where = f" WHERE {client.escape_column_name('source')} = "
                where += client.capabilities.escape_literal(source)
            rows = client.execute_sql(
                f"SELECT {client.escape_column_name('report')} FROM {table}{where} "
                f"ORDER BY {client.escape_column_name('started_at')} DESC LIMIT {int(limit)}"
            )
    except Exception as exc:
        log.debug("%s: %s", RUNS_TABLE, exc)
        return []
    reports = []
    for (text,) in rows or []:
        try:
            reports.append(RunReport.from_json(json.loads(text)))
        except (ValueError, TypeError):
            continue
    return reports


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
