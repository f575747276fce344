"""The run report: what one run read, wrote and changed, per resource and table.

Built from what the run itself knows, never from `COUNT(*)`: the rows dlt wrote per table (its
normalize info), the split of those rows into inserted, updated and unchanged keys
(`merge_counts`, counted just before dlt merges), the deletes sweep's changes (`reconcile`), the
requests, retries and 429s per resource (`core.activity`), the cursors before and after (dlt's
state) and the new tables and columns (the schema update in dlt's load info). Printed as a short
table after every run, written as JSON for schedulers (`--report-json`, the shape documented in
the README, `FORMAT`), kept with the pipeline (`run_history`) for `lxp-sync status` and
`lxp-sync report`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

from lxp_sync.pipelines.merge_counts import MergeCounter, TableCounts
from lxp_sync.sources.core import activity

FORMAT = "lxp-sync.run-report/1"
SWEEP_LABEL = " keys"  # the deletes sweep's listing: `<source>.<resource> keys`


@dataclass
class TableReport:
    """One table of a resource: the rows the run wrote, and what they did to the table's keys."""

    name: str
    nested: bool = False  # a child table (a list field); its rows follow their parent row
    written: int = 0  # rows dlt wrote into the table (new, changed or the same again)
    inserted: int | None = None  # keys the table did not have (root tables)
    updated: int | None = None  # keys it had, with a changed row or changed nested rows
    unchanged: int | None = None  # keys it had, written again the same
    deleted: int | None = None  # keys gone: removed or marked by the sweep, hard-deleted, replaced


@dataclass
class CursorReport:
    field: str
    before: str | None
    after: str | None


@dataclass
class ResourceReport:
    name: str
    tables: list[TableReport] = field(default_factory=list)
    rows_read: int = 0
    pages: int = 0  # pages of the read and of the deletes sweep's listing
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # answers with HTTP 429
    seconds: float = 0.0
    cursors: list[CursorReport] = field(default_factory=list)
    new_tables: list[str] = field(default_factory=list)
    new_columns: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Totals:
    written: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rows_read: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    exact: bool = True  # False: a table's split is unknown (its rows are in `written`)


@dataclass
class RunReport:
    """One run; `asdict()` is the JSON shape (`FORMAT`)."""

    run_id: str
    source: str
    destination: str
    warehouse: str  # a file path or a URL without its password
    dataset: str
    pipeline: str
    started_at: str  # UTC ISO 8601
    finished_at: str | None = None
    seconds: float = 0.0
    status: str = "running"  # ok, failed
    error: str | None = None  # the one line the command printed
    exit_code: int = 0
    load_id: str | None = None
    first_load: bool = False
    full_refresh: bool = False
    nothing_new: bool = False
    totals: Totals = field(default_factory=Totals)
    resources: list[ResourceReport] = field(default_factory=list)
    other_requests: int = 0  # requests of no one resource: schema introspection, counts, checks
    format: str = FORMAT

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def schema_changed(self) -> bool:
        return not self.first_load and any(r.new_tables or r.new_columns for r in self.resources)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunReport:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["totals"] = _build(Totals, data.get("totals") or {})
        values["resources"] = [
            ResourceReport(
                **{
                    **_known(ResourceReport, r),
                    "tables": [_build(TableReport, t) for t in r.get("tables", [])],
                    "cursors": [_build(CursorReport, c) for c in r.get("cursors", [])],
                }
            )
            for r in data.get("resources", [])
        ]
        return cls(**values)


def _known(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in data.items() if k in names}


def _build(kind: type, data: Mapping[str, Any]) -> Any:
    return kind(**_known(kind, data))


# --- building -----------------------------------------------------------------------------------


