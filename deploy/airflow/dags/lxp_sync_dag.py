"""lxp-sync's daily load in Airflow 3, on dlt's own Airflow helper (`PipelineTasksGroup`).

Copy this file into Airflow's dags folder and the project's `.dlt/config.toml` into `dags/.dlt/`
(dlt's helper reads settings from there); give secrets as environment variables of the Airflow
workers (or `dags/.dlt/secrets.toml`). README, "Scheduling and deployment > Airflow", has the steps.

One task group per source. A task runs one dlt pipeline on one source, or on one resource of it:

- plusplus_rest: a task per resource, each with a pipeline (state) and a dlt schema of its own,
  `lxp_sync_<source>[_<destination>]__<resource>` and `<source>__<resource>` (as dlt's
  `parallel-isolated`, which shares one schema name: tasks would then restore each other's
  schemas). Every resource keeps its cursor and refresh-window hashes in its own resource state
  and shares nothing with the others, so the tasks may run at the same time.
- plusplus_graphql, pluvo: a task per resource listed in `resources` of the source's settings
  (each connection keeps its own cursor); with no list, one task for the whole source, since its
  resources are found by introspection when the task runs (parsing this file never calls an API).
- pitchly: one task, the pipeline the command uses (`lxp_sync_pitchly[_<destination>]`). Its
  tables share the source state: each run assigns the warehouse name of every table in one pass
  from names remembered there, so two tasks writing it would lose one task's update (dlt saves a
  pipeline's state whole).

Every task of a tenant's source takes a slot of the pool `lxp_sync_<tenant>_<source>`: its slots
are the tenant's rate budget for that API (1: one task at a time). Create the pools first
(`airflow pools import pools.json`); a task whose pool is missing never starts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dlt
import pendulum
from airflow.sdk import DAG
from dlt.helpers.airflow_helper import PipelineTasksGroup

from lxp_sync import loader_file_format, run_contract
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import (
    DEFAULT_DUCKDB_FILE,
    RunOptions,
    make_destination,
    pipeline_name,
)
from lxp_sync.sources.plusplus.settings import REST_ENDPOINTS

# Settings: edit them here, or set the variables for the scheduler and the workers alike.
TENANT = os.environ.get("LXP_SYNC_TENANT", "acme")  # the DAG is lxp_sync_<tenant>; pools too
DESTINATION = os.environ.get("LXP_SYNC_DESTINATION", "bigquery")  # or postgres, duckdb
# "filesystem": load files go to the bucket of [destination.filesystem] bucket_url (gs://...)
# and BigQuery loads them from there (README: "Teams that outgrow one machine")
STAGING = os.environ.get("LXP_SYNC_STAGING") or None
DATASET_PREFIX = os.environ.get("LXP_SYNC_DATASET_PREFIX", "")  # dataset: <prefix><source>
LOAD = os.environ.get("LXP_SYNC_SOURCES", ",".join(SOURCES)).split(",")
SCHEDULE = os.environ.get("LXP_SYNC_SCHEDULE", "0 3 * * *")  # daily, 03:00 UTC
RETRIES = int(os.environ.get("LXP_SYNC_RETRIES", "2"))

# Sources whose resources keep separate state, and so may run as separate tasks.
SPLIT = {"plusplus_rest", "plusplus_graphql", "pluvo"}

# lxp-sync's progress lines (rows and pages per resource) in the task logs
logging.getLogger("lxp_sync").setLevel(logging.INFO)


def task_resources(source: str) -> list[str | None]:
    """The resources to run as tasks of their own; `[None]`: one task for the whole source."""
    if source not in SPLIT:
        return [None]
    listed = dlt.config.get(f"sources.{source}.resources")
    if isinstance(listed, str):  # from the environment: "a,b" or '["a", "b"]'
        listed = json.loads(listed) if listed.lstrip().startswith("[") else listed.split(",")
    names = [str(name).strip() for name in listed or [] if str(name).strip()]
    if not names and source == "plusplus_rest":
        names = list(REST_ENDPOINTS)
    return names or [None]


def destination() -> Any:
    if DESTINATION != "duckdb":
        return make_destination(RunOptions(destination=DESTINATION))
    # The helper points relative local paths at a new temporary folder per task: a relative
    # DuckDB path is taken from the project folder (the dags folder) instead. DuckDB takes one
    # writer at a time, so the DAG then runs one task at a time (max_active_tasks below).
    path = dlt.config.get("destination.duckdb.credentials")
    path = path if isinstance(path, str) else DEFAULT_DUCKDB_FILE
    project = os.environ["DLT_PROJECT_DIR"]  # set by PipelineTasksGroup
    return make_destination(RunOptions(duckdb_path=os.path.join(project, path)))


def source_for(pipeline: dlt.Pipeline, source: str, resource: str | None) -> Callable[[], Any]:
    """Makes the task's source when the task runs: no API call and no secret at parse time."""

    def make() -> Any:
        made = SOURCES[source].factory(**({"resources": [resource]} if resource else {}))
        if resource:
            # a dlt schema of the task's own too: pipelines restore a schema by its name, so
            # tasks sharing one would each restore another task's tables in place of their own
            made = made.clone(with_name=f"{source}__{resource}")
        made.schema_contract = run_contract(pipeline, made)
        return made

    return make


with DAG(
    dag_id=f"lxp_sync_{TENANT}",
    description=f"lxp-sync: {', '.join(LOAD)} of {TENANT} into {DESTINATION}",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one run of the tenant's load at a time
    max_active_tasks=1 if DESTINATION == "duckdb" else 16,
    default_args={"retries": RETRIES, "retry_delay": timedelta(minutes=10)},
    tags=["lxp-sync"],
) as dag:
    for source in LOAD:
        # before the pipelines: it gives them a fresh local folder and the dags folder's .dlt/
        group = PipelineTasksGroup(source, wipe_local_data=True, use_task_logger=True)
        for resource in task_resources(source):
            name = pipeline_name(source, DESTINATION) + (f"__{resource}" if resource else "")
            pipeline = dlt.pipeline(
                pipeline_name=name,
                destination=destination(),
                staging=STAGING,
                dataset_name=f"{DATASET_PREFIX}{source}",
            )
            group.add_run(
                pipeline,
                source_for(pipeline, source, resource),
                decompose="none",
                loader_file_format=loader_file_format(DESTINATION),
                pool=f"lxp_sync_{TENANT}_{source}",
            )
