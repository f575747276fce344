"""The deletes sweep, warehouse side: rows whose key the source no longer lists are removed or marked.

Rows deleted at the source leave no trace a cursor can see (PlusPlus REST and Pluvo have no
deletions feed; a PlusPlus type whose soft delete bumps no `modified` does not show it). The sweep
lists only the keys of each resource at the source (`sources/core/sweep.py`, with the
completeness checks of a data read: a short listing fails, it never deletes), reads the keys of
the warehouse table, and for every key the source no longer has:

- `deletes = "mark"` (the default): sets `_lxp_deleted_at` (NULL for live rows) to the sweep's
  time; a marked row that the source lists again is live again (NULL), as is one loaded again;
- `deletes = "delete"`: removes the row and its rows in the child tables.

Rows the source still lists but now flags deleted (PlusPlus `is_deleted`) while the warehouse
does not get what a load would have given them: `is_deleted` true, or removed with `hard_delete`.
The keys are listed after the run's load: every row in the warehouse was read from the source
before the listing began, so a key the (complete) listing lacks was deleted since, also when this
very run loaded it. A sweep
that would remove or mark more than `max_delete_share` of a table's live rows changes nothing and
fails: an API that suddenly lists far fewer rows (a token that lost access) must not empty the
warehouse.

The SQL is plain (SELECT, UPDATE, DELETE with literal key lists through dlt's `sql_client`), so
it runs on DuckDB, PostgreSQL and BigQuery alike. Users of plain dlt call `reconcile(pipeline,
source)` after `pipeline.run(source)`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.schema.utils import get_nested_tables
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.errors import ConfigurationError, LxpSyncError
from lxp_sync.sources.core.sweep import KeyListing, SourceKeys, list_keys, listing_of

log = logging.getLogger("lxp_sync")

DELETED_AT = "_lxp_deleted_at"
DELETES_MODES = ("mark", "delete")
DEFAULT_DELETES = "mark"
DEFAULT_MAX_DELETE_SHARE = 0.2
DEFAULT_RECONCILE_EVERY = "24h"
# keys per DELETE/UPDATE statement
CHUNK = 1000
# where the schedule keeps its facts: the source's dlt state (committed with each load)
SCHEDULE_KEY = "lxp_reconcile"
# key listings read at once (each pages one resource; REST pages a resource concurrently too)
LISTINGS_AT_ONCE = 4


class SweepRefusedError(LxpSyncError):
    """The sweep would remove more than `max_delete_share` of a table."""


@dataclass(frozen=True)
class SweepSettings:
    """`[sources.<name>]` settings of the sweep."""

    deletes: str = DEFAULT_DELETES
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    every_runs: int | None = None
    every: timedelta | None = timedelta(hours=24)

    @classmethod
    def of(cls, source: str, **overrides: Any) -> SweepSettings:
        """The settings of `source` from dlt's config (`.dlt/config.toml`, the environment)."""

        def setting(name: str, default: Any) -> Any:
            if overrides.get(name) is not None:
                return overrides[name]
            value = dlt.config.get(f"sources.{source}.{name}")
            return default if value is None else value

        deletes = str(setting("deletes", DEFAULT_DELETES)).strip().lower()
        if deletes not in DELETES_MODES:
            raise ConfigurationError(
                f"deletes = {deletes!r} is not one of {', '.join(DELETES_MODES)}",
                resource=source,
                hint=f"Set `deletes` under [sources.{source}]",
            )
        share = setting("max_delete_share", DEFAULT_MAX_DELETE_SHARE)
        try:
            share = float(share)
        except (TypeError, ValueError):
            share = -1.0
        if not 0 <= share <= 1:
            raise ConfigurationError(
                f"max_delete_share = {setting('max_delete_share', None)!r} is not a share "
                "between 0 and 1",
                resource=source,
                hint=f"Set `max_delete_share` under [sources.{source}], e.g. 0.2",
            )
        runs, every = parse_every(source, setting("reconcile_every", DEFAULT_RECONCILE_EVERY))
        return cls(deletes, share, runs, every)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(source: str, value: Any) -> tuple[int | None, timedelta | None]:
    """`reconcile_every`: a number of runs (`5`), a duration (`"24h"`, `"30m"`, `"7d"`), or
    `"off"`/`0` (only `lxp-sync reconcile`)."""
    text = str(value).strip().lower()
    if text in ("off", "never", "0", "false", "none"):
        return None, None
    if text.isdigit():
        return int(text), None
    match = _DURATION.match(text)
    if match:
        return None, timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    raise ConfigurationError(
        f"reconcile_every = {value!r} is neither a number of runs nor a duration",
        resource=source,
        hint=f'Set `reconcile_every` under [sources.{source}] to e.g. 10, "24h" or "off"',
    )