class RunRecorder:
    """Collects one run's report: before the load, during it, after it, or at its failure."""

    def __init__(
        self, source: str, destination: str, dataset: str, pipeline_name: str, warehouse: str = ""
    ) -> None:
        self._clock = time.monotonic()
        started = datetime.now(UTC)
        self.report = RunReport(
            run_id=f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}",
            source=source,
            destination=destination,
            warehouse=warehouse,
            dataset=dataset,
            pipeline=pipeline_name,
            started_at=utc_iso(started.replace(microsecond=0)),
        )
        self.tally = activity.start()
        self.resources: list[str] = []
        self.pipeline: Any = None  # set once the warehouse was reached
        self._cursors_before: dict[str, dict[str, Any]] = {}
        self._schema_before: dict[str, set[str]] | None = None
        self._table_resource: dict[str, str] = {}
        self._counts: dict[str, TableCounts | None] = {}
        self._written: dict[str, int] = {}
        self._sweeps: list[Any] = []
        self._schema_update: dict[str, Any] = {}

    def before_load(self, pipeline: Any, source: Any, first_load: bool, full_refresh: bool) -> None:
        """The facts before the load: cursors, the tables and columns the schema has."""
        self.pipeline = pipeline
        self.report.warehouse = self.report.warehouse or warehouse_label(pipeline)
        self.report.first_load = first_load
        self.report.full_refresh = full_refresh
        self.resources = list(source.selected_resources)
        self._cursors_before = state_cursors(pipeline, source.name)
        schema = pipeline.schemas.get(source.name) if source.name in pipeline.schema_names else None
        self._schema_before = (
            {name: set(table.get("columns", {})) for name, table in schema.tables.items()}
            if schema is not None
            else {}
        )

    def loaded(self, pipeline: Any, info: Any, counter: MergeCounter) -> None:
        """The load's facts: the rows written per table, their split, the schema update."""
        self._counts = dict(counter.tables)
        trace = pipeline.last_trace
        normalized = trace.last_normalize_info if trace is not None else None
        self._written = dict(normalized.row_counts) if normalized else {}
        packages = getattr(info, "load_packages", None) or []
        for package in packages:
            self.report.load_id = package.load_id
            self._schema_update.update(package.schema_update or {})

    def swept(self, sweeps: Iterable[Any]) -> None:
        self._sweeps = list(sweeps)

    def finish(self, error: str | None = None, exit_code: int = 0) -> RunReport:
        """The report, done: `error` is the failure's one line (None: the run succeeded)."""
        report = self.report
        report.finished_at = utc_iso(datetime.now(UTC).replace(microsecond=0))
        report.seconds = round(time.monotonic() - self._clock, 2)
        report.status = "failed" if error else "ok"
        report.error = error
        report.exit_code = exit_code
        self._fill_resources()
        report.totals = _totals(report.resources)
        report.nothing_new = report.ok and not (
            report.totals.inserted
            or report.totals.updated
            or report.totals.deleted
            or not report.totals.exact
        )
        return report

    def _fill_resources(self) -> None:
        pipeline = self.pipeline
        source = self.report.source
        schema = None
        if pipeline is not None and source in pipeline.schema_names:
            schema = pipeline.schemas[source]
        tables_of = _tables_by_resource(schema) if schema is not None else {}
        cursors_after = state_cursors(pipeline, source) if pipeline is not None else {}
        snapshot = self.tally.snapshot()
        deleted = {sweep.table: sweep for sweep in self._sweeps}
        resources = list(self.resources) or sorted(
            {label.split(".", 1)[1] for label in snapshot if label.startswith(f"{source}.")}
        )
        used: set[str] = set()
        for name in resources:
            entry = ResourceReport(name)
            for label in (f"{source}.{name}", f"{source}.{name}{SWEEP_LABEL}"):
                counted = snapshot.get(label)
                if counted is None:
                    continue
                used.add(label)
                entry.pages += counted.pages
                entry.requests += counted.requests
                entry.retries += counted.retries
                entry.rate_limited += counted.rate_limited
                if not label.endswith(SWEEP_LABEL):
                    entry.rows_read = counted.rows
                    entry.seconds = round(counted.seconds, 2)
            for table, nested in tables_of.get(name, []):
                written = self._written.get(table, 0)
                if nested and not written:
                    continue
                entry.tables.append(self._table(table, nested, written, deleted.get(table)))
            for cursor, before in self._cursors_before.get(name, {}).items():
                after = cursors_after.get(name, {}).get(cursor)
                entry.cursors.append(CursorReport(cursor, utc_iso(before), utc_iso(after)))
            for cursor, after in cursors_after.get(name, {}).items():
                if cursor not in self._cursors_before.get(name, {}):
                    entry.cursors.append(CursorReport(cursor, None, utc_iso(after)))
            self._schema_changes(entry, {t for t, _ in tables_of.get(name, [])})
            self.report.resources.append(entry)
        self.report.other_requests = sum(
            counted.requests for label, counted in snapshot.items() if label not in used
        )

    def _table(self, table: str, nested: bool, written: int, sweep: Any) -> TableReport:
        entry = TableReport(table, nested=nested, written=written)
        if nested:
            return entry
        counts = self._counts.get(table, _NOTHING if not written else None)
        if counts is not None:
            entry.inserted = counts.inserted
            entry.updated = counts.updated
            entry.unchanged = counts.unchanged
            entry.deleted = counts.deleted
        if sweep is not None:
            entry.deleted = (entry.deleted or 0) + sweep.deleted
            if entry.updated is not None:
                entry.updated += len(sweep.back)  # marked rows the source lists again
        return entry

    def _schema_changes(self, entry: ResourceReport, tables: set[str]) -> None:
        before = self._schema_before or {}
        for table, update in sorted(self._schema_update.items()):
            if table not in tables or table.startswith("_dlt"):
                continue
            if table not in before:
                entry.new_tables.append(table)
                continue
            added = [
                column
                for column in (update.get("columns") or {})
                if column not in before[table] and not column.startswith("_dlt")
            ]
            if added:
                entry.new_columns[table] = added


