"""SQL views for analysts, in a schema of their own: `<dataset>_analytics`.

The loaded dataset holds what dlt needs (`_dlt_loads`, `_dlt_pipeline_state`, `_dlt_id` columns,
the `<dataset>_staging` schema of atomic replaces) and every row the source ever listed. The
analytics schema holds only views, one per table plus the source's questions (`analytics.py`):

- a table's view has its live rows: not flagged `is_deleted` (where the source has the flag),
  not marked gone by the deletes sweep (`_lxp_deleted_at`); `_lxp_loaded_at` is when the row's
  last load completed (dlt's `_dlt_loads`), and dlt's own columns are left out;
- a child table's view carries its root row's key (`<root table>__<key>`, e.g. `events__pk`) and
  list position (`_lxp_list_index`), and only the items of live rows.

The SQL is plain (joins, CASE, GROUP BY) and the same on DuckDB, PostgreSQL and BigQuery, through
dlt's `sql_client`; a few words differ per warehouse (`Dialect`). The views are made by
`lxp-sync views SOURCE`, and after every run where the source's `views` setting is true. A view
named `_lxp_views` records which views exist and from which schema version: a run whose schema
did not change leaves them alone, and views a new version no longer makes are dropped (never a
view lxp-sync did not make). Users of plain dlt call `create_views(pipeline)` after a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseException, DatabaseUndefinedRelation
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.errors import ConfigurationError, LxpSyncError

log = logging.getLogger("lxp_sync")

ANALYTICS_SUFFIX = "_analytics"
LOADED_AT = "_lxp_loaded_at"
LIST_INDEX = "_lxp_list_index"
DELETED_AT = "_lxp_deleted_at"  # the deletes sweep's mark (`reconcile.DELETED_AT`)
DELETED_FLAG = "is_deleted"  # a source's own soft-delete flag (PlusPlus GraphQL)
MARKER = "_lxp_views"
# bumped when the views' SQL changes, so that views made by an older version are made again
VIEWS_VERSION = "1"


class ViewsError(LxpSyncError):
    """The views could not be made (the load itself is complete)."""

    hint = (
        "The load is complete. Check that the loader may create schemas and views in the "
        "warehouse, or set views = false under the source's settings"
    )


@dataclass(frozen=True)
class Dialect:
    """What differs between warehouses in the views' SQL."""

    double: str = "DOUBLE PRECISION"
    timestamp: str = "TIMESTAMP WITH TIME ZONE"
    # whether CREATE OR REPLACE VIEW must keep the view's columns (PostgreSQL): else the view is
    # dropped and made again
    strict_replace: bool = False


DIALECTS = {
    "postgres": Dialect(strict_replace=True),
    "bigquery": Dialect(double="FLOAT64", timestamp="TIMESTAMP"),
}


@dataclass(frozen=True)
class View:
    name: str
    sql: str  # the SELECT
    columns: tuple[str, ...] = ()  # its columns, in order (for views built on it)


@dataclass
class Sql:
    """How the views' SQL names things in one warehouse: the dataset's tables, the analytics
    schema's views, columns, and the dialect's words."""

    table: Callable[[str], str]  # a table of the loaded dataset, qualified
    view: Callable[[str], str]  # a view of the analytics schema, qualified
    column: Callable[[str], str]
    literal: Callable[[Any], str]
    dialect: Dialect = field(default_factory=Dialect)

    def rate(self, part: str, whole: str) -> str:
        """`part / whole` as a fraction (NULL when `whole` is 0)."""
        return f"CAST({part} AS {self.dialect.double}) / NULLIF({whole}, 0)"


def analytics_dataset(dataset: str) -> str:
    """The schema (BigQuery: dataset) that holds the views of `dataset`."""
    return f"{dataset}{ANALYTICS_SUFFIX}"


def views_enabled(source: str) -> bool:
    """The source's `views` setting: make the views after every run (default false)."""
    value = dlt.config.get(f"sources.{source}.views")
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigurationError(
        f"views = {value!r} is neither true nor false",
        resource=source,
        hint=f"Set `views` under [sources.{source}] to true or false",
    )


# --- the views of the tables ---------------------------------------------------------------------


def table_views(schema: Any, sql: Sql) -> list[View]:
    """A view per loaded table: live rows, `_lxp_loaded_at`, child rows with their root's key."""
    tables = {t["name"]: t for t in schema.data_tables(seen_data_only=True)}
    views = []
    for table in tables.values():
        chain = _chain_to_root(table, schema.tables)
        if chain[-1]["name"] not in tables:
            continue
        views.append(_root_view(table, sql) if len(chain) == 1 else _child_view(chain, sql))
    return views


