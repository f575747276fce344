"""Build the dlt pipeline for a source, run it, and read back what it loaded."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.extract import DltSource
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines import duckdb_hold, recovery
from lxp_sync.pipelines.memory import bound_writer_buffers, duckdb_destination
from lxp_sync.pipelines.project import default_setting
from lxp_sync.pipelines.runlock import run_lock
from lxp_sync.sources.core.lazy import found_resources
from lxp_sync.sources.core.run_options import destination_kind, has_loaded, run_options
from lxp_sync.sources.core.stop import raise_if_stopped

log = logging.getLogger("lxp_sync")

DEFAULT_DUCKDB_FILE = "lxp_sync.duckdb"


# A replace (a full refresh, Pitchly tables without Updated At, catalogs) loads into the
# staging dataset, then swaps the rows in with one transaction: readers see the old table or the
# new one, never an empty or partial one, also when the run is killed. dlt's default
# (`truncate-and-insert`) empties the table first. `.dlt/config.toml` sets it for plain dlt too.
ATOMIC_REPLACE = "insert-from-staging"


@dataclass
class RunOptions:
    # a dlt destination name (credentials from dlt's settings) or a ready dlt destination object
    destination: str | Destination = "duckdb"
    dataset: str | None = None
    pipelines_dir: str | None = None
    full_refresh: bool = False
    # with full_refresh: drop the selected resources' tables and create them anew (not atomic)
    recreate: bool = False
    duckdb_path: str | None = None
    loader_file_format: str | None = None
    schema_contract: Any = None  # None: the source's `schema_contract` setting, else "evolve"
    # seconds to wait for another run of the pipeline to end; None: `lxp_sync.lock_wait_s`, 0
    lock_wait_s: float | None = None
    # told, in one line, what a previous run left and what this run did about it
    on_recovery: Callable[[str], None] = log.warning
    # false: no deletes sweep after this run, whatever `reconcile_every` says (smoke runs)
    reconcile: bool = True
    # told, in one line per table, what the deletes sweep after the load changed
    on_sweep: Callable[[str], None] = log.warning
    # collects the run report (`report.RunRecorder`); None: no report
    recorder: Any = None
    # dlt's progress hook for the normalize and load phases (`progress.RunProgress`)
    progress: Any = None
    # make the analysts' views after the load: None follows the source's `views` setting
    views: bool | None = None
    on_views: Callable[[str], None] = log.info


def pipeline_name(source: str, destination: str) -> str:
    return f"lxp_sync_{source}" if destination == "duckdb" else f"lxp_sync_{source}_{destination}"


def destination_name(destination: str | Destination) -> str:
    """`postgres` for `"postgres"` and for `dlt.destinations.postgres(...)` alike."""
    return destination if isinstance(destination, str) else destination.destination_name


def make_destination(options: RunOptions) -> Destination:
    """The dlt destination to load into, replacing tables atomically unless configured otherwise."""
    if options.destination == "duckdb":
        path = options.duckdb_path
        if path is None:
            configured = dlt.config.get("destination.duckdb.credentials")
            path = configured if isinstance(configured, str) else DEFAULT_DUCKDB_FILE
        destination: Destination = duckdb_destination(path)
    elif isinstance(options.destination, str):
        # a name: credentials and the rest from dlt's settings
        destination = Destination.from_reference(options.destination)
    else:
        destination = options.destination
    sections = {destination_name(options.destination), destination_kind(options.destination)}
    keys = [f"destination.{section}.replace_strategy" for section in sorted(sections)]
    if not any(dlt.config.get(key) for key in [*keys, "destination.replace_strategy"]):
        destination.config_params.setdefault("replace_strategy", ATOMIC_REPLACE)
    fit_file_names(destination)
    return destination


def fit_file_names(destination: Destination) -> None:
    """Have dlt shorten table and column names beyond `recovery.MAX_IDENTIFIER_BYTES` (a name
    DuckDB or BigQuery would take, 64 KiB and 300 bytes, but too long for a file name; found
    by tests/test_generated_schemas.py) with a hash of the name, as it does beyond PostgreSQL's
    63 bytes."""
    caps = destination.capabilities()
    longest = min(caps.max_identifier_length, caps.max_column_identifier_length)
    if longest > recovery.MAX_IDENTIFIER_BYTES:
        destination.caps_params["max_identifier_length"] = recovery.MAX_IDENTIFIER_BYTES


# dlt gives rows handed to it as Arrow tables no `_dlt_load_id` unless told to (rows from
# dicts always have one): every table carries it, so that the analysts' views can say when each
# row was loaded (`_lxp_loaded_at`). `.dlt/config.toml` sets it, for plain dlt too; the command
# sets it wherever that setting is not made.
ARROW_LOAD_ID = "normalize.parquet_normalizer.add_dlt_load_id"
# dlt merges (and replaces atomically) through a staging dataset, and keeps the rows it staged
# there until the next load: a second copy of the last load in the warehouse (after PlusPlus
# GraphQL's first sync a DuckDB file of 29 MB at 100k rows, 15 MB without it; 218 and 194 MB at
# 1M, where DuckDB keeps the freed space for reuse). dlt empties the staging tables once a load
# is complete and recorded, which changes no row of the dataset (a kill before that leaves them
# to the next load, which empties them first). `.dlt/config.toml` sets it; the command sets it
# wherever that setting is not made.
TRUNCATE_STAGING = "load.truncate_staging_dataset"


def _command_defaults() -> None:
    """The dlt settings the command makes wherever the user's settings do not."""
    default_setting(ARROW_LOAD_ID, "true")
    default_setting(TRUNCATE_STAGING, "true")
    bound_writer_buffers()