_NOTHING = TableCounts(inserted=0, updated=0, unchanged=0, deleted=0, rewritten=0)


def _totals(resources: list[ResourceReport]) -> Totals:
    totals = Totals()
    for resource in resources:
        totals.rows_read += resource.rows_read
        totals.pages += resource.pages
        totals.requests += resource.requests
        totals.retries += resource.retries
        totals.rate_limited += resource.rate_limited
        for table in resource.tables:
            totals.written += table.written
            if table.nested:
                continue
            if table.updated is None and table.written:
                totals.exact = False
            totals.inserted += table.inserted or 0
            totals.updated += table.updated or 0
            totals.unchanged += table.unchanged or 0
            totals.deleted += table.deleted or 0
    return totals


def _tables_by_resource(schema: Any) -> dict[str, list[tuple[str, bool]]]:
    """resource name -> [(table, nested)], the root table first."""
    tables = schema.tables
    found: dict[str, list[tuple[str, bool]]] = {}
    for name in schema.data_table_names():
        if name.startswith("_"):
            continue
        root = name
        while tables[root].get("parent"):
            root = tables[root]["parent"]
        resource = tables[root].get("resource")
        if resource:
            found.setdefault(resource, []).append((name, root != name))
    for entries in found.values():
        entries.sort(key=lambda entry: (entry[1], entry[0]))
    return found


def state_cursors(pipeline: Any, source: str) -> dict[str, dict[str, Any]]:
    """resource -> {cursor field: last value} from the pipeline's state."""
    resources = pipeline.state.get("sources", {}).get(source, {}).get("resources", {})
    return {
        name: {
            cursor: inc.get("last_value") for cursor, inc in state.get("incremental", {}).items()
        }
        for name, state in resources.items()
        if state.get("incremental")
    }


def utc_iso(value: Any) -> str | None:
    """A cursor or timestamp as UTC ISO 8601 (`2025-01-02T03:04:05Z`); other values as text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        text = datetime(*value.timetuple()[:6], value.microsecond).isoformat()
        return f"{text}Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def warehouse_label(pipeline: Any) -> str:
    """Where the pipeline loads: a DuckDB file's path, or a URL without its password."""
    from lxp_sync.pipelines.errors import redact

    try:
        credentials = pipeline.destination_client().config.credentials
    except Exception:
        return pipeline.destination.destination_name
    database = getattr(credentials, "database", None)
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    if kind == "duckdb" and isinstance(database, str):
        return database
    if hasattr(credentials, "to_url"):
        try:
            url = credentials.to_url().render_as_string(hide_password=True)
            return redact(url.split("?", 1)[0])  # the query: driver options, not the place
        except Exception:
            pass
    project = getattr(credentials, "project_id", None)
    if project:
        return f"{kind}://{project}"
    return kind


