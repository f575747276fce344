"""What a killed or failed run left in a pipeline's working folder: finished, or discarded.

dlt commits a pipeline's local state (the cursors) when it extracts, while the warehouse's state
(`_dlt_pipeline_state` of a load recorded in `_dlt_loads`) only moves when a load completes. A
run ended at any moment (kill -9, a power cut, an error) leaves in `<pipelines_dir>/<pipeline>/`:

| left                                              | it is                          | done       |
|---------------------------------------------------|--------------------------------|------------|
| `normalize/<tmp>/` (anything but `extracted`)     | an extract that never committed | removed |
| `load/new/<id>/`                                  | a normalize that never committed; its input is whole in `normalize/extracted/` | removed |
| `normalize/extracted/<id>/` with `<id>` in `load/` | a normalize that committed and was deleting its input | input removed |
| `normalize/extracted/<id>/` whole                 | a committed extract            | finished: normalized, loaded |
| `load/normalized/<id>/` where no load job is in flight (every started job has its outcome recorded) | a load to resume | finished: loaded |
| `load/normalized/<id>/` with a started job whose outcome is not recorded | a job that may or may not have reached the warehouse: loading it again could duplicate rows | discarded |
| a package without its schema or state file, or flagged for abort | half deleted, or being aborted | discarded |
| packages, but no `state.json` (killed before the first extract saved it) | dlt would start afresh | discarded |
| `load/normalized/<id>/` with a job that failed for good (a terminal error) | a package that would fail the same way at every rerun | discarded |

Each removal only touches what was never committed (or is committed elsewhere), so a kill in the
middle of one is cleaned up by the next run in the same way. Discarding renames the whole working
folder aside in one step, then deletes it: dlt restores state and schemas from the warehouse's
last completed load, as on a new machine, and the run extracts from there. Every table lxp-sync
loads is merged on a key or replaced, so loading again what a discarded package had half loaded
(into staging tables, or merged into a few tables) leaves the same rows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dlt.common.storages import FileStorage, PackageStorage
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.stop import raise_if_stopped

log = logging.getLogger("lxp_sync")

# dlt's on-disk layout (dlt.common.storages): NormalizeStorage, LoadStorage, PackageStorage
EXTRACTED = "extracted"
LOAD_FOLDERS = ("new", "normalized", "loaded")
SCHEMA_FILE = "schema.json"
STATE_FILE = "state.json"  # dlt's Pipeline.STATE_FILE
PACKAGE_STATE_FILE = "load_package_state.json"
STARTED_JOBS = "started_jobs"
PENDING_TRANSITIONS = ".pending_transitions"
# dlt names a package's files after their tables (`<table>.<file id>.<retry>.<format>[.gz]`):
# the longest table name whose files fit in 255 bytes with dlt's retries below 10 (it gives up
# at 5), for DuckDB's and BigQuery's longer identifiers (`runner.fit_file_names`); dlt's
# `snake_case` names are ASCII, a byte a character
MAX_IDENTIFIER_BYTES = 255 - len(".0123456789.9.insert_values.gz")
# a working folder being discarded: `.<pipeline>.discarded-<random>`, next to it
DISCARDED = ".discarded-"


@dataclass
class Leftovers:
    """What a previous run left, and what this run does about it."""

    cleaned: list[str] = field(default_factory=list)  # half-written folders, removed
    pending: list[str] = field(default_factory=list)  # packages to finish (load ids)
    discard: str | None = None  # why the working folder is discarded

    def __bool__(self) -> bool:
        return bool(self.cleaned or self.pending or self.discard)

    def line(self, source: str) -> str:
        """The one line the command prints about it."""
        if self.discard:
            return (
                f"{source}: a previous run did not finish ({self.discard}); discarded what it "
                "left and reset local state to the warehouse's last completed load; now syncing "
                "what changed since"
            )
        if self.pending:
            packages = ", ".join(self.pending)
            return (
                f"{source}: a previous run did not finish; loaded what it had already read "
                f"(load package {packages}); now syncing what changed since"
            )
        return (
            f"{source}: a previous run did not finish; removed its half-written files "
            f"({', '.join(self.cleaned)}); now syncing"
        )


def inspect(working_dir: Path) -> Leftovers:
    """Remove what a previous run half wrote; say what is left to finish, or why to discard."""
    found = Leftovers()
    _remove_discarded(working_dir)
    normalize, load = working_dir / "normalize", working_dir / "load"
    if normalize.is_dir():
        for entry in sorted(normalize.iterdir()):
            if entry.name != EXTRACTED and not entry.name.startswith("."):
                found.cleaned.append(f"normalize/{entry.name}")
                _remove(entry)
    for entry in sorted(_packages(load / "new")):
        found.cleaned.append(f"load/new/{entry.name}")
        _remove(entry)
    in_load = {p.name for folder in LOAD_FOLDERS for p in _packages(load / folder)}
    for package in sorted(_packages(normalize / EXTRACTED)):
        if package.name in in_load:  # normalized already: its input was being deleted
            found.cleaned.append(f"normalize/extracted/{package.name}")
            _remove(package)
        elif not _whole(package):
            found.discard = f"package {package.name} was half deleted"
        elif long := _too_long_names(package):
            found.discard = f"package {package.name} has table {long}, too long to load"
        else:
            found.pending.append(package.name)
    for package in sorted(_packages(load / "normalized")):
        if not _whole(package):
            found.discard = f"package {package.name} was half deleted"
        elif _abort_requested(package):
            found.discard = f"package {package.name} was being aborted"
        elif unknown := _jobs_in_flight(package):
            found.discard = (
                f"it was loading package {package.name}, and whether job {unknown[0]} reached "
                "the warehouse is not recorded"
            )
        elif long := _too_long_names(package):
            found.discard = f"package {package.name} has table {long}, too long to load"
        elif failed := _failed_for_good(package):
            found.discard = f"load job {failed} of package {package.name} failed for good"
        else:
            found.pending.append(package.name)
    if found.pending and not (working_dir / STATE_FILE).is_file():
        # dlt starts a pipeline without a state file afresh, deleting the folder: say so
        found.discard = "its local state was never saved"
    if found.discard:
        found.pending = []
    return found


def discard(working_dir: Path) -> None:
    """Drop the working folder in one rename (a kill cannot leave half of it), then delete it."""
    if not working_dir.exists():
        return
    aside = working_dir.with_name(f".{working_dir.name}{DISCARDED}{uuid.uuid4().hex[:8]}")
    os.rename(working_dir, aside)
    _remove(aside)


def finish(pipeline: Pipeline) -> None:
    """Normalize and load the packages a previous run committed (dlt resumes a started load)."""
    if pipeline.list_extracted_load_packages():
        raise_if_stopped()
        pipeline.normalize()
    if pipeline.list_normalized_load_packages():
        raise_if_stopped()
        info = pipeline.load()
        if info is not None:
            info.raise_on_failed_jobs()


def _remove_discarded(working_dir: Path) -> None:
    """Finish deleting a working folder a killed run was discarding."""
    parent = working_dir.parent
    if parent.is_dir():
        for entry in parent.glob(f".{working_dir.name}{DISCARDED}*"):
            _remove(entry)


def _packages(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _whole(package: Path) -> bool:
    return (package / SCHEMA_FILE).is_file() and (package / PACKAGE_STATE_FILE).is_file()


def _too_long_names(package: Path) -> str | None:
    """A table name longer than `MAX_IDENTIFIER_BYTES` (a package of an earlier version, or of a
    run that failed on such a name's file): every load of it would fail the same way."""
    try:
        tables = json.loads((package / SCHEMA_FILE).read_text()).get("tables") or {}
    except (OSError, ValueError):
        return None  # the load says what is wrong with it
    long = next((t for t in tables if len(t.encode()) > MAX_IDENTIFIER_BYTES), None)
    return None if long is None else f"{long[:40]}... ({len(long.encode())} bytes)"


def _abort_requested(package: Path) -> bool:
    try:
        return bool(json.loads((package / PACKAGE_STATE_FILE).read_text()).get("abort_requested"))
    except (OSError, ValueError):
        return True  # unreadable: nothing about it can be trusted


def _jobs_in_flight(package: Path) -> list[str]:
    """Started jobs without a recorded outcome: dlt records one right after the warehouse
    commits a job, so such a job may have committed (a kill in between) or not."""
    started = package / STARTED_JOBS
    if not started.is_dir():
        return []
    recorded = package / PENDING_TRANSITIONS
    return sorted(
        job.name
        for job in started.iterdir()
        if job.is_file() and not (recorded / job.name).is_file()
    )


def _failed_for_good(package: Path) -> str | None:
    """A job that dlt put back for a retry after a terminal error: loading the package again
    would fail the same way, while a new extract picks up changed settings and data."""
    packages = PackageStorage(FileStorage(str(package.parent)), "normalized")
    for job_file, folder in packages.list_retried_new_jobs(package.name):
        if folder != "new_jobs":
            continue
        job = ParsedLoadJobFileName.parse(os.path.basename(job_file))
        if packages.get_last_job_exception(package.name, job)[0] == "terminal":
            return job.file_name()
    return None
