"""Real `lxp-sync run` processes against the sandbox, for the crash, signal and refresh tests.

Each source loads the resources that between them have every shape it produces (the suite's
`tests/test_destinations.py` cases), into `<workdir>/warehouse.duckdb`, its dlt state in
`<workdir>/dlt_data`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dlt
import pytest

from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import Rows
from tests.helpers import lxp_sync, source_env
from tests.support.warehouse import DuckDBWarehouse
from tests.test_destinations import CASES

REPO = Path(__file__).resolve().parents[2]
RECOVERED = "a previous run did not finish"


def run_args(source: str, *extra: str) -> list[str]:
    """`run SOURCE --resources ...`: the resources with every shape the source produces."""
    return ["run", source, "--resources", ",".join(CASES[source].resources), *extra]


class FirstLoads:
    """A completed first load of each source, made once and copied into a test's workdir, so
    that the run a test kills or refreshes is an incremental one, as in production."""

    def __init__(self, sandbox: SandboxProcess, tmp: pytest.TempPathFactory) -> None:
        self.sandbox, self.tmp = sandbox, tmp
        self.done: dict[str, Path] = {}

    def into(self, source: str, workdir: Path) -> None:
        if source not in self.done:
            base = self.tmp.mktemp(f"first_{source}")
            env = source_env(source, self.sandbox, base)
            result = lxp_sync(*run_args(source), env=env, cwd=base)
            assert result.returncode == 0, result.stderr
            self.done[source] = base
        shutil.copytree(self.done[source], workdir, dirs_exist_ok=True)


def killed_at(point: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
    """The command killed with SIGKILL at `point`, which it must reach (`killpoints`)."""
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
    """The lines in which a run says what a previous run left and what it did about it."""
    return [line for line in stdout.splitlines() if line.startswith(f"{source}: {RECOVERED}")]
