"""`--full-refresh` reloads the selected resources and nothing else, and a replace is atomic.

A full refresh loads its resources with the replace disposition for one run: dlt resets their
state (cursors), reads everything, and swaps the rows in from the staging dataset in one
transaction (`insert-from-staging`), so that a reader, or a run killed half way, never finds a
replaced table empty or partial. Other resources and their tables are not touched, and any
schema contract holds (no table is dropped from the schema).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.common.destination.client import RunnableLoadJob

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import ATOMIC_REPLACE, RunOptions, pipeline_name, run_source
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync, sync_to
from tests.support.runs import (
    REPO,
    FirstLoads,
    killed_at,
    run_args,
    source_env,
    warehouse_rows,
)
from tests.support.warehouse import Warehouse
from tests.test_destinations import CASES
from tests.test_pitchly import assert_table_equals_truth, tables_by_name
from tests.test_plusplus_graphql import assert_connection_equals_truth
from tests.test_plusplus_rest import EMBEDDED_COPIES, assert_warehouse_equals_truth

ROWS = 600


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=33) as process:
        yield process


@pytest.fixture(scope="module")
def first_loads(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> FirstLoads:
    return FirstLoads(sandbox, tmp_path_factory)


def snapshot(workdir: Path, source: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, in a stable order."""
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.execute(f'SELECT * FROM "{source}"."{table}"').fetchall(), key=repr)


def table_id(sandbox: SandboxProcess, name: str) -> str:
    return tables_by_name(sandbox)[name]["id"]


def count(workdir: Path, source: str, table: str) -> int:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f'SELECT COUNT(*) FROM "{source}"."{table}"').fetchone()[0]


def test_full_refresh_of_one_resource_reloads_it_alone_under_a_frozen_contract(
    sandbox: SandboxProcess,
    first_loads: FirstLoads,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    env["SOURCES__PLUSPLUS_REST__SCHEMA_CONTRACT"] = "freeze"
    first_loads.into(source, workdir)
    others = ["content_items", "content_items__groups", "users"]
    untouched = {table: snapshot(workdir, source, table) for table in others}
    CASES[source].change(sandbox)  # rows change everywhere; only assignments may pick them up
    sandbox.clear_requests()

    result = lxp_sync(
        "run", source, "--full-refresh", "--resources", "assignments", env=env, cwd=workdir
    )

    assert result.returncode == 0, result.stderr
    for table, before in untouched.items():
        assert snapshot(workdir, source, table) == before, f"{table} was touched"
    queries = [entry["query"] for entry in sandbox.requests(source)]
    assert queries and not [q for q in queries if "_gte" in q], "read from a cursor, not in full"
    rows = warehouse_rows(source, workdir, monkeypatch)
    assert_warehouse_equals_truth(sandbox, rows, ignore=EMBEDDED_COPIES, resources=["assignments"])


def test_full_refresh_of_one_pitchly_table_reads_it_in_full_and_no_other(
    sandbox: SandboxProcess,
    first_loads: FirstLoads,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "pitchly"
    env = source_env(source, sandbox, workdir)
    first_loads.into(source, workdir)
    companies = snapshot(workdir, source, "sales__companies")
    sandbox.mutate(api=source, entity=f"records:{table_id(sandbox, 'Companies')}", update=2)

    result = lxp_sync(
        "run", source, "--full-refresh", "--resources", "sales__deals", env=env, cwd=workdir
    )

    assert result.returncode == 0, result.stderr
    # its state (cursor, layout, count) was reset with the resource's: a full read
    assert "pitchly.sales__deals: reading every record (first run)" in result.stderr
    assert snapshot(workdir, source, "sales__companies") == companies
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(workdir / "warehouse.duckdb"))
    pipeline = dlt.attach(
        pipeline_name(source, "duckdb"), pipelines_dir=str(workdir / "dlt_data" / "pipelines")
    )
    assert_table_equals_truth(
        sandbox, pipeline, workdir, table_id(sandbox, "Deals"), "sales__deals"
    )


def test_full_refresh_keeps_hard_deleted_rows_out(sandbox: SandboxProcess, workdir: Path) -> None:
    source = "plusplus_graphql"
    env = {**source_env(source, sandbox, workdir), "SOURCES__PLUSPLUS_GRAPHQL__HARD_DELETE": "true"}
    args = ["run", source, "--resources", "events"]
    assert lxp_sync(*args, env=env, cwd=workdir).returncode == 0
    sandbox.mutate(api=source, entity="events", delete=3)

    result = lxp_sync(*args, "--full-refresh", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    # a replace ignores dlt's hard_delete hint: the rows it marks must not be loaded
    assert_connection_equals_truth(sandbox, workdir, "events", hard_delete=True)


# --- atomic replace --------------------------------------------------------------------------------


def test_a_killed_full_refresh_leaves_the_old_table_whole_and_the_rerun_equals_truth(
    sandbox: SandboxProcess,
    first_loads: FirstLoads,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    first_loads.into(source, workdir)
    before = count(workdir, source, "assignments")
    args = ["run", source, "--full-refresh", "--resources", "assignments"]

    # staging filled, the swap not yet run (truncate-and-insert empties the table before any job)
    killed_at("load.sql_job", args, env, workdir)

    assert count(workdir, source, "assignments") == before  # not emptied, not half filled
    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    CASES[source].equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), True)


@pytest.mark.parametrize("destination", ["postgres", "bigquery"], indirect=True)
def test_a_replace_swaps_the_rows_in_at_once_on_every_sql_destination(
    destination: Warehouse, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers during a replace see the old rows: seen just before the swap, on the warehouse."""
    source, table = "plusplus_rest", "groups"
    spec = SOURCES[source]
    first = sync_to(destination, source, sandbox, resources=[table])
    before = len(destination.rows(first, table))
    seen: list[int] = []
    run_managed = RunnableLoadJob.run_managed

    def count_before_the_swap(job: RunnableLoadJob, *args: Any) -> Any:
        if job.file_name().startswith(f"{table}.") and job.file_name().endswith(".sql"):
            seen.append(len(destination.rows(first, table)))
        return run_managed(job, *args)

    monkeypatch.setattr(RunnableLoadJob, "run_managed", count_before_the_swap)
    options = RunOptions(
        destination=destination.make(destination.dataset_name),
        dataset=destination.dataset_name,
        pipelines_dir=str(destination.workdir / "pipelines"),
        full_refresh=True,
    )
    args = {**spec.sandbox_args(sandbox.url), "resources": [table]}
    pipeline = run_source(spec, spec.factory(**args), options)

    assert seen == [before], "the replace must run as SQL from staging, the table whole till then"
    assert destination.rows(pipeline, table)  # and the rows are in
    config = pipeline.destination.configuration(None, accept_partial=True)
    assert config.replace_strategy == ATOMIC_REPLACE


def test_plain_dlt_in_the_project_folder_replaces_atomically_on_every_destination() -> None:
    """`.dlt/config.toml` sets the replace strategy for a user's own pipeline too."""
    script = (
        "from dlt.common.destination import Destination\n"
        "for name in ('duckdb', 'postgres', 'bigquery'):\n"
        "    config = Destination.from_reference(name).configuration(None, accept_partial=True)\n"
        "    print(name, config.replace_strategy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        word for name in ("duckdb", "postgres", "bigquery") for word in (name, ATOMIC_REPLACE)
    ]
