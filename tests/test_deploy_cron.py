"""The cron line (deploy/cron/lxp-sync.crontab), run as cron runs it: bash, from the home folder,
with nothing in the environment but the crontab's variables. It loads every source into the
project's DuckDB file, equal to the truth, and logs to the project's log file."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.deployments import assert_sources_equal_truth, restored_pipeline, write_project
from tests.support.warehouse import DuckDBWarehouse
from tests.test_destinations import ROWS

CRONTAB = Path(__file__).resolve().parents[1] / "deploy" / "cron" / "lxp-sync.crontab"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=51) as process:
        yield process


def crontab(text: str) -> tuple[dict[str, str], list[str]]:
    """(the variables, the commands of the jobs) of a crontab."""
    variables, commands = {}, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^\w+=", line):
            name, value = line.split("=", 1)
            variables[name] = value
        else:
            fields = line.split(None, 5)
            assert len(fields) == 6, line
            assert "%" not in fields[5], "cron turns % into a new line: escape it"
            commands.append(fields[5])
    return variables, commands


def test_the_cron_line_loads_every_source_from_the_home_folder_with_no_environment(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    project = write_project(tmp_path / "lxp-sync", sandbox, with_secrets=True)
    (project / ".venv").symlink_to(Path(sys.executable).parents[1])  # the clone's venv
    home = tmp_path / "home"
    home.mkdir()
    variables, commands = crontab(CRONTAB.read_text())
    assert commands and variables["SHELL"] == "/bin/bash"
    variables["LXP"] = str(project)
    env = {
        **variables,
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",  # cron's
        # not cron's: keeps this test's pipeline state out of dlt's folder for root (/var/dlt)
        "DLT_DATA_DIR": str(tmp_path / "dlt_data"),
    }
    for command in commands:
        done = subprocess.run(
            [variables["SHELL"], "-c", command], cwd=home, env=env, capture_output=True, timeout=600
        )
        assert done.returncode == 0, done

    log = (project / "lxp-sync.log").read_text()
    assert "lxp-sync: error" not in log, log
    for source in SOURCES:
        assert f"{source}: loaded into duckdb dataset {source}" in log
    assert list(home.iterdir()) == []
    warehouse = DuckDBWarehouse("unused", tmp_path / "reader")
    warehouse.path = project / "lxp_sync.duckdb"  # the project's file, from its secrets.toml
    pipelines = {
        source: [restored_pipeline(warehouse, pipeline_name(source, "duckdb"), source, source)]
        for source in SOURCES
    }
    assert_sources_equal_truth(warehouse, sandbox, pipelines, changed=False)
