"""How to run a source so that a warehouse gets the same tables from any dlt pipeline.

`lxp-sync run` and a user's own `pipeline.run(source, **run_options(pipeline, source))` take
their load file format and schema contract from here, so both load the same tables:

    pipeline = dlt.pipeline("lxp_sync_pitchly", destination="postgres", dataset_name="pitchly")
    pipeline.run(source, **run_options(pipeline, source))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.extract import DltSource
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.errors import ConfigurationError

# The loader file format per destination, where dlt's default is not the best one:
# - duckdb: dlt's default insert_values files made loads slow and memory-hungry; parquet is fast.
# - postgres: insert_values (dlt's default for rows), also for Arrow tables. Not csv (dlt's pick
#   for Arrow tables): it cannot write list columns, and dlt's COPY turns every empty string into
#   NULL (FORCE_NULL) while the warehouse must equal the source. (dlt loads parquet into Postgres
#   only through an ADBC driver.)
# - bigquery: jsonl, also for Arrow tables (dlt converts them): BigQuery does not load JSON
#   columns (lists, free-form fields) from parquet, which dlt would pick for Arrow tables.
FILE_FORMATS = {"duckdb": "parquet", "postgres": "insert_values", "bigquery": "jsonl"}

CONTRACT_MODES = ("evolve", "discard_value", "discard_row", "freeze")


def destination_kind(destination: str | Destination | Pipeline) -> str:
    """The kind of warehouse (`postgres`), also for a destination object with a name of its own."""
    if isinstance(destination, Pipeline):
        destination = destination.destination
    if destination is None:
        return ""
    if isinstance(destination, str):
        return destination.rsplit(".", 1)[-1]
    return destination.destination_type.rsplit(".", 1)[-1]


def loader_file_format(destination: str | Destination | Pipeline) -> str | None:
    """The load file format for a destination (a name, a dlt destination or a pipeline's)."""
    return FILE_FORMATS.get(destination_kind(destination))


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


def has_loaded(pipeline: Pipeline, schema_name: str) -> bool:
    """Whether the schema has loaded a table into the pipeline's destination."""
    pipeline.sync_destination()  # the schema may live only in the destination (a new machine)
    schema = pipeline.schemas.get(schema_name) if schema_name in pipeline.schema_names else None
    return bool(schema and schema.data_table_names())


def run_contract(pipeline: Pipeline, source: DltSource, override: Any = None) -> Any:
    """The source's schema contract (`override`, else its setting), but `evolve` on the first
    load of its schema: that load creates the tables the contract then guards."""
    contract = schema_contract(source.section, override)
    if contract != "evolve" and not has_loaded(pipeline, source.name):
        return "evolve"
    return contract


def run_options(
    pipeline: Pipeline,
    source: DltSource,
    *,
    loader_file_format: str | None = None,
    schema_contract: Any = None,
) -> dict[str, Any]:
    """The arguments of `pipeline.run(source, ...)` that load what `lxp-sync run` loads.

    `loader_file_format` and `schema_contract` override the source's defaults.
    """
    return {
        "loader_file_format": loader_file_format or FILE_FORMATS.get(destination_kind(pipeline)),
        "schema_contract": run_contract(pipeline, source, schema_contract),
    }


__all__ = ["FILE_FORMATS", "loader_file_format", "run_contract", "run_options", "schema_contract"]