def _data_columns(table: Mapping[str, Any]) -> list[str]:
    return [
        name
        for name, column in table["columns"].items()
        if not name.startswith("_dlt") and name != DELETED_AT and column.get("data_type")
    ]


def _keys(table: Mapping[str, Any]) -> list[str]:
    return [name for name, column in table["columns"].items() if column.get("primary_key")]


def _live(table: Mapping[str, Any], alias: str, sql: Sql) -> list[str]:
    """The conditions of a live row of a root table."""
    columns = table["columns"]
    conditions = []
    if DELETED_AT in columns:
        conditions.append(f"{alias}.{sql.column(DELETED_AT)} IS NULL")
    if columns.get(DELETED_FLAG, {}).get("data_type") == "bool":
        conditions.append(f"NOT COALESCE({alias}.{sql.column(DELETED_FLAG)}, FALSE)")
    return conditions


def _loads(sql: Sql) -> str:
    # one row per load (a dataset shared by several schemas has one row per schema and load)
    return (
        f"(SELECT {sql.column('load_id')}, MIN({sql.column('inserted_at')}) AS loaded_at "
        f"FROM {sql.table('_dlt_loads')} GROUP BY {sql.column('load_id')})"
    )


def _loaded_at(root: Mapping[str, Any], alias: str, sql: Sql) -> tuple[str, str]:
    """(the `_lxp_loaded_at` column, the join that gives it) of a root table's rows."""
    if "_dlt_load_id" not in root["columns"]:  # loaded as Arrow before every table had it
        return f"CAST(NULL AS {sql.dialect.timestamp}) AS {sql.column(LOADED_AT)}", ""
    join = (
        f" LEFT JOIN {_loads(sql)} AS l "
        f"ON l.{sql.column('load_id')} = {alias}.{sql.column('_dlt_load_id')}"
    )
    return f"l.loaded_at AS {sql.column(LOADED_AT)}", join


def _root_view(table: Mapping[str, Any], sql: Sql) -> View:
    columns = _data_columns(table)
    # `_lxp_loaded_at` first: a column the API adds lands at the end of the view, so that
    # PostgreSQL replaces the view in place (keeping grants and the views built on it)
    loaded_at, join = _loaded_at(table, "t", sql)
    selected = [loaded_at, *(f"t.{sql.column(c)}" for c in columns)]
    where = _live(table, "t", sql)
    text = f"SELECT {', '.join(selected)} FROM {sql.table(table['name'])} AS t{join}"
    if where:
        text += f" WHERE {' AND '.join(where)}"
    return View(table["name"], text, (LOADED_AT, *columns))


