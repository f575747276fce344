"""A run killed at any moment, interrupted, or started twice never costs a row or a rerun by hand.

A run is killed with SIGKILL at each boundary where dlt moves a run's files from one phase to the
next (`tests/support/killpoints.py`), the source changes, and one plain `lxp-sync run` must then
finish or discard what the killed run left, extract what changed, and leave the warehouse equal
to the sandbox's truth, row by row, with no key twice. Each test starts from a copy of a completed
first load, so that the killed run is an incremental one, as in production.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dlt
import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import Rows
from tests.helpers import LXP_SYNC, lxp_sync
from tests.support.warehouse import DuckDBWarehouse
from tests.test_destinations import CASES

ROWS = 600
REPO = Path(__file__).resolve().parents[1]
RECOVERED = "a previous run did not finish"

# every phase boundary of a run (tests/support/killpoints.py says what each leaves behind)
PHASE_BOUNDARIES = [
    "extract.page",
    "extract.committed",
    "extract.done",
    "normalize.started",
    "normalize.written",
    "normalize.committed",
    "normalize.deleting",
    "load.job_started",
    "load.job_committed",
    "load.job_recorded",
    "load.sql_job",
    "load.sql_committed",
    "load.completed",
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=31) as process:
        yield process


def source_env(source: str, sandbox: SandboxProcess, workdir: Path) -> dict[str, str]:
    """The command's settings for `source` against the sandbox, its state and DuckDB in `workdir`."""
    args = SOURCES[source].sandbox_args(sandbox.url)
    env = {f"SOURCES__{source.upper()}__{key.upper()}": str(value) for key, value in args.items()}
    return {
        **env,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "warehouse.duckdb"),
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture(scope="module")
def first_load(
    sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, Path], None]:
    """Puts a completed first load of a source (warehouse and pipeline state) into a workdir."""
    done: dict[str, Path] = {}

    def into(source: str, workdir: Path) -> None:
        if source not in done:
            base = tmp_path_factory.mktemp(f"first_{source}")
            env = source_env(source, sandbox, base)
            result = lxp_sync(*run_args(source), env=env, cwd=base)
            assert result.returncode == 0, result.stderr
            done[source] = base
        shutil.copytree(done[source], workdir, dirs_exist_ok=True)

    return into


def run_args(source: str, *extra: str) -> list[str]:
    """`run SOURCE` of the resources that between them have every shape the source produces."""
    return ["run", source, "--resources", ",".join(CASES[source].resources), *extra]


def killed_at(point: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
    """The command killed with SIGKILL at `point` (which it must reach)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.killpoints", point, "--", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == -signal.SIGKILL, f"{point} never reached:\n{result.stderr[-3000:]}"


def warehouse_rows(source: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Rows:
    """The loaded tables of `source` in `workdir`, read as the truth comparisons expect."""
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(workdir / "warehouse.duckdb"))
    pipeline = dlt.attach(
        pipeline_name(source, "duckdb"), pipelines_dir=str(workdir / "dlt_data" / "pipelines")
    )
    warehouse = DuckDBWarehouse(source, workdir)
    return lambda table: warehouse.rows(pipeline, table, dlt_columns=True)


def recovery_lines(stdout: str, source: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(f"{source}: {RECOVERED}")]


def assert_killed_run_then_rerun_equals_truth(
    source: str,
    point: str,
    sandbox: SandboxProcess,
    first_load: Callable[[str, Path], None],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[source]
    env = source_env(source, sandbox, workdir)
    first_load(source, workdir)
    case.change(sandbox)
    killed_at(point, run_args(source), env, workdir)
    # changes made after the kill: the rerun must read them too, not only load what was left
    case.change(sandbox)

    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)

    assert rerun.returncode == 0, rerun.stderr
    case.equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), True)
    assert len(recovery_lines(rerun.stdout, source)) == 1, rerun.stdout


@pytest.mark.parametrize("point", PHASE_BOUNDARIES)
def test_plusplus_rest_killed_at_each_phase_boundary_then_one_plain_rerun_equals_truth(
    point: str,
    sandbox: SandboxProcess,
    first_load: Callable[[str, Path], None],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert_killed_run_then_rerun_equals_truth(
        "plusplus_rest", point, sandbox, first_load, workdir, monkeypatch
    )


@pytest.mark.parametrize(
    ("source", "point"),
    [
        ("plusplus_graphql", "normalize.committed"),
        ("plusplus_graphql", "load.job_committed"),
        ("pluvo", "normalize.deleting"),
        ("pluvo", "load.sql_committed"),
        ("pitchly", "extract.committed"),
        ("pitchly", "load.job_started"),
    ],
)
def test_every_source_killed_then_one_plain_rerun_equals_truth(
    source: str,
    point: str,
    sandbox: SandboxProcess,
    first_load: Callable[[str, Path], None],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert_killed_run_then_rerun_equals_truth(
        source, point, sandbox, first_load, workdir, monkeypatch
    )


def test_killed_when_the_pipeline_folder_shows_a_normalized_package_then_rerun_equals_truth(
    sandbox: SandboxProcess,
    first_load: Callable[[str, Path], None],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kill aimed from outside, as a user's `kill -9` is: when load/normalized/ fills."""
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    first_load(source, workdir)
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
