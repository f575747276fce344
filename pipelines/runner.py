"""Build the dlt pipeline for a source, run it, and read back what it loaded."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.errors import ConfigurationError

log = logging.getLogger("lxp_sync")

# The loader file format per destination, where dlt's default is not the best one:
# - duckdb: dlt's default insert_values files made loads slow and memory-hungry; parquet is fast.
# - postgres: insert_values (dlt's default for rows), also for Arrow tables. Not csv: dlt's COPY
#   turns every empty string into NULL (FORCE_NULL), and the warehouse must equal the source.
#   (dlt loads parquet into Postgres only through an ADBC driver.)
# - bigquery: jsonl, also for Arrow tables (dlt converts them): BigQuery does not load JSON
#   columns (lists, free-form fields) from parquet, which dlt would pick for Arrow tables.
FILE_FORMATS = {"duckdb": "parquet", "postgres": "insert_values", "bigquery": "jsonl"}
DEFAULT_DUCKDB_FILE = "lxp_sync.duckdb"


@dataclass
class RunOptions:
    # a dlt destination name (credentials from dlt's settings) or a ready dlt destination object
    destination: str | Destination = "duckdb"
    dataset: str | None = None
    pipelines_dir: str | None = None
    full_refresh: bool = False
    duckdb_path: str | None = None
    loader_file_format: str | None = None
    schema_contract: Any = None  # None: the source's `schema_contract` setting, else "evolve"


CONTRACT_MODES = ("evolve", "discard_value", "discard_row", "freeze")


def schema_contract(source: str, override: Any = None) -> Any:
    """dlt's schema contract for a source: `sources.<name>.schema_contract`, default `evolve`.

    A mode for everything (`"freeze"`) or per entity (`{columns = "freeze"}`), as dlt takes it.
    """
    contract = (
        override if override is not None else dlt.config.get(f"sources.{source}.schema_contract")
    )
    contract = contract if contract is not None else "evolve"
    modes = contract.values() if isinstance(contract, Mapping) else [contract]
    if any(mode not in CONTRACT_MODES for mode in modes):
        raise ConfigurationError(
            f"schema_contract {contract!r} is not one of {', '.join(CONTRACT_MODES)} "
            "(or a table of them per entity: tables, columns, data_type)",
            resource=source,
        )
    return dict(contract) if isinstance(contract, Mapping) else contract


def pipeline_name(source: str, destination: str) -> str:
    return f"lxp_sync_{source}" if destination == "duckdb" else f"lxp_sync_{source}_{destination}"


def destination_name(destination: str | Destination) -> str:
    """`postgres` for `"postgres"` and for `dlt.destinations.postgres(...)` alike."""
    return destination if isinstance(destination, str) else destination.destination_name


def destination_kind(destination: str | Destination) -> str:
    """The kind of warehouse (`postgres`), also for a destination object with a name of its own."""
    if isinstance(destination, str):
        return destination
    return destination.destination_type.rsplit(".", 1)[-1]


def make_destination(options: RunOptions) -> Any:
    if options.destination != "duckdb":
        return options.destination  # a name: credentials from dlt's settings; or an object
    path = options.duckdb_path
    if path is None:
        configured = dlt.config.get("destination.duckdb.credentials")
        path = configured if isinstance(configured, str) else DEFAULT_DUCKDB_FILE
    return dlt.destinations.duckdb(path)


def run_source(spec: Any, source: Any, options: RunOptions) -> Pipeline:
    """Run one source; raises on any failed load job (dlt's packages keep a rerun safe)."""
    destination = destination_name(options.destination)
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name(spec.name, destination),
        destination=make_destination(options),
        dataset_name=options.dataset or spec.name,
        pipelines_dir=options.pipelines_dir,
    )
    file_format = options.loader_file_format or FILE_FORMATS.get(
        destination_kind(options.destination)
    )
    contract = schema_contract(spec.name, options.schema_contract)
    if contract != "evolve" and not _has_loaded(pipeline, source.name):
        contract = "evolve"  # the first load creates the tables that the contract then guards
    info: LoadInfo = pipeline.run(
        source,
        loader_file_format=file_format,
        refresh="drop_sources" if options.full_refresh else None,
        schema_contract=contract,
    )
    info.raise_on_failed_jobs()
    return pipeline


def _has_loaded(pipeline: Pipeline, schema_name: str) -> bool:
    pipeline.sync_destination()  # the schema may live only in the destination (a new machine)
    schema = pipeline.schemas.get(schema_name) if schema_name in pipeline.schema_names else None
    return bool(schema and schema.data_table_names())


def data_tables(pipeline: Pipeline) -> list[str]:
    return sorted(
        name for name in pipeline.default_schema.data_table_names() if not name.startswith("_dlt")
    )


def row_counts(pipeline: Pipeline) -> dict[str, int]:
    """Rows per data table of the pipeline's dataset."""
    counts: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in data_tables(pipeline):
            qualified = client.make_qualified_table_name(table)
            try:
                rows = client.execute_sql(f"SELECT COUNT(*) FROM {qualified}")
            except Exception:  # a table in the schema that was never created
                continue
            counts[table] = int(rows[0][0])
    return counts


def smoke_check(pipeline: Pipeline, source: Any) -> list[str]:
    """Problems with a smoke load: each selected resource must have loaded rows with its key."""
    problems = []
    schema = pipeline.default_schema
    counts = row_counts(pipeline)
    for name, resource in source.selected_resources.items():
        table = resource.table_name if isinstance(resource.table_name, str) else name
        if table not in schema.tables or not counts.get(table):
            problems.append(f"{source.name}.{name}: no rows loaded")
            continue
        columns = schema.tables[table].get("columns", {})
        keys = resource.compute_table_schema().get("columns", {})
        missing = [
            column
            for column, hint in keys.items()
            if hint.get("primary_key") and column not in columns
        ]
        if missing:
            problems.append(f"{source.name}.{name}: primary key {missing} missing from the table")
    return problems


def status_lines(source: str, destination: str, pipelines_dir: str | None) -> list[str]:
    """The last load and the incremental cursors of a source's pipeline."""
    try:
        pipeline = dlt.attach(pipeline_name(source, destination), pipelines_dir=pipelines_dir)
    except Exception:
        return [f"{source}: no pipeline yet; run `lxp-sync run {source}` first"]
    lines = [f"{source}: dataset {pipeline.dataset_name} at {pipeline.destination}"]
    trace = pipeline.last_trace
    if trace is not None:
        lines.append(f"  last run: {trace.started_at} ({len(trace.steps)} steps)")
    resources = pipeline.state.get("sources", {}).get(source, {}).get("resources", {})
    for name, state in sorted(resources.items()):
        for cursor, inc in state.get("incremental", {}).items():
            lines.append(f"  {name}: {cursor} >= {inc.get('last_value')}")
    return lines


def run_contract(pipeline: Pipeline, source_name: str, schema_name: str | None = None) -> Any:
    """The schema contract for a run outside the command (an Airflow task): the source's setting,
    but `evolve` on the first load of the schema (`schema_name`, by default the source's), which
    creates the tables the contract then guards."""
    contract = schema_contract(source_name)
    if contract != "evolve" and not _has_loaded(pipeline, schema_name or source_name):
        return "evolve"
    return contract