def open_pipeline(
    source_name: str, options: RunOptions, pipelines_dir: Path | None = None
) -> Pipeline:
    """The dlt pipeline of a source and destination (its state and schemas, not run yet)."""
    _command_defaults()
    return dlt.pipeline(
        pipeline_name=pipeline_name(source_name, destination_name(options.destination)),
        destination=make_destination(options),
        dataset_name=options.dataset or source_name,
        pipelines_dir=str(pipelines_dir or options.pipelines_dir or get_dlt_pipelines_dir()),
        progress=options.progress or duckdb_hold.LoadHoldingCollector(),
    )


@contextmanager
def pipeline_session(source_name: str, options: RunOptions) -> Iterator[Pipeline]:
    """The pipeline, for one run or sweep at a time: under its lock (`runlock`), after what a
    killed or failed run left was finished or discarded (`recovery`)."""
    name = pipeline_name(source_name, destination_name(options.destination))
    pipelines_dir = Path(options.pipelines_dir or get_dlt_pipelines_dir())
    wait_s = options.lock_wait_s
    if wait_s is None:
        wait_s = float(dlt.config.get("lxp_sync.lock_wait_s") or 0.0)
    with run_lock(pipelines_dir, name, wait_s):
        leftovers = recovery.inspect(pipelines_dir / name)
        if leftovers.discard:
            recovery.discard(pipelines_dir / name)
        pipeline = open_pipeline(source_name, options, pipelines_dir)
        if leftovers.pending:
            recovery.finish(pipeline)
        if leftovers:
            options.on_recovery(leftovers.line(source_name))
        raise_if_stopped()
        yield pipeline


def run_source(spec: Any, source: Any, options: RunOptions) -> Pipeline:
    """Run one source; raises on any failed load job.

    What a killed or failed run left is finished or discarded first, then this run extracts
    what changed, in the same call (`pipeline_session`); a deletes sweep follows the load when
    `reconcile_every` says one is due (`reconcile`), and the analysts' views are made where the
    source's `views` setting says so (`views`).
    """
    from lxp_sync.pipelines.merge_counts import counting_merges
    from lxp_sync.pipelines.reconcile import plan_sweep, sweep_after_run, undo_plan
    from lxp_sync.pipelines.views import create_views, views_enabled

    recorder = options.recorder
    # the API's resources, found now (`sources/core/lazy.py`): an unknown resource or an API that
    # does not answer fails the run in its own words, before the pipeline or the warehouse opens
    found_resources(source)
    with pipeline_session(spec.name, options) as pipeline:
        first_load = not has_loaded(pipeline, source.name)
        # what a user's own pipeline gets from the same helper (`sources/core/run_options.py`)
        run_args = run_options(
            pipeline,
            source,
            loader_file_format=options.loader_file_format,
            schema_contract=options.schema_contract,
        )
        refresh = None
        if options.recreate:
            # the user asked for new tables: dlt drops them and their state, the load creates them
            refresh, run_args["schema_contract"] = "drop_resources", "evolve"
        elif options.full_refresh:
            reload_from_scratch(source)
        plan = plan_sweep(
            pipeline,
            source,
            first_load=first_load or not options.reconcile,
            full_refresh=options.full_refresh,
        )
        if recorder is not None:
            recorder.before_load(pipeline, source, first_load, options.full_refresh)
        counting = counting_merges(pipeline.sql_client) if recorder is not None else nullcontext()
        try:
            with counting as counter:
                info: LoadInfo = pipeline.run(source, refresh=refresh, **run_args)
            if recorder is not None:
                recorder.loaded(pipeline, info, counter)
            info.raise_on_failed_jobs()
        except BaseException:
            undo_plan(pipeline, source, plan)
            raise
        swept = sweep_after_run(pipeline, source, plan)
        for sweep in swept:
            options.on_sweep(sweep.line)
        if recorder is not None:
            recorder.swept(swept)
        if options.views if options.views is not None else views_enabled(spec.name):
            options.on_views(create_views(pipeline, source.name, force=False))
    return pipeline


def reload_from_scratch(source: DltSource) -> None:
    """A full refresh of the source's selected resources, and of nothing else.

    Each is loaded with the replace disposition for this run: dlt resets a replace resource's
    state (its cursors) before extracting, reads everything, and swaps its table and child
    tables atomically (`ATOMIC_REPLACE`). Tables stay in the schema, so any schema contract
    holds. A replace ignores dlt's `hard_delete` hint, so rows it marks are dropped here.
    """
    for resource in source.selected_resources.values():
        resource.apply_hints(write_disposition="replace")
        columns = resource.columns if isinstance(resource.columns, Mapping) else {}
        marked = {
            c: hint.get("data_type") for c, hint in columns.items() if hint.get("hard_delete")
        }
        if marked:
            drop = HardDeleted(marked)
            resource.add_filter(drop.keeps_row).add_map(drop.from_table)


class HardDeleted:
    """Rows that dlt's `hard_delete` would delete: True in a bool column, else any value."""

    def __init__(self, columns: Mapping[str, Any]) -> None:
        self.columns = columns

    def keeps_row(self, row: Any) -> bool:
        if not isinstance(row, Mapping):
            return True  # an Arrow table: `from_table`
        return not any(
            bool(row.get(c)) if kind == "bool" else row.get(c) is not None
            for c, kind in self.columns.items()
        )

    def from_table(self, item: Any) -> Any:
        if not isinstance(item, pa.Table):
            return item
        keep = None
        for column, kind in self.columns.items():
            if column in item.column_names:
                values = item[column]
                hit = pc.fill_null(values, False) if kind == "bool" else pc.is_valid(values)
                keep = pc.invert(hit) if keep is None else pc.and_(keep, pc.invert(hit))
        return item if keep is None else item.filter(keep)


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
