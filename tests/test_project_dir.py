"""The command run from any folder (cron, CI): `--project-dir` or `DLT_PROJECT_DIR` says where the
project's `.dlt/` and its default DuckDB file are; dlt's own tools find that same file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from lxp_sync_sandbox.server import SandboxProcess
from tests.deployments import write_project
from tests.helpers import error_line, lxp_sync


@pytest.fixture
def project(sandbox: SandboxProcess, tmp_path: Path) -> Path:
    """A project folder set up as the README says: config.toml and secrets.toml (from its
    example) filled in. No setting comes from the environment."""
    return write_project(tmp_path / "project", sandbox, with_secrets=True)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The folder a scheduler starts the command in: no .dlt/ there."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def data_env(tmp_path: Path) -> dict[str, str]:
    return {"DLT_DATA_DIR": str(tmp_path / "dlt_data")}


def groups_in(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT COUNT(*) FROM plusplus_rest.groups").fetchone()[0]


def test_project_dir_option_reads_the_projects_settings_and_loads_into_its_duckdb_file(
    sandbox: SandboxProcess, project: Path, elsewhere: Path, tmp_path: Path
) -> None:
    env = data_env(tmp_path)
    run = ("run", "plusplus_rest", "--resources", "groups")
    result = lxp_sync(*run, "--project-dir", str(project), env=env, cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert groups_in(project / "lxp_sync.duckdb") == len(sandbox.truth("plusplus_rest", "groups"))
    assert list(elsewhere.iterdir()) == []
    # before the command too
    status = lxp_sync(
        "--project-dir", str(project), "status", "plusplus_rest", env=env, cwd=elsewhere
    )
    assert status.returncode == 0, status.stderr
    assert "groups: modified >=" in status.stdout


def test_dlt_project_dir_variable_works_like_the_option(
    sandbox: SandboxProcess, project: Path, elsewhere: Path, tmp_path: Path
) -> None:
    env = {**data_env(tmp_path), "DLT_PROJECT_DIR": str(project)}
    result = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env, cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert groups_in(project / "lxp_sync.duckdb") == len(sandbox.truth("plusplus_rest", "groups"))
    assert list(elsewhere.iterdir()) == []


def test_dlt_reads_the_file_the_command_wrote_from_the_project_folder(
    sandbox: SandboxProcess, project: Path, elsewhere: Path, tmp_path: Path
) -> None:
    env = data_env(tmp_path)
    run = ("run", "plusplus_rest", "--resources", "groups", "--project-dir", str(project))
    assert lxp_sync(*run, env=env, cwd=elsewhere).returncode == 0

    # plain dlt in the project folder: the pipeline's dataset is the command's DuckDB file
    script = (
        "import dlt\n"
        "pipeline = dlt.attach('lxp_sync_plusplus_rest')\n"
        "print(pipeline.dataset().groups.df().shape[0])\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env={**data_env(tmp_path), "RUNTIME__DLTHUB_TELEMETRY": "false", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr
    assert int(read.stdout.strip()) == len(sandbox.truth("plusplus_rest", "groups"))
    assert sorted(p.name for p in project.glob("*.duckdb")) == ["lxp_sync.duckdb"]


@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_project_dir_without_dlt_settings_fails_in_one_line(
    elsewhere: Path, tmp_path: Path, how: str
) -> None:
    empty = tmp_path / "not-a-project"
    empty.mkdir()
    env = data_env(tmp_path)
    args = ["run", "plusplus_rest"]
    if how == "option":
        args += ["--project-dir", str(empty)]
    else:
        env["DLT_PROJECT_DIR"] = str(empty)
    result = lxp_sync(*args, env=env, cwd=elsewhere)

    assert result.returncode == 2
    line = error_line(result.stderr)
    assert str(empty) in line and "has no .dlt/ folder" in line
