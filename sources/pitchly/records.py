"""One dlt resource per Pitchly table: records become typed rows, read in full or incrementally.

Each run of a table is one of two kinds, decided before anything is read:

- **full**: every record (that the table's filter lets through) is read and the warehouse table
  is replaced. Used for tables without an Updated At field (a full scan is the only way to see
  deleted records), on the first run, when the table's fields changed since the last run (added,
  renamed, removed or retyped: rows loaded before would have stale columns), and when the
  record count shows that records left the table since the last run.
- **incremental**: only records whose Updated At is at or after the cursor are read (a
  server-side filter, or client-side if the API refuses it) and merged on the record id.

A full read of a large table with a Created At field is split into Created At windows read at
once (`TableRun.windows`, `core/slices.py`), where the windows' counts add up to the table's.

The count check: with a Created At field and a `totalCount`, a table should now hold the records
it held after the last run plus those created since; any other count means records were deleted
(or left the filter), and the run is a full one.

dlt's source state keeps each table's warehouse name, by table id; the table's resource state
keeps the column layout, the cursor, the record count and the newest Created At (no secrets), so
that a full refresh of one table (a replace, for which dlt resets the resource's state) starts
that table from scratch and no other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from lxp_sync.sources.core.arrow import add_load_id, with_load_id
from lxp_sync.sources.core.discovery import ReadPlan, with_read_plan
from lxp_sync.sources.core.errors import ConfigurationError, GraphQLQueryError
from lxp_sync.sources.core.graphql import Connection, GraphQLClient, relay_pages
from lxp_sync.sources.core.paging import Progress
from lxp_sync.sources.core.slices import Window, read_together, time_windows, window_count
from lxp_sync.sources.core.sweep import KeyListing, relay_key_listing, with_listing
from lxp_sync.sources.pitchly.naming import (
    Column,
    assign_table_names,
    layout_signature,
    retyped_columns,
    retyped_in_schema,
)
from lxp_sync.sources.pitchly.settings import INCREMENTAL_LAG_S, PRIMARY_KEY, RECORD_SELECTION
from lxp_sync.sources.pitchly.values import PageConverter, iso, moment

log = logging.getLogger("lxp_sync")

NOT_READY = "TABLE_NOT_READY"
BAD_INPUT = "BAD_USER_INPUT"


# --- filters ------------------------------------------------------------------------------


def condition(field_id: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "left": {"type": "field", "value": field_id},
        "comparison": {"operator": operator},
        "right": {"type": "input", "value": value},
    }


def with_condition(user_filter: dict[str, Any] | None, *extra: dict[str, Any]) -> dict[str, Any]:
    """The configured filter AND more conditions (the configured one kept as a group)."""
    conditions: list[dict[str, Any]] = [*extra]
    if user_filter and user_filter.get("conditions"):
        conditions.append(
            {
                "conditionGroup": user_filter["conditions"],
                "logicalOperator": user_filter.get("logicalOperator", "and"),
            }
        )
    return {"conditions": conditions, "logicalOperator": "and"}


def window_conditions(field_id: str, window: Window) -> list[dict[str, Any]]:
    """A time window (`slices.time_windows`) on a date field: on or after its start, before its
    end; the two operators cut at the same moment, so neighbouring windows share no record."""
    start, end = window
    found = [] if start is None else [condition(field_id, "is-on-or-after", iso(start))]
    return found + ([] if end is None else [condition(field_id, "is-before", iso(end))])


# --- names --------------------------------------------------------------------------------


class TableNames:
    """Warehouse names of every table, assigned once per run from dlt's source state."""

    def __init__(self, defaults: dict[str, str], configured: dict[str, str]) -> None:
        self.defaults = defaults  # table id -> default name, for every table with records
        self.configured = configured
        self._lock = threading.Lock()
        self._names: dict[str, str] | None = None

    def names(self) -> dict[str, str]:
        """Table id -> warehouse name (call during extraction: it reads and writes state)."""
        with self._lock:
            if self._names is None:
                tables = dlt.current.source_state().setdefault("tables", {})
                remembered = {tid: s["name"] for tid, s in tables.items() if s.get("name")}
                self._names = assign_table_names(self.defaults, remembered, self.configured)
                for table_id, name in self._names.items():
                    tables.setdefault(table_id, {})["name"] = name
            return self._names


