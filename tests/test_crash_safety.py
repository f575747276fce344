"""A run killed at any moment, interrupted, or started twice never costs a row or a rerun by hand.

A run is killed with SIGKILL at each boundary where dlt moves a run's files from one phase to the
next (`tests/support/killpoints.py`), the source changes, and one plain `lxp-sync run` must then
finish or discard what the killed run left, extract what changed, and leave the warehouse equal
to the sandbox's truth, row by row, with no key twice. Each test starts from a copy of a completed
first load, so that the killed run is an incremental one, as in production.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt.common.schema import Schema
from dlt.common.storages import FileStorage, PackageStorage

from lxp_sync.pipelines import recovery
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import LXP_SYNC, lxp_sync
from tests.support.runs import (
    FirstLoads,
    killed_at,
    recovery_lines,
    run_args,
    source_env,
    warehouse_rows,
)
from tests.test_destinations import CASES

ROWS = 600

# a kill at each of dlt's phases and at the boundaries between them (what each leaves behind is in
# tests/support/killpoints.py): the extract's temporary folder; a committed extract (its state
# saved or not); half-written, committed and half-deleted normalize output; a load job committed
# but not recorded (discarded), recorded but not moved (resumed); a table's merge committed;
# the load recorded in _dlt_loads but the package not archived
PHASE_BOUNDARIES = [
    "extract.page",
    "extract.committed",
    "normalize.started",
    "normalize.committed",
    "normalize.deleting",
    "load.job_committed",
    "load.job_recorded",
    "load.sql_committed",
    "load.completed",
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=31) as process:
        yield process


@pytest.fixture(scope="module")
def first_loads(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> FirstLoads:
    return FirstLoads(sandbox, tmp_path_factory)


KILLS = [
    *(("plusplus_rest", point) for point in PHASE_BOUNDARIES),
    ("plusplus_graphql", "normalize.committed"),  # loaded what the killed run had read
    ("pluvo", "load.sql_committed"),  # discarded: reset to the warehouse's state
    ("pitchly", "load.job_committed"),  # the same, with per-table state and table names
]


@pytest.mark.parametrize(("source", "point"), KILLS)
def test_killed_at_a_phase_boundary_then_one_plain_rerun_equals_truth(
    source: str,
    point: str,
    sandbox: SandboxProcess,
    first_loads: FirstLoads,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[source]
    env = source_env(source, sandbox, workdir)
    first_loads.into(source, workdir)
    case.change(sandbox)
    killed_at(point, run_args(source), env, workdir)
    # changes made after the kill: the rerun must read them too, not only load what was left
    case.change(sandbox)

    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)

    assert rerun.returncode == 0, rerun.stderr
    case.equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), True)
    assert len(recovery_lines(rerun.stdout, source)) == 1, rerun.stdout


def test_killed_when_the_pipeline_folder_shows_a_normalized_package_then_rerun_equals_truth(
    sandbox: SandboxProcess,
    first_loads: FirstLoads,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kill aimed from outside, as a user's `kill -9` is: when load/normalized/ fills."""
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    first_loads.into(source, workdir)
    CASES[source].change(sandbox)
    normalized = workdir / "dlt_data" / "pipelines" / pipeline_name(source, "duckdb") / "load"
    process = subprocess.Popen(
        [LXP_SYNC, *run_args(source)],
        env={**os.environ, **env},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any((normalized / "normalized").glob("*")) and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it normalized anything"
            time.sleep(0.001)
        process.kill()
    finally:
        process.wait(30)

    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)

    assert rerun.returncode == 0, rerun.stderr
    CASES[source].equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), True)
    assert len(recovery_lines(rerun.stdout, source)) == 1, rerun.stdout


@pytest.mark.parametrize(("error", "discarded"), [("terminal", True), ("transient", False)])
def test_a_package_whose_load_job_failed_for_good_is_discarded_not_retried(
    error: str, discarded: bool, tmp_path: Path
) -> None:
    """dlt keeps a package whose job failed terminally pending, to fail the same way at every
    rerun; a new extract picks up changed settings instead. A transient failure is retried."""
    normalized = tmp_path / "load" / "normalized"
    normalized.mkdir(parents=True)
    packages = PackageStorage(FileStorage(str(normalized)), "normalized")
    packages.create_package("1700000000.1")
    packages.save_schema("1700000000.1", Schema("plusplus_rest"))
    job = "users.0123456789.0.parquet"
    (tmp_path / job).write_bytes(b"")
    packages.import_job("1700000000.1", str(tmp_path / job))
    packages.start_job("1700000000.1", job)
    packages.retry_job("1700000000.1", job, "the warehouse refused it", error)
    (tmp_path / "state.json").write_text("{}")

    found = recovery.inspect(tmp_path)

    if discarded:
        assert (
            found.discard
            == "load job users.0123456789.1.parquet of package 1700000000.1 failed for good"
        )
        assert not found.pending
    else:
        assert found.discard is None and found.pending == ["1700000000.1"]


@pytest.mark.parametrize("state_saved", [True, False])
def test_a_committed_extract_is_loaded_unless_the_pipeline_never_saved_its_state(
    state_saved: bool, tmp_path: Path
) -> None:
    """A kill between dlt committing the first extract and saving its state: dlt would start
    the pipeline afresh, deleting the package, so the run says it discards it."""
    extracted = tmp_path / "normalize" / "extracted"
    extracted.mkdir(parents=True)
    packages = PackageStorage(FileStorage(str(extracted)), "extracted")
    packages.create_package("1700000000.2")
    packages.save_schema("1700000000.2", Schema("plusplus_rest"))
    if state_saved:
        (tmp_path / "state.json").write_text("{}")

    found = recovery.inspect(tmp_path)

    if state_saved:
        assert found.pending == ["1700000000.2"] and found.discard is None
    else:
        assert found.discard == "its local state was never saved" and not found.pending