@dataclass
class TableSweep:
    """What the sweep found for one table, before anything is changed."""

    resource: str
    table: str
    key_column: str
    gone: list[Any] = field(default_factory=list)  # keys the source no longer lists
    back: list[Any] = field(default_factory=list)  # marked keys the source lists again
    flagged: list[Any] = field(default_factory=list)  # keys the source now flags deleted
    live: int = 0  # rows not marked deleted
    deleted_column: str | None = None
    hard_delete: bool = False
    line: str | None = None  # what the sweep changed, once applied

    @property
    def deleted(self) -> int:
        """Rows found deleted at the source: marked, removed, or flagged `is_deleted`."""
        return len(self.gone) + len(self.flagged)

    @property
    def removes(self) -> int:
        """Rows that leave the live table (removed or marked)."""
        return len(self.gone) + (len(self.flagged) if self.hard_delete else 0)


def reconcile(
    pipeline: Pipeline,
    source: Any,
    *,
    resources: Sequence[str] | None = None,
    deletes: str | None = None,
    max_delete_share: float | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Sweep the resources of `source` (those with a key listing, or `resources`) against the
    warehouse of `pipeline`; one line per table that changed. Call it after `pipeline.run(source)`.
    """
    settings = SweepSettings.of(source.name, deletes=deletes, max_delete_share=max_delete_share)
    swept = reconcile_tables(pipeline, source, settings, resources, now)
    return [sweep.line for sweep in swept if sweep.line]


def reconcile_tables(
    pipeline: Pipeline,
    source: Any,
    settings: SweepSettings,
    resources: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[TableSweep]:
    """`reconcile`, returning each table the sweep changed (its counts and its line)."""
    now = now or datetime.now(UTC)
    if source.name not in pipeline.schema_names:
        return []  # never loaded
    schema = pipeline.schemas[source.name]
    state = pipeline.state.get("sources", {}).get(source.name, {})
    listings = []
    for name, resource in source.selected_resources.items():
        listing = listing_of(resource)
        table = listing.table_name(state) if listing else None
        if resources is not None and name not in resources:
            continue
        if listing is not None and table in schema.tables:
            listings.append((listing, table))
    # the listings are read side by side; every table is planned (and guarded) before any changes
    with ThreadPoolExecutor(max_workers=LISTINGS_AT_ONCE, thread_name_prefix="lxp-keys") as pool:
        found = list(pool.map(list_keys, [listing for listing, _ in listings]))
    with pipeline.sql_client() as client:
        planned = [
            _plan(client, schema, listing, table, keys, settings)
            for (listing, table), keys in zip(listings, found, strict=True)
        ]
    sweeps = [sweep for sweep in planned if sweep is not None]
    for sweep in sweeps:
        _guard(sweep, settings, source.name)
    if settings.deletes == "mark" and any(sweep.gone for sweep in sweeps):
        _add_deleted_at(pipeline, schema, [sweep.table for sweep in sweeps if sweep.gone])
    with pipeline.sql_client() as client:
        for sweep in sweeps:
            sweep.line = _apply(client, schema, sweep, settings, now)
    return [sweep for sweep in sweeps if sweep.line]


def _plan(
    client: Any,
    schema: Any,
    listing: KeyListing,
    table: str,
    found: SourceKeys,
    settings: SweepSettings,
) -> TableSweep | None:
    naming = schema.naming
    columns = schema.tables[table].get("columns", {})
    key_column = naming.normalize_identifier(listing.key)
    deleted_column = (
        naming.normalize_identifier(listing.deleted_field) if listing.deleted_field else None
    )
    if deleted_column not in columns:
        deleted_column = None
    marked_column = DELETED_AT if DELETED_AT in columns else None
    selected = [key_column, deleted_column or "NULL", marked_column or "NULL"]
    sql = f"SELECT {', '.join(_column(client, c) for c in selected)} FROM {_table(client, table)}"
    try:
        rows = client.execute_sql(sql) or []
    except DatabaseUndefinedRelation:
        return None  # in the schema, never created (no row ever loaded)
    sweep = TableSweep(
        listing.resource,
        table,
        key_column,
        deleted_column=deleted_column,
        hard_delete=listing.hard_delete,
    )
    keys = [row[0] for row in rows]
    present = found.present.contains(keys)
    flagged = found.flagged.contains(keys)
    for (key, is_deleted, marked), here, gone_flag in zip(rows, present, flagged, strict=True):
        if marked is None:
            sweep.live += 1
        if not here:
            if marked is None or settings.deletes == "delete":
                sweep.gone.append(key)
        elif marked is not None:
            sweep.back.append(key)
        elif gone_flag and deleted_column and not is_deleted:
            sweep.flagged.append(key)
    return sweep


def _guard(sweep: TableSweep, settings: SweepSettings, source: str) -> None:
    if not sweep.removes or sweep.removes <= settings.max_delete_share * sweep.live:
        return
    share = sweep.removes / max(sweep.live, 1)
    verbs = {"remove"} if sweep.flagged and sweep.hard_delete else set()
    if sweep.gone:
        verbs.add("mark" if settings.deletes == "mark" else "remove")
    verb = " or ".join(sorted(verbs))
    raise SweepRefusedError(
        f"the sweep would {verb} {sweep.removes} of {sweep.live} rows of table {sweep.table} "
        f"({share:.0%}) as deleted at the source, more than max_delete_share = "
        f"{settings.max_delete_share:g} allows; nothing was changed",
        resource=sweep.resource,
        hint=(
            "If the source really lost those rows, raise `max_delete_share` under "
            f"[sources.{source}] for one run; else check that the credentials still see every row"
        ),
    )


def _add_deleted_at(pipeline: Pipeline, schema: Any, tables: list[str]) -> None:
    """Add `_lxp_deleted_at` to the swept tables, through dlt (its schema and the destination)."""
    missing = [t for t in tables if DELETED_AT not in schema.tables[t].get("columns", {})]
    if not missing:
        return
    column = {"name": DELETED_AT, "data_type": "timestamp", "timezone": True, "nullable": True}
    for table in missing:
        schema.update_table({"name": table, "columns": {DELETED_AT: dict(column)}})
    pipeline.schemas.save_schema(schema)
    pipeline.sync_schema(schema.name)


def _apply(
    client: Any, schema: Any, sweep: TableSweep, settings: SweepSettings, now: datetime
) -> str | None:
    table = _table(client, sweep.table)
    key = _column(client, sweep.key_column)
    done = []
    if sweep.gone and settings.deletes == "delete":
        _remove(client, schema, sweep.table, sweep.key_column, sweep.gone)
        done.append(f"{len(sweep.gone)} rows deleted at the source removed")
    elif sweep.gone:
        stamp = client.capabilities.escape_literal(now)
        _each_chunk(
            client, f"UPDATE {table} SET {_column(client, DELETED_AT)} = {stamp}", key, sweep.gone
        )
        done.append(f"{len(sweep.gone)} rows deleted at the source marked ({DELETED_AT})")
    if sweep.back:
        _each_chunk(
            client, f"UPDATE {table} SET {_column(client, DELETED_AT)} = NULL", key, sweep.back
        )
        done.append(f"{len(sweep.back)} rows listed again unmarked")
    if sweep.flagged and sweep.hard_delete:
        _remove(client, schema, sweep.table, sweep.key_column, sweep.flagged)
        done.append(f"{len(sweep.flagged)} rows the source flags deleted removed")
    elif sweep.flagged:
        assert sweep.deleted_column is not None
        flag = f"{_column(client, sweep.deleted_column)} = TRUE"
        _each_chunk(client, f"UPDATE {table} SET {flag}", key, sweep.flagged)
        done.append(
            f"{len(sweep.flagged)} rows the source flags deleted set {sweep.deleted_column}"
        )
    if not done:
        return None
    return (
        f"{sweep.resource}: {'; '.join(done)} (table {sweep.table}, {sweep.live} live rows before)"
    )


def _remove(client: Any, schema: Any, table: str, key_column: str, keys: list[Any]) -> None:
    """Remove rows by key, their child tables' rows first (a crash between leaves parents only,
    which the next sweep removes)."""
    root = _table(client, table)
    key = _column(client, key_column)
    row_id = _column(client, "_dlt_id")
    for nested in get_nested_tables(schema.tables, table)[1:]:
        columns = nested.get("columns", {})
        link = "_dlt_root_id" if "_dlt_root_id" in columns else "_dlt_parent_id"
        if nested.get("parent") != table and link != "_dlt_root_id":
            continue  # not reachable from the root row (merge tables carry the root key down)
        for chunk in _chunks(keys):
            _execute(
                client,
                f"DELETE FROM {_table(client, nested['name'])} WHERE {_column(client, link)} IN "
                f"(SELECT {row_id} FROM {root} WHERE {key} IN ({_literals(client, chunk)}))",
            )
    _each_chunk(client, f"DELETE FROM {root}", key, keys)


def _each_chunk(client: Any, statement: str, key: str, keys: list[Any]) -> None:
    for chunk in _chunks(keys):
        _execute(client, f"{statement} WHERE {key} IN ({_literals(client, chunk)})")


def _execute(client: Any, sql: str) -> None:
    log.debug("reconcile: %s", sql[:200])
    client.execute_sql(sql)


def _chunks(keys: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(keys), CHUNK):
        yield keys[start : start + CHUNK]


def _literals(client: Any, keys: list[Any]) -> str:
    escape = client.capabilities.escape_literal
    return ", ".join(escape(key) for key in keys)


def _table(client: Any, name: str) -> str:
    return client.make_qualified_table_name(name)


def _column(client: Any, name: str) -> str:
    return name if name == "NULL" else client.escape_column_name(name)


def reconcile_source(spec: Any, resources: Sequence[str] | None, options: Any) -> list[str]:
    """`lxp-sync reconcile SOURCE`: the sweep now, for every resource (or `resources`); lines.

    Under the run lock, after what an interrupted run left is finished or discarded, like a run.
    """
    from lxp_sync.pipelines.runner import pipeline_session

    source = spec.factory(**({"resources": list(resources)} if resources else {}))
    with pipeline_session(spec.name, options) as pipeline:
        pipeline.sync_destination()  # the state and schema may live only in the destination
        if spec.name not in pipeline.schema_names:
            return [f"{spec.name}: nothing loaded yet; run `lxp-sync run {spec.name}` first"]
        started = time.monotonic()
        requests = _requests_sent(source)
        lines = reconcile(pipeline, source)
        _write_schedule(pipeline, source.name, {"runs": 0, "last": datetime.now(UTC).isoformat()})
    spent = time.monotonic() - started
    sent = _requests_sent(source) - requests
    summary = "no rows deleted at the source" if not lines else f"{len(lines)} tables changed"
    return [*lines, f"{spec.name}: deletes sweep done in {spent:.1f}s, {sent} requests; {summary}"]


def _requests_sent(source: Any) -> int:
    """Requests the source's clients sent so far (each listing shares its resource's client)."""
    clients = {id(c): c for c in (_client_of(r) for r in source.selected_resources.values()) if c}
    return sum(client.requests_sent for client in clients.values())


def _client_of(resource: Any) -> Any:
    listing = listing_of(resource)
    return listing.client if listing is not None else None


# --- the schedule -------------------------------------------------------------------------------


@dataclass
class SweepPlan:
    """Whether this run ends with a sweep, and the schedule's facts to restore if it fails."""

    due: bool
    before: dict[str, Any]


