"""Running syncs and the `lxp-sync` command from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dlt.common.destination import Destination
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, run_source
from lxp_sync_sandbox.server import SandboxProcess

LXP_SYNC = str(Path(sys.executable).with_name("lxp-sync"))
REPO = Path(__file__).resolve().parents[1]


def sync(
    source_name: str,
    sandbox: SandboxProcess,
    workdir: Path,
    *,
    dataset: str | None = None,
    destination: str | Destination = "duckdb",
    source: Any = None,
    **source_args: Any,
) -> Pipeline:
    """One run of a source against the sandbox into `workdir/warehouse.duckdb` (or `destination`,
    a dlt destination object); `source`: a source object built already, else from the args."""
    spec = SOURCES[source_name]
    args = {**spec.sandbox_args(sandbox.url), **source_args}
    options = RunOptions(
        destination=destination,
        duckdb_path=str(workdir / "warehouse.duckdb"),
        pipelines_dir=str(workdir / "pipelines"),
        dataset=dataset or source_name,
    )
    return run_source(spec, source or spec.factory(**args), options)


def sync_to(
    warehouse: Any, source_name: str, sandbox: SandboxProcess, **source_args: Any
) -> Pipeline:
    """One run of a source into a test's warehouse (`tests.support`'s `destination` fixture),
    its dataset and pipeline state the test's own."""
    return sync(
        source_name,
        sandbox,
        warehouse.workdir,
        dataset=warehouse.dataset_name,
        destination=warehouse.make(warehouse.dataset_name),
        **source_args,
    )


def loaded_rows(pipeline: Pipeline) -> dict[str, int]:
    """Rows the last run normalized, per table (dlt's own count)."""
    info = pipeline.last_trace.last_normalize_info
    return dict(info.row_counts) if info else {}


def source_env(
    source_name: str, sandbox: SandboxProcess, workdir: Path, **extra: str
) -> dict[str, str]:
    """The command's settings for a source against the sandbox (dlt's variables), its state and
    DuckDB file in `workdir`; `extra` adds or overrides variables."""
    args = SOURCES[source_name].sandbox_args(sandbox.url)
    section = f"SOURCES__{source_name.upper()}__"
    env = {section + name.upper(): str(value) for name, value in args.items()}
    return {
        **env,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(workdir / "warehouse.duckdb"),
        "PYTHONPATH": str(REPO),  # for `python -m tests.support.killpoints`
        **extra,
    }


def lxp_sync(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real console script."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [LXP_SYNC, *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def error_line(stderr: str) -> str:
    """A failure says exactly one `lxp-sync: error:` line (progress lines aside), no traceback."""
    lines = [line for line in stderr.splitlines() if line.startswith("lxp-sync: error:")]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def arrow_tables(pipeline: Pipeline) -> set[str]:
    """The tables whose rows the last run's extract got as Arrow tables (parquet files; rows
    from dicts are written as jsonl)."""
    info = pipeline.last_trace.last_extract_info
    files = [name for metrics in info.metrics.values() for name in metrics[0]["job_metrics"]]
    return {name.split(".", 1)[0] for name in files if name.endswith(".parquet")}