def _chain_to_root(table: Mapping[str, Any], tables: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    chain = [table]
    while chain[-1].get("parent"):
        chain.append(tables[chain[-1]["parent"]])
    return chain


def _child_view(chain: Sequence[Mapping[str, Any]], sql: Sql) -> View:
    """A child table's items, each with its root row's key, of live root rows only."""
    child, root = chain[0], chain[-1]
    key_columns = [f"{root['name']}__{key}" for key in _keys(root)]
    loaded_at, join = _loaded_at(root, "r", sql)
    selected = [loaded_at]
    selected += [
        f"r.{sql.column(key)} AS {sql.column(name)}"
        for key, name in zip(_keys(root), key_columns, strict=True)
    ]
    selected.append(f"c0.{sql.column('_dlt_list_idx')} AS {sql.column(LIST_INDEX)}")
    columns = _data_columns(child)
    selected += [f"c0.{sql.column(c)}" for c in columns]
    joins = [f"{sql.table(child['name'])} AS c0"]
    row_id, parent_id = sql.column("_dlt_id"), sql.column("_dlt_parent_id")
    for level, parent in enumerate(chain[1:], start=1):
        alias = "r" if parent is root else f"c{level}"
        joins.append(
            f"JOIN {sql.table(parent['name'])} AS {alias} "
            f"ON {alias}.{row_id} = c{level - 1}.{parent_id}"
        )
    text = f"SELECT {', '.join(selected)} FROM {' '.join(joins)}{join}"
    where = _live(root, "r", sql)
    if where:
        text += f" WHERE {' AND '.join(where)}"
    return View(child["name"], text, (LOADED_AT, *key_columns, LIST_INDEX, *columns))


# --- making them ---------------------------------------------------------------------------------


def plan_views(schema: Any, sql: Sql) -> list[View]:
    """Every view of a source's schema, in the order they can be made (inputs first)."""
    from lxp_sync.pipelines.analytics import analytics_views

    tables = table_views(schema, sql)
    return tables + analytics_views(schema.name, {v.name: v for v in tables}, sql)


def create_views(pipeline: Pipeline, schema_name: str | None = None, *, force: bool = True) -> str:
    """Make (or refresh) the views of a loaded schema in `<dataset>_analytics`; one line.

    `force=False` (after a run) leaves views made from the same schema version alone.
    """
    schema = pipeline.schemas[schema_name] if schema_name else pipeline.default_schema
    target = analytics_dataset(pipeline.dataset_name)  # as the warehouse names it, below
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    try:
        with pipeline.sql_client() as client:
            target = analytics_dataset(client.dataset_name)
            sql = Sql(
                table=_qualifier(client, client.dataset_name),
                view=_qualifier(client, target),
                column=client.escape_column_name,
                literal=client.capabilities.escape_literal,
                dialect=DIALECTS.get(kind, Dialect()),
            )
            views = plan_views(schema, sql)
            with client.with_alternative_dataset_name(target):
                stamp = f"{VIEWS_VERSION}:{schema.version_hash}"
                if not client.has_dataset():
                    client.create_dataset()
                made = _made_before(client, sql)
                names = [v.name for v in views]
                if not force and made == (names, stamp):
                    return f"{schema.name}: views in {target} up to date ({len(views)} views)"
                for stale in reversed([n for n in made[0] if n not in names]):
                    client.execute_sql(f"DROP VIEW IF EXISTS {sql.view(stale)}")
                for index, each in enumerate(views):
                    _replace(client, sql, each, views[index + 1 :])
                _replace(client, sql, _marker(names, stamp, sql), [])
    except DatabaseException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ViewsError(
            f"making the views in {target} failed: {first[:300]}", resource=schema.name
        ) from exc
    return f"{schema.name}: {len(views)} views in {target}"


def _qualifier(client: Any, dataset: str) -> Callable[[str], str]:
    """Qualified names of tables (or views) in `dataset`, as the client's warehouse writes them."""

    def named(name: str) -> str:
        with client.with_alternative_dataset_name(dataset):
            return client.make_qualified_table_name(name)

    return named


def _replace(client: Any, sql: Sql, view: View, later: Sequence[View]) -> None:
    create = f"CREATE OR REPLACE VIEW {sql.view(view.name)} AS {view.sql}"
    try:
        client.execute_sql(create)
    except DatabaseException:
        if not sql.dialect.strict_replace:
            raise
        # PostgreSQL replaces a view in place only when its columns stay: drop it and the views
        # built on it (made again next), never with CASCADE (a user's own view would go too)
        for each in [*reversed(later), view]:
            client.execute_sql(f"DROP VIEW IF EXISTS {sql.view(each.name)}")
        client.execute_sql(create.replace("CREATE OR REPLACE VIEW", "CREATE VIEW", 1))


def _marker(names: Sequence[str], stamp: str, sql: Sql) -> View:
    rows = " UNION ALL ".join(
        f"SELECT {sql.literal(name)} AS view_name, {sql.literal(stamp)} AS made_from"
        for name in names
    )
    return View(MARKER, rows or "SELECT NULL AS view_name, NULL AS made_from")


def _made_before(client: Any, sql: Sql) -> tuple[list[str], str | None]:
    """The views the last creation made (in order), and the stamp of what it made them from."""
    try:
        rows = client.execute_sql(f"SELECT view_name, made_from FROM {sql.view(MARKER)}") or []
    except DatabaseUndefinedRelation:
        return [], None
    return [row[0] for row in rows if row[0]], (rows[0][1] if rows else None)


def views_command(spec: Any, options: Any) -> list[str]:
    """`lxp-sync views SOURCE`: make or refresh the views now, under the run lock."""
    from lxp_sync.pipelines.runner import pipeline_session

    with pipeline_session(spec.name, options) as pipeline:
        pipeline.sync_destination()  # the schema may live only in the destination
        if spec.name not in pipeline.schema_names:
            return [f"{spec.name}: nothing loaded yet; run `lxp-sync run {spec.name}` first"]
        return [create_views(pipeline, spec.name)]
