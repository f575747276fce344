"""A user's own dlt pipeline loads what `lxp-sync run` loads, with `lxp_sync.run_options`.

Each source runs twice into each warehouse: through the command's runner, and through plain
`dlt.pipeline(...).run(source, **run_options(pipeline, source))`. Both must give the same tables,
columns, types and rows. One resource per source keeps the emulator's share short; between them
they have lists (child tables), JSON columns and Arrow tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.pipeline import Pipeline

import lxp_sync
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import DEFAULT_DUCKDB_FILE, pipeline_name
from lxp_sync_sandbox.server import SandboxProcess
from tests import helpers
from tests.helpers import REPO, source_env, sync_to
from tests.support.warehouse import Warehouse

# a resource per source with the shapes that differ by file format: child tables and JSON
# (plusplus_graphql events, pluvo trainings), Arrow tables with lists as JSON (pitchly deals)
RESOURCES = {
    "plusplus_rest": "content_items",
    "plusplus_graphql": "events",
    "pluvo": "trainings",
    "pitchly": "sales__deals",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """A small sandbox that this module only reads."""
    with SandboxProcess(rows=300, seed=31) as process:
        yield process


def plain_run(destination: Warehouse, name: str, sandbox: SandboxProcess) -> Pipeline:
    """The source in a dlt pipeline of a user's own, with the helper's arguments."""
    source = SOURCES[name].factory(**SOURCES[name].sandbox_args(sandbox.url))
    source = source.with_resources(RESOURCES[name])
    pipeline = destination.pipeline(f"plain_{name}", dataset_name=f"{destination.dataset_name}_p")
    pipeline.run(source, **lxp_sync.run_options(pipeline, source)).raise_on_failed_jobs()
    return pipeline


def tables(destination: Warehouse, pipeline: Pipeline) -> dict[str, Any]:
    """Every data table: its columns with their warehouse types, and its rows (dlt's ids aside:
    each load draws its own, so child rows are compared as a multiset of their values)."""
    found = {}
    for table in pipeline.default_schema.data_table_names():
        types = destination.column_types(pipeline, table)
        rows = destination.rows(pipeline, table)
        found[table] = (types, sorted(repr(sorted(row.items())) for row in rows))
    return found


@pytest.mark.parametrize("name", list(RESOURCES))
def test_a_plain_dlt_pipeline_with_run_options_loads_what_the_command_loads(
    destination: Warehouse, sandbox: SandboxProcess, name: str
) -> None:
    command = sync_to(destination, name, sandbox, resources=[RESOURCES[name]])
    plain = plain_run(destination, name, sandbox)

    expected, got = tables(destination, command), tables(destination, plain)
    assert RESOURCES[name] in expected
    assert set(got) == set(expected)
    for table, (types, rows) in expected.items():
        assert got[table][0] == types, f"{table}: columns or types differ"
        assert rows, table
        assert got[table][1] == rows, f"{table}: rows differ"


def test_run_options_name_the_file_format_and_the_first_load_contract(
    workdir: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__PITCHLY__SCHEMA_CONTRACT", "freeze")
    source = SOURCES["pitchly"].factory(**SOURCES["pitchly"].sandbox_args(sandbox.url))
    source = source.with_resources("workspaces")
    pipeline = dlt.pipeline(
        "contract", destination=dlt.destinations.duckdb(str(workdir / "w.duckdb"))
    )

    first = lxp_sync.run_options(pipeline, source)
    pipeline.run(source, **first)
    later = lxp_sync.run_options(pipeline, source)

    assert first == {"loader_file_format": "parquet", "schema_contract": "evolve"}
    assert later == {"loader_file_format": "parquet", "schema_contract": "freeze"}
    assert lxp_sync.loader_file_format("postgres") == "insert_values"
    assert lxp_sync.loader_file_format(dlt.destinations.bigquery()) == "jsonl"


def test_dlt_tools_and_dataset_read_the_duckdb_file_the_command_wrote(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    """With the project's `.dlt/` (secrets.toml.example's DuckDB path), dlt's own tools open
    the file `lxp-sync run` loaded, not a new empty `<pipeline_name>.duckdb`."""
    project = workdir / "project"
    (project / ".dlt").mkdir(parents=True)
    for name in ("config.toml", "secrets.toml.example"):
        text = (REPO / ".dlt" / name).read_text()
        (project / ".dlt" / name.removesuffix(".example")).write_text(text)
    env = source_env("pluvo", sandbox, workdir)
    del env["DESTINATION__DUCKDB__CREDENTIALS"]  # the path from the project's secrets.toml
    ran = helpers.lxp_sync("run", "pluvo", "--resources", "trainings", env=env, cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert (project / DEFAULT_DUCKDB_FILE).exists()

    name = pipeline_name("pluvo", "duckdb")
    info = subprocess.run(
        [str(Path(sys.executable).with_name("dlt")), "pipeline", name, "info"],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "trainings" in info.stdout
    script = (
        f"import dlt; p = dlt.attach(pipeline_name={name!r});"
        "print(p.dataset()['trainings'].df().shape[0])"
    )
    counted = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(counted.stdout.split()[-1]) == len(sandbox.truth("pluvo", "paginatedTrainings"))
    assert not list(project.glob(f"{name}*.duckdb"))  # no new empty file beside it
