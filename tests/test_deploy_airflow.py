"""The Airflow DAG (deploy/airflow/dags/lxp_sync_dag.py), set up as the README says and run with
`airflow dags test` against the sandbox: Airflow 3 in its own venv (`.test-env/airflow`), SQLite
as its database, the pools imported from deploy/airflow/pools.json, the sources' secrets in the
Airflow Variable `dlt_secrets_toml`, everything else in the environment. The warehouse (DuckDB;
PostgreSQL, with a second run after changes) must equal the sandbox's truth.

Each source loads the resources that `tests/test_destinations.py` compares with the truth, each
as a task of its own (Pitchly: one task, its tables share state), to keep the runs short.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests.deployments import SECRETS, assert_sources_equal_truth, restored_pipeline
from tests.support.airflow import AirflowHome, ensure_airflow_venv
from tests.support.warehouse import DuckDBWarehouse, Warehouse
from tests.test_destinations import CASES, ROWS

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "deploy" / "airflow" / "dags" / "lxp_sync_dag.py"
POOLS = REPO / "deploy" / "airflow" / "pools.json"
TENANT = "acme"  # the tenant of pools.json
DAG_ID = f"lxp_sync_{TENANT}"
SPLIT = {"plusplus_rest", "plusplus_graphql", "pluvo"}  # a task per resource


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=31) as process:
        yield process


@dataclass
class Deployment:
    home: AirflowHome
    # `airflow dags list --local`: the DAGs found in the dags folder
    dags: list[dict]
    # requests the sandbox received while Airflow set up and parsed the DAG file
    requests_at_parse: int


@pytest.fixture(scope="module")
def airflow(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """An Airflow home as the README sets one up: the DAG and the project's .dlt/config.toml in
    the dags folder, the database migrated, the pools imported, the secrets in a Variable."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow"), ensure_airflow_venv())
    shutil.copy(DAG_FILE, home.dags)
    (home.dags / ".dlt").mkdir()
    shutil.copy(REPO / ".dlt" / "config.toml", home.dags / ".dlt")
    secrets = {}
    for name, spec in SOURCES.items():
        args = spec.sandbox_args(sandbox.url)
        secrets[name] = {key: value for key, value in args.items() if key in SECRETS}
    before = len(sandbox.requests())
    output = home.commands(
        ["db", "migrate"],
        ["pools", "import", str(POOLS)],
        ["variables", "set", "dlt_secrets_toml", _toml({"sources": secrets})],
        ["dags", "list", "--local", "--output", "json"],
        env=dag_env(sandbox, DuckDBWarehouse("t_parse", home.home)),
    )
    listed = [line for line in output.splitlines() if line.startswith("[")]
    return Deployment(home, json.loads(listed[-1]), len(sandbox.requests()) - before)


def _toml(document: dict) -> str:
    """A TOML document of tables of strings (all the secrets need)."""
    lines = []
    for section, tables in document.items():
        for table, values in tables.items():
            lines.append(f"[{section}.{table}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def dag_env(
    sandbox: SandboxProcess, warehouse: Warehouse, sources: list[str] | None = None
) -> dict[str, str]:
    """The DAG's settings (loading `sources`, by default all), the sources' non-secret settings,
    the warehouse's credentials."""
    env = {
        "LXP_SYNC_SOURCES": ",".join(sources or SOURCES),
        "LXP_SYNC_TENANT": TENANT,
        "LXP_SYNC_DESTINATION": warehouse.name,
        "LXP_SYNC_DATASET_PREFIX": f"{warehouse.dataset_name}_",
        "LXP_SYNC_RETRIES": "0",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        **warehouse.env,
    }
    for name, spec in SOURCES.items():
        for key, value in spec.sandbox_args(sandbox.url).items():
            if key not in SECRETS:
                env[f"SOURCES__{name.upper()}__{key.upper()}"] = str(value)
        env[f"SOURCES__{name.upper()}__RESOURCES"] = json.dumps(CASES[name].resources)
    return env


def run_dag(airflow: Deployment, env: dict[str, str]) -> None:
    done = airflow.home.airflow("dags", "test", DAG_ID, env=env, timeout=900)
    runs = airflow.home.task_runs(DAG_ID)
    failed = [run.task_id for run in runs if run.state != "success"]
    assert done.returncode == 0 and not failed, f"failed: {failed}\n{done.stdout[-6000:]}"
    expected = []
    for source in env["LXP_SYNC_SOURCES"].split(","):
        name = pipeline_name(source, env["LXP_SYNC_DESTINATION"])
        if source in SPLIT:
            expected += [f"{source}.{name}__{resource}" for resource in CASES[source].resources]
        else:
            expected.append(f"{source}.{name}")
    assert sorted(run.task_id for run in runs) == sorted(expected)
    for run in runs:
        assert run.pool == f"lxp_sync_{TENANT}_{run.task_id.split('.')[0]}", run


def task_pipelines(warehouse: Warehouse, sources: list[str]) -> dict[str, list[Pipeline]]:
    """The DAG's pipelines, per source, as a task on a fresh worker restores them from the
    warehouse: one per resource (schema `<source>__<resource>`) where the source is split, else
    one (schema `<source>`)."""
    pipelines = {}
    for source in sources:
        name = pipeline_name(source, warehouse.name)
        dataset = f"{warehouse.dataset_name}_{source}"
        if source in SPLIT:
            pipelines[source] = [
                restored_pipeline(warehouse, f"{name}__{r}", dataset, f"{source}__{r}")
                for r in CASES[source].resources
            ]
        else:
            pipelines[source] = [restored_pipeline(warehouse, name, dataset, source)]
    return pipelines


def test_airflow_finds_the_dag_and_parsing_it_sends_no_request_to_any_api(
    airflow: Deployment,
) -> None:
    assert [dag["dag_id"] for dag in airflow.dags] == [DAG_ID]
    assert airflow.requests_at_parse == 0


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_the_dag_loads_a_split_source_and_a_one_task_source_into_duckdb_equal_to_the_truth(
    airflow: Deployment, sandbox: SandboxProcess, destination: Warehouse
) -> None:
    # every source runs in the DAG once: two here, the other two twice on PostgreSQL below
    sources = ["plusplus_rest", "plusplus_graphql"]
    run_dag(airflow, dag_env(sandbox, destination, sources))

    pipelines = task_pipelines(destination, sources)
    assert_sources_equal_truth(destination, sandbox, pipelines, changed=False)


@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_the_dags_next_run_into_postgres_loads_the_changes_from_the_state_in_the_warehouse(
    airflow: Deployment, sandbox: SandboxProcess, destination: Warehouse
) -> None:
    # a split source and a source in one task: the two ways a task restores its state
    sources = ["pluvo", "pitchly"]
    env = dag_env(sandbox, destination, sources)
    run_dag(airflow, env)
    for source in sources:
        CASES[source].change(sandbox)

    # every task starts in a new, empty local folder: the cursors come from the warehouse
    run_dag(airflow, env)

    pipelines = task_pipelines(destination, sources)
    assert_sources_equal_truth(destination, sandbox, pipelines, changed=True)