# --- the resource -------------------------------------------------------------------------


@dataclass(frozen=True)
class TablePlan:
    """Everything a table's resource needs, decided when the source is built."""

    table_id: str
    label: str  # `Sales / Deals (<id>)`, for messages
    default_name: str  # `<workspace>__<table>`, from today's names
    resource_name: str  # the configured name, else the default name
    layout: dict[str, tuple[Column, ...]]
    hints: dict[str, dict[str, Any]]
    updated: tuple[str, str] | None  # (field id, column) of the Updated At field
    created: tuple[str, str] | None  # (field id, column) of the Created At field
    filter: dict[str, Any] | None


@dataclass
class RecordsOptions:
    page_size: int
    max_pages: int | None = None
    arrow: bool = True  # hand dlt Arrow tables (fast); False: lists of rows (for BigQuery)
    # a full read of a large table: Created At windows read at once, at most (1: one read)
    windows: int = 1


class TableRun:
    """One run of one table: which kind, the pages, and the state it leaves."""

    def __init__(
        self,
        gql: GraphQLClient,
        connection: Connection,
        plan: TablePlan,
        options: RecordsOptions,
        name: str,
        reads: ReadPlan | None = None,
    ) -> None:
        self.gql, self.connection, self.plan, self.options = gql, connection, plan, options
        self.name = name
        self.reads = reads or ReadPlan()  # told the count of the first page
        self.resource = f"{gql.source}.{name}"
        self.state = table_state(plan.table_id)
        self.layout = layout_signature(plan.layout)
        self.started = datetime.now(UTC)
        # what the run saw, for the next run's state
        self.read = 0
        self.created_since = 0  # records created after the newest Created At loaded before
        self.newest_updated: datetime | None = None
        self.newest_created: datetime | None = None
        self.client_side_since: datetime | None = None  # the API refused the Updated At filter
        self.window_total = 0  # the records counted when a full read was split in windows
        # a page's records to Arrow, in the page's turn (`relay_pages`' `convert`)
        self.converter = PageConverter(plan.layout, self.resource)

    def count(self, table_filter: dict[str, Any] | None) -> int | None:
        """Records matching `table_filter` (None: the API cannot count them)."""
        count_field = self.connection.count_field
        if count_field is None:
            return None
        args = self.connection.args
        query = (
            f"query LxpCount($tableId: {args.get('tableId', 'ID!')}, "
            f"$filter: {args.get('filter', 'JSON')}) {{ {self.connection.name}"
            f"(tableId: $tableId, filter: $filter, first: 0) {{ {count_field} }} }}"
        )
        variables = {"tableId": self.plan.table_id, "filter": table_filter}
        try:
            data = self.gql.execute(query, variables, resource=self.resource, page="count")
        except GraphQLQueryError as exc:
            if exc.code == BAD_INPUT:
                return None
            raise
        return int((data.get(self.connection.name) or {}).get(count_field) or 0)

    def oldest(self, table_filter: dict[str, Any] | None) -> tuple[int, datetime | None] | None:
        """The count of records matching `table_filter` and the Created At of the first one
        (the oldest where records come in creation order, as the sandbox serves them; any
        record does, it only places the windows); None where the API cannot say."""
        assert self.plan.created is not None
        count_field = self.connection.count_field
        if count_field is None:
            return None
        args = self.connection.args
        query = (
            f"query LxpOldest($tableId: {args.get('tableId', 'ID!')}, "
            f"$filter: {args.get('filter', 'JSON')}) {{ {self.connection.name}"
            f"(tableId: $tableId, filter: $filter, first: 1) "
            f"{{ edges {{ node {{ fields {{ fieldId value }} }} }} {count_field} }} }}"
        )
        variables = {"tableId": self.plan.table_id, "filter": table_filter}
        try:
            data = self.gql.execute(query, variables, resource=self.resource, page="oldest")
        except GraphQLQueryError as exc:
            if exc.code == BAD_INPUT:
                return None
            raise
        found = data.get(self.connection.name)
        if not isinstance(found, dict) or not isinstance(found.get(count_field), int):
            return None  # an answer the read itself will check and name
        return found[count_field], _created(found.get("edges"), self.plan.created[0])

    def windows(self) -> list[dict[str, Any]] | None:
        """The filters of the Created At windows a full read is split into (`slices`), or None
        for one read: a table without Created At or too small for two windows, a smoke run, or
        windows whose counts do not add up to the table's (a filter the API ignores or cuts
        otherwise, or records added or deleted in between)."""
        plan, options = self.plan, self.options
        if plan.created is None or options.windows <= 1 or options.max_pages is not None:
            return None
        probed = self.oldest(plan.filter)
        if probed is None or probed[1] is None:
            return None
        total, oldest = probed
        count = window_count(total, options.page_size, options.windows)
        if count <= 1:
            return None
        spans = time_windows(oldest, self.started, count)
        if len(spans) <= 1:  # no whole second between the first record and now (a clock behind)
            return None
        filters = [
            with_condition(plan.filter, *window_conditions(plan.created[0], span)) for span in spans
        ]
        with ThreadPoolExecutor(len(filters), thread_name_prefix="lxp-count") as pool:
            counts = list(pool.map(self.count, filters))
        if None in counts or sum(c or 0 for c in counts) != total:
            log.warning(
                "%s: the API counts %s records in %d Created At windows and %d in the table; "
                "reading the table in one pass",
                self.resource,
                "?" if None in counts else sum(c or 0 for c in counts),
                len(filters),
                total,
            )
            return None
        self.reads.counted(total)
        self.window_total = total
        return filters

    def full_pages(self) -> Iterator[pa.Table]:
        """Every record matching the table's filter: in Created At windows read at once where
        `windows` allows it, else in one read."""
        filters = self.windows()
        if filters is None:
            yield from self.pages(self.plan.filter)
            return
        log.info(
            "%s: reading %d records in %d Created At windows at once",
            self.resource,
            self.window_total,
            len(filters),
        )
        progress = Progress(self.resource, self.window_total)
        reads = [lambda f=f: self.pages(f, progress.part()) for f in filters]
        yield from read_together(reads, self.resource)
        progress.done()

    def loaded_columns(self) -> dict[str, Any]:
        """The warehouse table's columns as dlt's schema knows them (none before its first load)."""
        table = dlt.current.source_schema().tables.get(self.name) or {}
        return dict(table.get("columns") or {})

    def full_reason(self) -> str | None:
        """Why this run must read the whole table (None: an incremental run will do)."""
        state, plan = self.state, self.plan
        if plan.updated is None:
            return "no Updated At field"
        if state.get("layout") != self.layout:
            retyped = retyped_columns(state.get("layout"), self.layout) or retyped_in_schema(
                self.loaded_columns(), plan.layout
            )
            if retyped:  # dlt never changes a column's type in place: the rows would not fit
                raise ConfigurationError(
                    f"columns change type ({'; '.join(retyped)}), which the warehouse table "
                    "cannot take in place",
                    resource=self.resource,
                    hint=f"Run `lxp-sync run pitchly --resources {self.name} --full-refresh "
                    "--recreate` once (it drops the table, creates it anew and reads every record)",
                )
            return "first run" if "layout" not in state else "the table's fields changed"
        if state.get("filter") != plan.filter:
            return "its filter changed"
        if not state.get("cursor"):
            return "no cursor yet"
        if plan.created is None or state.get("total") is None:
            return None
        total = self.count(plan.filter)
        created_after = state.get("max_created")
        new = (
            self.count(
                with_condition(plan.filter, condition(plan.created[0], "is-after", created_after))
            )
            if created_after
            else total
        )
        if total is None or new is None:
            return None
        expected = int(state["total"]) + new
        if total != expected:
            return f"it has {total} records where {expected} were expected (records were deleted)"
        return None

    def pages(
        self, table_filter: dict[str, Any] | None, progress: Progress | None = None
    ) -> Iterator[pa.Table]:
        """The records matching `table_filter`, a page at a time as Arrow tables; with `progress`
        (a window's: see `full_pages`), without asking for pages ahead, as the windows read at
        once already."""
        for page in relay_pages(
            self.gql,
            self.connection,
            RECORD_SELECTION,
            resource=self.resource,
            key=PRIMARY_KEY,
            page_size=self.options.page_size,
            filters={"tableId": self.plan.table_id, "filter": table_filter},
            max_pages=self.options.max_pages,
            progress=progress,
            read_ahead=progress is None,
            convert=self.converter.table,
        ):
            self.reads.counted(page.total)
            yield page.nodes

    def incremental_pages(self, cursor: str) -> Iterator[pa.Table]:
        """Records updated at or after `cursor`, as the API filters them; if it refuses the
        filter, every record, and `client_side_since` tells `tables` to filter them."""
        assert self.plan.updated is not None
        on_or_after = condition(self.plan.updated[0], "is-on-or-after", cursor)
        pages = self.pages(with_condition(self.plan.filter, on_or_after))
        try:
            first = next(pages, None)
        except GraphQLQueryError as exc:
            if exc.code != BAD_INPUT:
                raise
            log.warning(
                "%s: the API refused a filter on Updated At (%s); reading every record and "
                "keeping those updated since %s",
                self.resource,
                exc.message,
                cursor,
            )
            self.client_side_since = moment(cursor)
            yield from self.pages(self.plan.filter)
            return
        if first is not None:
            yield first
        yield from pages

    def tables(self, pages: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The pages' tables, the facts for the next run's state gathered on the way."""
        plan = self.plan
        created_before = moment(self.state.get("max_created"))
        for table in pages:
            if self.client_side_since is not None and plan.updated:
                updated = table[plan.updated[1]]
                since = pa.scalar(self.client_side_since, updated.type)
                table = table.filter(
                    pc.or_kleene(pc.is_null(updated), pc.greater_equal(updated, since))
                )
            if not table.num_rows:
                continue
            self.read += table.num_rows
            if plan.updated:
                self.newest_updated = _max(self.newest_updated, pc.max(table[plan.updated[1]]))
            if plan.created:
                created = table[plan.created[1]]
                if created_before is not None:
                    after = pc.greater(created, pa.scalar(created_before, created.type))
                    self.created_since += pc.sum(after).as_py() or 0
                self.newest_created = _max(self.newest_created, pc.max(created))
            yield table

    def rows(self) -> Iterator[Any]:
        """The run's Arrow tables (or lists of rows), the first carrying the table name and the
        write disposition: replace for a full run, merge for an incremental one."""
        plan, state = self.plan, self.state
        marked = False
        try:
            reason = self.full_reason()
            full = reason is not None
            if full:
                log.info("%s: reading every record (%s)", self.resource, reason)
                pages = self.full_pages()
            else:
                pages = self.incremental_pages(state["cursor"])
            hints = dlt.mark.make_hints(
                table_name=self.name, write_disposition="replace" if full else "merge"
            )
            for table in self.tables(pages):
                item = add_load_id(table) if self.options.arrow else table.to_pylist()
                yield item if marked else dlt.mark.with_hints(item, hints)
                marked = True
        except GraphQLQueryError as exc:
            if exc.code != NOT_READY or marked:  # mid-table: a partial replace would lose rows
                raise
            log.warning(
                "%s: skipped: table %s is not marked ready in Pitchly (%s)",
                self.resource,
                plan.label,
                exc.message,
            )
            return
        if full and not marked:  # an empty table: its warehouse table must be emptied too
            yield dlt.mark.with_hints(dlt.mark.materialize_table_schema(), hints)
        if self.options.max_pages is None:  # a partial read (smoke run) leaves no state behind
            self._remember(full)

    def _remember(self, full: bool) -> None:
        state = self.state
        state["layout"] = self.layout
        state["filter"] = self.plan.filter
        state["total"] = self.read if full else int(state.get("total") or 0) + self.created_since
        before = None if full else moment(state.get("max_created"))
        newest_created = max((d for d in (self.newest_created, before) if d), default=None)
        state["max_created"] = iso(newest_created) if newest_created else None
        if self.plan.updated is None:
            state.pop("cursor", None)
            return
        high = self.newest_updated or moment(state.get("cursor"))
        ceiling = self.started - timedelta(seconds=INCREMENTAL_LAG_S)
        state["cursor"] = iso(min(high, ceiling) if high else ceiling)
        # shown by `lxp-sync status`, in the shape dlt's own incremental uses
        column = self.plan.updated[1]
        state["incremental"] = {column: {"last_value": state["cursor"]}}


# what a table's run leaves for the next, in its resource's state
RUN_STATE = ("layout", "filter", "total", "max_created", "cursor")


def _created(edges: Any, field_id: str) -> datetime | None:
    """The Created At of the first record of a page's `edges` (None if it has none)."""
    for edge in edges if isinstance(edges, list) else []:
        node = edge.get("node") if isinstance(edge, dict) else None
        fields = node.get("fields") if isinstance(node, dict) else None
        for entry in fields if isinstance(fields, list) else []:
            if isinstance(entry, dict) and entry.get("fieldId") == field_id:
                value = entry.get("value")
                return moment(value.get("val")) if isinstance(value, dict) else None
    return None


def table_state(table_id: str) -> dict[str, Any]:
    """The run state of a table, in its resource's state (call during extraction).

    Earlier versions kept it in the source state, where a replace could not reset it: that copy
    is dropped, and the table is read in full once.
    """
    kept = dlt.current.source_state().get("tables", {}).get(table_id, {})
    for key in RUN_STATE:
        kept.pop(key, None)
    return dlt.current.resource_state()


def _max(current: datetime | None, candidate: pa.Scalar) -> datetime | None:
    value = candidate.as_py()
    if value is not None and (current is None or value > current):
        return value
    return current


def records_resource(
    gql: GraphQLClient,
    connection: Connection,
    plan: TablePlan,
    options: RecordsOptions,
    names: TableNames,
) -> DltResource:
    """The resource of one Pitchly table (merge on the record id; see the module docstring).

    A table read incrementally carries the deletes sweep's listing (record ids only); a table
    without Updated At is replaced by every run, deleted records and all.
    """
    listing = _key_listing(gql, connection, plan, options)
    reads = ReadPlan(
        cursor=plan.updated[1] if plan.updated else None,
        server_filter="filter: Updated At is-on-or-after the cursor" if plan.updated else None,
        replace=plan.updated is None,
        note="reads every record again when the table's fields change or records were deleted"
        if plan.updated
        else "",
    )

    def read() -> Iterator[Any]:
        name = names.names()[plan.table_id]
        reads.total = None
        yield from TableRun(gql, connection, plan, options, name, reads).rows()

    resource = dlt.resource(
        read,
        name=plan.resource_name,
        primary_key=PRIMARY_KEY,
        write_disposition="merge",
        columns=with_load_id(plan.hints),
        parallelized=True,
    )
    with_read_plan(resource, reads)
    return with_listing(resource, listing) if listing else resource


def _key_listing(
    gql: GraphQLClient, connection: Connection, plan: TablePlan, options: RecordsOptions
) -> KeyListing | None:
    if plan.updated is None:
        return None

    def table(state: Mapping[str, Any]) -> str | None:
        return (state.get("tables") or {}).get(plan.table_id, {}).get("name")

    return relay_key_listing(
        gql,
        connection,
        resource=f"{gql.source}.{plan.resource_name}",
        table=table,
        key=PRIMARY_KEY,
        page_size=options.page_size,
        filters={"tableId": plan.table_id, "filter": plan.filter},
    )
