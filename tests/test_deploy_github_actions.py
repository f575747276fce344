"""The GitHub Actions templates (deploy/github-actions/): valid workflows by GitHub's schema, and
their `lxp-sync` steps, run as a runner would (bash, the workflow's env, `${{ secrets.X }}` and
`${{ matrix.X }}` filled in), load the sandbox into PostgreSQL equal to the truth; a second run
on a fresh runner (no local state) loads the changes; the smoke workflow passes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import yaml

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.deployments import (
    assert_sources_equal_truth,
    repository_secrets,
    restored_pipeline,
    write_project,
)
from tests.support.warehouse import PostgresWarehouse
from tests.test_destinations import CASES, ROWS

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "deploy" / "github-actions"
DAILY = WORKFLOWS / "lxp-sync-daily.yml"
SMOKE = WORKFLOWS / "lxp-sync-smoke.yml"
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("workflow", [DAILY, SMOKE], ids=lambda path: path.stem)
def test_the_templates_are_valid_github_workflows(workflow: Path, tmp_path: Path) -> None:
    result = check_workflow(workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the check does catch a broken one: a job without `runs-on`
    broken = tmp_path / workflow.name
    broken.write_text(re.sub(r"\n\s+runs-on: [^\n]+", "", workflow.read_text()))
    assert check_workflow(broken).returncode != 0


# --- Running the workflows' commands -------------------------------------------------------------


def lxp_sync_steps(workflow: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """(the matrix's sources, the job's env, the `run:` scripts that call lxp-sync)."""
    document = yaml.safe_load(workflow.read_text())
    (job,) = document["jobs"].values()
    runs = [step["run"] for step in job["steps"] if "lxp-sync" in step.get("run", "")]
    assert runs, f"{workflow.name}: no lxp-sync step"
    return job["strategy"]["matrix"]["source"], job.get("env", {}), runs


def expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """GitHub's `${{ a.b }}` expressions, from `context` (an unknown one fails the test)."""

    def value(match: re.Match[str]) -> str:
        scope, name = match.group(1).split(".", 1)
        return context[scope][name]

    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", value, text)


def run_on_fresh_runner(
    workflow: Path, project: Path, secrets: dict[str, str], data_dir: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every matrix job's lxp-sync steps, in bash as a runner runs them, in the checkout
    (`project`), with no local state from an earlier run (`data_dir` is new)."""
    assert not data_dir.exists()
    sources, job_env, runs = lxp_sync_steps(workflow)
    assert sorted(sources) == sorted(SOURCES)
    results = {}
    for source in sources:
        context = {"secrets": secrets, "matrix": {"source": source}}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DEST"))}
        env.update({key: expand(str(value), context) for key, value in job_env.items()})
        env["DLT_DATA_DIR"] = str(data_dir)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # where pip put lxp-sync
        for script in runs:
            results[source] = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(script, context)],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert results[source].returncode == 0, f"{source}:\n{results[source].stderr}"
    return results


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=41) as process:
        yield process


@pytest.fixture
def project(sandbox: SandboxProcess, tmp_path: Path) -> Path:
    """The repository a workflow checks out: the project's .dlt/config.toml filled in."""
    return write_project(tmp_path / "checkout", sandbox, with_secrets=False)


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of the test's own on the test server (the command loads into datasets named
    after the sources), dropped afterwards."""
    name = f"t_actions_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(postgres_url, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()


def loaded_pipelines(warehouse: PostgresWarehouse) -> dict[str, list[Any]]:
    return {
        source: [restored_pipeline(warehouse, pipeline_name(source, "postgres"), source, source)]
        for source in SOURCES
    }


@pytest.mark.postgres
def test_the_daily_workflow_loads_postgres_and_its_next_run_on_a_fresh_runner_the_changes(
    sandbox: SandboxProcess, project: Path, database: str, tmp_path: Path
) -> None:
    secrets = {**repository_secrets(sandbox), "POSTGRES_CREDENTIALS": database}
    warehouse = PostgresWarehouse("unused", tmp_path / "reader", database)

    run_on_fresh_runner(DAILY, project, secrets, tmp_path / "runner-1")
    assert_sources_equal_truth(warehouse, sandbox, loaded_pipelines(warehouse), changed=False)

    for case in CASES.values():
        case.change(sandbox)
    shutil.rmtree(tmp_path / "reader")  # the reader's local copies too
    run_on_fresh_runner(DAILY, project, secrets, tmp_path / "runner-2")
    assert_sources_equal_truth(warehouse, sandbox, loaded_pipelines(warehouse), changed=True)


def test_the_smoke_workflow_loads_a_page_of_every_source(
    sandbox: SandboxProcess, project: Path, tmp_path: Path
) -> None:
    results = run_on_fresh_runner(SMOKE, project, repository_secrets(sandbox), tmp_path / "runner")

    for source, result in results.items():
        assert f"{source}: smoke ok" in result.stdout
    assert not list(project.glob("*.duckdb"))  # a throwaway file, not the project's