def plan_sweep(
    pipeline: Pipeline, source: Any, *, first_load: bool, full_refresh: bool
) -> SweepPlan:
    """Decide, before a run, whether it ends with a sweep (`reconcile_every`), and record it.

    The schedule's facts (runs since the last sweep, its time) live in the source's dlt state,
    which this run's load commits to the warehouse: a runner that starts afresh every time (a
    CI job, an Airflow worker) keeps the schedule. A first load (or a full refresh) reads every
    row, so it counts as a sweep. A warehouse loaded before whose schedule is unknown is swept.
    """
    settings = SweepSettings.of(source.name)
    now = datetime.now(UTC)
    before = dict(pipeline.state.get("sources", {}).get(source.name, {}).get(SCHEDULE_KEY) or {})
    runs = int(before.get("runs", 0)) + 1
    last = _moment(before.get("last"))
    enabled = settings.every_runs is not None or settings.every is not None
    due = enabled and not first_load and not full_refresh
    due = due and (
        last is None
        or (settings.every_runs is not None and runs >= settings.every_runs)
        or (settings.every is not None and now - last >= settings.every)
    )
    if due or first_load or full_refresh:
        _write_schedule(pipeline, source.name, {"runs": 0, "last": now.isoformat()})
    else:
        _write_schedule(pipeline, source.name, {**before, "runs": runs})
    return SweepPlan(due, before)


def undo_plan(pipeline: Pipeline, source: Any, plan: SweepPlan) -> None:
    """A run that failed leaves the schedule as it found it (its state changes nothing else)."""
    if plan.before:
        _write_schedule(pipeline, source.name, plan.before)
        return
    with pipeline.managed_state() as state:
        state.get("sources", {}).get(source.name, {}).pop(SCHEDULE_KEY, None)


def sweep_after_run(pipeline: Pipeline, source: Any, plan: SweepPlan) -> list[TableSweep]:
    """The planned sweep, after the run's load; each table it changed. A sweep that fails puts
    the schedule back (locally), so that the next run on this machine tries again."""
    if not plan.due:
        return []
    started = time.monotonic()
    try:
        swept = reconcile_tables(pipeline, source, SweepSettings.of(source.name))
    except BaseException:
        _write_schedule(pipeline, source.name, plan.before)
        raise
    log.info("%s: deletes sweep done in %.1fs", source.name, time.monotonic() - started)
    return swept


def _write_schedule(pipeline: Pipeline, source_name: str, facts: dict[str, Any]) -> None:
    with pipeline.managed_state() as state:
        state.setdefault("sources", {}).setdefault(source_name, {})[SCHEDULE_KEY] = facts


def _moment(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None
