"""Apache Airflow for the tests: its own virtual environment, an Airflow home with SQLite as its
database, and its command line.

Airflow pins many packages (SQLAlchemy, FastAPI, ...) that the project does not need: it gets a
venv of its own, `.test-env/airflow` (git-ignored), built on first use with uv, with lxp-sync
installed into it from this checkout (editable, so the DAG runs the code under test), and reused
while the Airflow pin and the project's dependencies are unchanged. Airflow's constraints files
are published outside PyPI, so Airflow itself is pinned here and uv resolves the rest.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .venvs import REPO_ROOT, ensure_venv, env_dir

AIRFLOW_VERSION = "3.3.2"
# Airflow's command line, run for several commands in one process
_RUN_COMMANDS = """
import json, sys
from airflow.cli import cli_parser

parser = cli_parser.get_parser()
for command in json.loads(sys.argv[1]):
    args = parser.parse_args(command)
    args.func(args)
"""
REQUIREMENTS = (f"apache-airflow=={AIRFLOW_VERSION}", "-e", f"{REPO_ROOT}[postgres]")


def venv_dir() -> Path:
    """Where Airflow's venv lives (`LXP_TEST_AIRFLOW_VENV` overrides)."""
    return env_dir("airflow", "LXP_TEST_AIRFLOW_VENV")


def _project_dependencies() -> str:
    """What the venv's lxp-sync install depends on: a change rebuilds the venv."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return json.dumps([project["dependencies"], project["optional-dependencies"]["postgres"]])


def ensure_airflow_venv(timeout: float = 900.0) -> Path:
    """Airflow's venv, built first when missing or stale; returns the `airflow` command."""
    venv = ensure_venv(
        venv_dir(), REQUIREMENTS, fingerprint=_project_dependencies(), timeout=timeout
    )
    return venv / "bin" / "airflow"


@dataclass
class TaskRun:
    task_id: str
    state: str | None
    pool: str


class AirflowHome:
    """An `AIRFLOW_HOME` with its dags folder and a SQLite database, and `airflow` commands in it."""

    def __init__(self, home: Path, executable: Path) -> None:
        self.home = home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.executable = executable

    @property
    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # parsing imports dlt and the sources: 30 s (the default) is short on a busy machine
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "180",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            # dlt's helper puts each task's pipeline folder under the temp dir: keep it here
            "TMPDIR": str(self.home),
        }

    def airflow(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        python: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run `airflow ARGS` (or the venv's `python ARGS`), output captured, in this home, with
        `env` added."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
        program = self.executable.with_name("python") if python else self.executable
        return subprocess.run(
            [str(program), *args],
            env={**base, **self.env, **(env or {})},
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def commands(self, *commands: list[str], env: dict[str, str] | None = None) -> str:
        """`airflow COMMAND` for each command in turn, which must all succeed; their standard
        output. One process runs them all: each `airflow` process takes ten seconds to start."""
        done = self.airflow("-c", _RUN_COMMANDS, json.dumps(commands), env=env, python=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {commands} failed ({done.returncode}):\n"
                f"{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
            )
        return done.stdout

    def task_runs(self, dag_id: str) -> list[TaskRun]:
        """The task instances of the DAG's latest run, from Airflow's database."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            run_id = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()[0]
            rows = db.execute(
                "SELECT task_id, state, pool FROM task_instance WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
        return [TaskRun(*row) for row in sorted(rows)]
