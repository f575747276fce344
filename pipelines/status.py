"""`lxp-sync status [SOURCE]`: every source and destination at a glance, from the kept run reports.

For each pipeline this machine ran (or the one `--destination` names, read from its warehouse):
where it loads (a file path, or a URL without its password), the last run (when, ok or failed and
why, rows, time), the last good run when the last one failed, and the cursors as UTC ISO. Exit 1
when any last run shown failed, so that a monitor can call it; 0 otherwise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dlt
from dlt.common.pipeline import get_dlt_pipelines_dir

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.report import RunReport, changes, state_cursors, utc_iso, warehouse_label
from lxp_sync.pipelines.run_history import history, local_path
from lxp_sync.pipelines.runner import RunOptions, destination_kind, open_pipeline, pipeline_name

PREFIX = "lxp_sync_"


def status(
    source: str | None,
    destination: str | None,
    dataset: str | None = None,
    pipelines_dir: str | None = None,
) -> int:
    """Print the status of every pipeline found (or of `source`); 1 if a last run failed."""
    dlt.config.get("lxp_sync.lock_wait_s")  # malformed settings fail here, naming the file
    folder = Path(pipelines_dir or get_dlt_pipelines_dir())
    found = local_pipelines(folder)
    if destination:
        found = [(s, d) for s, d in found if d == destination]
        for name in [source] if source else list(SOURCES):
            if (name, destination) not in found:
                found.append((name, destination))
    if source:
        found = [(s, d) for s, d in found if s == source]
    if not found:
        which = source or "SOURCE"
        print(f"{source or 'lxp-sync'}: no runs yet; run `lxp-sync run {which}` first")
        return 0
    failed = False
    shown = 0
    for name, dest in sorted(found):
        # asked for: its warehouse has the runs of every machine
        warehouse = warehouse_reader(name, dest, dataset) if destination else None
        reports = history(folder, pipeline_name(name, dest), warehouse, name)
        if not reports and warehouse is None and not (folder / pipeline_name(name, dest)).is_dir():
            continue
        shown += 1
        lines, ok = pipeline_lines(name, dest, reports, folder)
        failed = failed or not ok
        for line in lines:
            print(line)
    if not shown:
        print(f"{source or 'lxp-sync'}: no runs yet; run `lxp-sync run {source or 'SOURCE'}` first")
    return 1 if failed else 0


def warehouse_reader(source: str, destination: str, dataset: str | None) -> Any:
    """A pipeline to read the warehouse's `_lxp_runs` with, its working folder a throwaway one (a
    status leaves no pipeline behind); None for a DuckDB file that does not exist."""
    scratch = tempfile.TemporaryDirectory(prefix="lxp-sync-read-")
    options = RunOptions(destination=destination, dataset=dataset, pipelines_dir=scratch.name)
    pipeline = open_pipeline(source, options, Path(scratch.name))
    pipeline._lxp_scratch = scratch  # removed with the pipeline
    if destination_kind(destination) == "duckdb":
        path = warehouse_label(pipeline)
        if not Path(path).is_file():
            return None
    return pipeline


def local_pipelines(folder: Path) -> list[tuple[str, str]]:
    """(source, destination) of every lxp-sync pipeline with a working folder or kept runs here."""
    names: set[str] = set()
    if folder.is_dir():
        for entry in folder.iterdir():
            name = entry.name
            if name.startswith(f".{PREFIX}") and name.endswith(".runs.jsonl"):
                names.add(name[1 : -len(".runs.jsonl")])
            elif name.startswith(PREFIX) and entry.is_dir():
                names.add(name)
    found = []
    for name in names:
        for source in SOURCES:
            if name == f"{PREFIX}{source}":
                found.append((source, "duckdb"))
            elif name.startswith(f"{PREFIX}{source}_"):
                found.append((source, name[len(f"{PREFIX}{source}_") :]))
    return found


def pipeline_lines(
    source: str, destination: str, reports: list[RunReport], folder: Path
) -> tuple[list[str], bool]:
    """The lines of one pipeline, and whether its last run (if any) succeeded."""
    name = pipeline_name(source, destination)
    last = reports[-1] if reports else None
    where = last.warehouse if last and last.warehouse else destination
    dataset = last.dataset if last else source
    lines = [f"{source} -> {destination} {where}, dataset {dataset}"]
    if last is None:
        lines.append("  last run: none reported (runs before this version keep no report)")
    else:
        lines.append(f"  last run {last.started_at}: {_run_text(last)}")
        if not last.ok:
            good = next((r for r in reversed(reports) if r.ok), None)
            lines.append(
                f"  last ok run {good.started_at}: {_run_text(good)}"
                if good
                else "  no run has succeeded yet"
            )
    cursors = _local_cursors(folder, name, source)
    if cursors is None:
        cursors = next((_report_cursors(r) for r in reversed(reports) if r.ok), {})
    for resource, values in sorted(cursors.items()):
        for cursor, value in values.items():
            lines.append(f"  {resource}: {cursor} >= {value or '-'}")
    if reports and local_path(folder, name).is_file():
        kept = f"{len(reports)} runs" if len(reports) > 1 else "1 run"
        lines.append(f"  {kept} kept; `lxp-sync report {source}` charts them")
    return lines, last is None or last.ok


def _run_text(report: RunReport) -> str:
    if not report.ok:
        return f"FAILED after {report.seconds:.1f}s (exit {report.exit_code}): {report.error}"
    written = f"{report.totals.written:,} rows written"
    return f"ok in {report.seconds:.1f}s: {changes(report)}; {written}"


def _local_cursors(folder: Path, name: str, source: str) -> dict[str, dict[str, str]] | None:
    """The cursors in this machine's pipeline state, as UTC ISO (None: no local state)."""
    if not (folder / name / "state.json").is_file():
        return None
    try:
        pipeline = dlt.attach(name, pipelines_dir=str(folder))
    except Exception:
        return None
    return {
        resource: {cursor: utc_iso(value) for cursor, value in values.items()}
        for resource, values in state_cursors(pipeline, source).items()
    }


def _report_cursors(report: RunReport) -> dict[str, dict[str, Any]]:
    return {
        resource.name: {cursor.field: cursor.after for cursor in resource.cursors}
        for resource in report.resources
        if resource.cursors
    }
