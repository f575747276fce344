"""Memory that stays flat in the number of rows: DuckDB's limit, Arrow's allocator.

Real runs into real DuckDB files against the sandbox; the limit is read back from the
connection dlt opens for the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lxp_sync.pipelines.memory import DEFAULT_DUCKDB_MEMORY_LIMIT, bound_process_memory
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync, sync
from tests.support.runs import source_env

MIB = 2**20


def _memory_limit_bytes(pipeline) -> float:
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'")
    number, unit = rows[0][0].split()
    return float(number) * {"KiB": 2**10, "MiB": MIB, "GiB": 2**30}[unit]


def _bytes(text: str) -> int:
    return int(text.removesuffix("MB")) * 10**6


def test_a_run_loads_duckdb_within_the_default_memory_limit(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])

    limit = _memory_limit_bytes(pipeline)
    # DuckDB reports the limit in MiB, rounded; without lxp-sync's limit it is 80% of the RAM
    assert limit == pytest.approx(_bytes(DEFAULT_DUCKDB_MEMORY_LIMIT), rel=0.01)


def test_the_limit_is_a_setting_and_the_users_own_duckdb_setting_wins(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LXP_SYNC__DUCKDB_MEMORY_LIMIT", "100MB")
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])
    assert _memory_limit_bytes(pipeline) == pytest.approx(100 * 10**6, rel=0.01)

    # dlt's own setting for DuckDB: its memory_limit wins, and its other settings stay
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
        '{"memory_limit": "300MB", "threads": 1}',
    )
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])
    assert _memory_limit_bytes(pipeline) == pytest.approx(300 * 10**6, rel=0.01)
    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT current_setting('threads')")[0][0] == 1


def test_a_limit_too_small_for_the_load_fails_with_one_line_that_names_the_setting(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = {
        **source_env("plusplus_rest", sandbox, workdir),
        "LXP_SYNC__DUCKDB_MEMORY_LIMIT": "1MB",
    }
    result = lxp_sync("run", "plusplus_rest", "--resources", "users", env=env, cwd=workdir)

    assert result.returncode == 1
    # (dlt logs each retried load job with its traceback; the command's own word is one line)
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("lxp-sync: error:")]
    assert line.startswith("lxp-sync: error: plusplus_rest: DuckDB needed more memory"), line
    assert "duckdb_memory_limit under [lxp_sync] (now 1MB)" in line


def test_the_command_hands_arrow_buffers_to_the_system_allocator() -> None:
    before = pa.default_memory_pool()
    try:
        bound_process_memory()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)