# --- the table on stdout ------------------------------------------------------------------------

COLUMNS = (
    "written",
    "new",
    "updated",
    "unchanged",
    "deleted",
    "pages",
    "requests",
    "retries",
    "429s",
    "time",
)


def headline(report: RunReport) -> str:
    """The report's first line: what the run did, in a few words."""
    where = f"{report.destination} dataset {report.dataset}"
    if not report.ok:
        return f"{report.source}: failed after {report.seconds:.1f}s ({where}): {report.error}"
    totals = report.totals
    said = f"{report.source}: loaded into {where} in {report.seconds:.1f}s: {changes(report)}"
    if report.nothing_new:
        again = f", {totals.unchanged:,} written again unchanged" if totals.unchanged else ""
        return f"{said} ({totals.rows_read:,} rows read{again})"
    return said


def changes(report: RunReport) -> str:
    """`12 new, 3 updated, 0 deleted`, or `nothing new`."""
    if report.nothing_new:
        return "nothing new"
    totals = report.totals
    parts = [
        f"{totals.inserted:,} new",
        f"{totals.updated:,} updated",
        f"{totals.deleted:,} deleted",
    ]
    if not totals.exact:
        parts.append(f"{totals.written:,} rows written in all")
    return ", ".join(parts)


def render_text(report: RunReport) -> list[str]:
    """The short table a run prints on stdout."""
    lines = [headline(report)]
    rows: list[list[str]] = [["resource / table", *COLUMNS, "cursor"]]
    for resource in report.resources:
        root = next((t for t in resource.tables if not t.nested), None)
        rows.append(
            [
                resource.name
                if root is None or root.name == resource.name
                else f"{resource.name} ({root.name})",
                *_table_cells(root),
                _number(resource.pages),
                _number(resource.requests),
                _number(resource.retries),
                _number(resource.rate_limited),
                f"{resource.seconds:.1f}s",
                "; ".join(cursor_text(c) for c in resource.cursors),
            ]
        )
        for table in resource.tables:
            if table.nested:
                rows.append([f"  {table.name}", _number(table.written), *[""] * 10])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows if len(rows) > 1 else []:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)
        ]
        lines.append(("  " + "  ".join(cells) + "  " + row[-1]).rstrip())
    changes = _schema_text(report)
    if changes:
        lines.append(f"  schema: {changes}")
    if report.other_requests:
        lines.append(f"  {report.other_requests:,} more requests (schema, counts, checks)")
    return lines


def _table_cells(table: TableReport | None) -> list[str]:
    if table is None:
        return ["0", "0", "0", "0", "0"]
    values = [table.inserted, table.updated, table.unchanged, table.deleted]
    return [_number(table.written), *("-" if v is None else _number(v) for v in values)]


def _number(value: int) -> str:
    return f"{value:,}"


def cursor_text(cursor: CursorReport) -> str:
    """`modified 2025-01-01T00:00:00Z -> 2025-01-02T08:00:00Z`, or `... (same)`."""
    if cursor.before == cursor.after:
        return f"{cursor.field} {cursor.after or '-'} (same)"
    return f"{cursor.field} {cursor.before or '-'} -> {cursor.after or '-'}"


def _schema_text(report: RunReport) -> str:
    if report.first_load:
        created = sum(len(r.new_tables) for r in report.resources)
        return f"{created} tables created (first load)" if created else ""
    return "; ".join(schema_changes(report))


def schema_changes(report: RunReport, quote: str = "") -> list[str]:
    """`new table x`, `new column t.c`, ... of the run (`quote`: around each name)."""
    changes = []
    for resource in report.resources:
        changes += [f"new table {quote}{table}{quote}" for table in resource.new_tables]
        changes += [
            f"new column {quote}{table}.{column}{quote}"
            for table, columns in resource.new_columns.items()
            for column in columns
        ]
    return changes
