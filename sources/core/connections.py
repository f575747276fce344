"""One dlt resource per GraphQL relay connection: selection from the live schema, merge, cursors.

PlusPlus GraphQL and Pluvo both use this; a vendor folder only says which connections, which key,
which cursor and which server-side filter.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dlt
import orjson
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.sources import DltResource

from lxp_sync.sources.core import arrow_json
from lxp_sync.sources.core.arrow import batched_arrow, with_row_ids
from lxp_sync.sources.core.arrow_children import (
    ChildTable,
    arrow_lists,
    child_tables,
    with_links,
)
from lxp_sync.sources.core.arrow_json import VARIANTS, FreeFormColumns, variant_name
from lxp_sync.sources.core.completeness import changed_since
from lxp_sync.sources.core.discovery import ReadPlan, with_read_plan
from lxp_sync.sources.core.filters import cursor_filter
from lxp_sync.sources.core.graphql import (
    Connection,
    GraphQLClient,
    IntrospectedSchema,
    relay_pages,
    unwrap,
)
from lxp_sync.sources.core.nested import (
    PARENT_KEY,
    NestedList,
    complete_nested,
    nested_connections,
)
from lxp_sync.sources.core.numbers import GRAPHQL_DECIMAL_SCALE, DecimalColumn, decimal_hint
from lxp_sync.sources.core.paging import iso_text, parse_datetimes
from lxp_sync.sources.core.sweep import KeyListing, relay_key_listing, with_listing

log = logging.getLogger("lxp_sync")
_NAMING = NamingConvention()

# GraphQL scalar -> dlt data type, for the column hints the data alone cannot show
# (a timestamp column that is null on the first page, ids that look like numbers).
SCALAR_TYPES = {
    "DateTime": "timestamp",
    "Date": "date",
    "Boolean": "bool",
    "Int": "bigint",
    "Float": "double",
    "Decimal": "decimal",
    "String": "text",
    "ID": "text",
    "UUID": "text",
}
# Free-form scalars (graphene's GenericScalar and JSONString, a schema's own JSON): one JSON
# column each, never flattened into columns per key. JSONString values are JSON *text*.
FREE_FORM_SCALARS = frozenset({"GenericScalar", "JSON", "JSONString"})
JSON_TEXT_SCALARS = frozenset({"JSONString"})
# Scalars whose every value the Arrow builder types as dlt's row path does (enums too), alone or
# in a list (a child table of `value`s; a Decimal alone only). A free-form (JSON) field of a root
# table does too (`arrow_json`: its lone values typed value by value with dlt's own functions).
# A table with any other field keeps the row path (README: "Arrow"): a custom scalar is typed by
# what dlt infers from the values; a list of lists becomes dlt's intermediate table of `list`
# rows; a list of free-form values, or a free-form field of a connection's nodes inside a node,
# is not built from Arrow.
ARROW_SCALARS = frozenset(SCALAR_TYPES)
# Decimal: `decimal(38,9)` (`numbers.GRAPHQL_DECIMAL_SCALE`), its texts parsed exactly on both
# paths (`node_shape`)
DECIMAL = "Decimal"


@dataclass(frozen=True)
class ConnectionOptions:
    """How one connection becomes a resource."""

    primary_key: str
    # cursor fields to try, in order (the first the node type has is used)
    cursor_fields: tuple[str, ...] = ("modified", "updated", "updatedAt", "created", "createdAt")
    # server-side filter argument per cursor field, e.g. {"modified": "modified_gte"}, taken
    # first; others are found by their names (`filters.cursor_filter`)
    server_filters: Mapping[str, str] | None = None
    page_size: int = 100
    max_page_size: int = 100
    max_pages: int | None = None
    # a boolean field that marks soft-deleted rows; with hard_delete, such rows leave the table
    deleted_field: str | None = None
    hard_delete: bool = False
    # extra filter arguments passed through to the connection
    filters: Mapping[str, Any] | None = None
    # free-form scalars loaded as one JSON column rather than flattened
    json_scalars: frozenset[str] = FREE_FORM_SCALARS
    # creation times: a cursor only with `incremental_by_creation` (see `pick_cursor`)
    creation_cursors: frozenset[str] = frozenset({"created", "createdAt", "created_at"})
    incremental_by_creation: bool = False
    # hand dlt Arrow tables where the table allows it (`arrow_exact`); False: rows
    arrow: bool = True


def column_hints(
    schema: IntrospectedSchema, type_name: str, json_scalars: frozenset[str] = frozenset()
) -> dict[str, dict[str, Any]]:
    hints: dict[str, dict[str, Any]] = {}
    for name, scalar in schema.leaf_fields(type_name).items():
        if scalar.startswith("["):
            continue  # lists become child tables; dlt types their values
        data_type = "json" if scalar in json_scalars else SCALAR_TYPES.get(scalar)
        if data_type is None:
            enum = schema.types.get(scalar, {}).get("kind") == "ENUM"
            data_type = "text" if enum else None
        if data_type is None:
            continue  # other custom scalars: let dlt infer
        hints[name] = _hint(data_type)
    return hints


def _hint(data_type: str) -> dict[str, Any]:
    """The column hint of a scalar's dlt data type."""
    if data_type == "decimal":
        return decimal_hint(GRAPHQL_DECIMAL_SCALE)
    hint: dict[str, Any] = {"data_type": data_type, "nullable": True}
    if data_type == "timestamp":
        hint["timezone"] = True
    return hint


# The longest field name (snake_cased, with room for an alias's `_xxxx`) whose columns are named
# alike from Arrow and from rows on every warehouse: a longer one is shortened by dlt's row
# normalizer on its own before `__pk` or `__v_text` joins it, and from Arrow only as the whole
# column name, with another hash (PostgreSQL's 63 bytes; found by tests/test_generated_schemas.py)
ARROW_NAME_BYTES = 63 - 5


def arrow_exact(
    schema: IntrospectedSchema, type_name: str, free_form: frozenset[str] = frozenset()
) -> bool:
    """Whether a node type's table is the same from Arrow tables as from rows: every field a
    scalar of `ARROW_SCALARS`, of `free_form` (not in a list) or an enum, or a list of one
    (nested objects land as their typed `x__pk`, lists of objects as child tables of their
    typed `pk`), and every field name short enough for no warehouse to shorten it
    (`ARROW_NAME_BYTES`), a free-form field's with its variants (`x__v_text__v_text`)."""
    leaves = schema.leaf_fields(type_name)
    for name, scalar in leaves.items():
        if scalar.startswith("[") and _list_depth(schema.fields(type_name)[name]["type"]) > 1:
            return False  # a list of lists: dlt's row path makes a table of `list` rows
        if scalar in free_form:
            continue
        if scalar == f"[{DECIMAL}]":
            return False  # its child table's `value` is built from rows only
        scalar = scalar.strip("[]")
        enum = schema.types.get(scalar, {}).get("kind") == "ENUM"
        if scalar not in ARROW_SCALARS and not enum:
            return False
    identities = nested_identities(schema, type_name)
    joined = [*identities.items()] + [
        (name, "v_text") for name in leaves if SCALAR_TYPES.get(leaves[name]) == "timestamp"
    ]
    if not all(_named_alike(*parts) for parts in joined):
        return False
    names = [*leaves, *identities, *object_lists(schema, type_name)]
    variants = [
        _NAMING.normalize_path(variant_name(variant_name(name, "double"), "text"))
        for name, scalar in leaves.items()
        if scalar in free_form
    ]
    return all(len(n.encode()) <= ARROW_NAME_BYTES for n in variants) and all(
        len(_NAMING.normalize_identifier(n).encode()) <= ARROW_NAME_BYTES for n in names
    )


def _named_alike(*parts: str) -> bool:
    """Whether dlt names a flattened column (`owner` + `pk`, a timestamp's `v_text` variant) the
    same from rows, which normalize each part before joining them, as from Arrow, which
    normalizes the joined name: `j8czuft_` + `pk` is `j8czuftx__pk` from rows and `j8czuft___pk`
    from Arrow (so the pk loaded NULL on PostgreSQL: found by the generated schemas)."""
    from_rows = _NAMING.shorten_fragments(*(_NAMING.normalize_path(part) for part in parts))
    return from_rows == _NAMING.normalize_path(_NAMING.make_path(*parts))


def _list_depth(type_ref: Mapping[str, Any] | None) -> int:
    depth = 0
    while type_ref is not None:
        depth += type_ref.get("kind") == "LIST"
        type_ref = type_ref.get("ofType")
    return depth


def object_lists(schema: IntrospectedSchema, type_name: str) -> dict[str, str]:
    """Lists of objects the selection takes as `{ pk }`/`{ id }` (child tables of the identity):
    field name -> identity field."""
    objects = schema.identity_objects(type_name)
    return {name: identity for name, (identity, is_list) in objects.items() if is_list}


def nested_identities(schema: IntrospectedSchema, type_name: str) -> dict[str, str]:
    """Single nested objects selected as `{ pk }`/`{ id }`: field name -> identity field."""
    out = {}
    for name, node_field in schema.fields(type_name).items():
        kind, field_type, is_list = unwrap(node_field["type"])
        if kind == "OBJECT" and not is_list and not node_field.get("isDeprecated"):
            identity = schema.identity_field(field_type)
            if identity:
                out[name] = identity
    return out


def pick_cursor(
    schema: IntrospectedSchema, connection: Connection, options: ConnectionOptions
) -> str | None:
    """The cursor field of a connection's nodes; None: every run reads it in full.

    A creation time is no cursor unless `incremental_by_creation`: an edit or a soft delete of
    a row changes no creation time, so only a full read sees it."""
    fields = schema.leaf_fields(connection.node_type)
    cursor = next((c for c in options.cursor_fields if fields.get(c) in ("DateTime", "Date")), None)
    if cursor in options.creation_cursors and not options.incremental_by_creation:
        return None
    return cursor


def server_filter(
    schema: IntrospectedSchema,
    connection: Connection,
    cursor: str | None,
    options: ConnectionOptions,
) -> str | None:
    """The argument that filters `cursor` at or after a value on the server (`filters`)."""
    if cursor is None:
        return None
    cursor_type = schema.leaf_fields(connection.node_type)[cursor]
    preferred = (options.server_filters or {}).get(cursor)
    return cursor_filter(connection.args, cursor, cursor_type, preferred)


def describe_connections(
    schema: IntrospectedSchema,
    connections: Mapping[str, Connection],
    options: ConnectionOptions,
) -> list[dict[str, Any]]:
    """How each resource (name -> its root connection) reads, as plain data, from the schema
    alone (no request): its key and cursor, whether it reads incrementally on the server
    (`reads` "server", with `server_filter`), in full with dlt's incremental dropping what it
    has ("client"), or in full ("full"), its count field, and its connections inside nodes:
    loaded as child tables (with the route that pages a long list) or left out, and why."""
    out = []
    for name, connection in connections.items():
        plan = read_plan(schema, connection, options)
        cursor, argument = plan.cursor, plan.server_filter
        loaded, left_out = nested_connections(schema, connection.node_type, connection.name)
        out.append(
            {
                "resource": name,
                "connection": connection.name,
                "node_type": connection.node_type,
                "primary_key": options.primary_key,
                "cursor": cursor,
                "reads": "server" if argument else "client" if cursor else "full",
                "server_filter": argument,
                "count_field": connection.count_field,
                "nested": {
                    field_name: {
                        "table": f"{table_name(name)}__{field_name}",
                        "node_type": nested.node_type,
                        "parent_key_column": PARENT_KEY.format(key=options.primary_key),
                        "count_field": nested.count_field,
                        "long_lists_through": nested.route.root if nested.route else None,
                    }
                    for field_name, nested in loaded.items()
                },
                "nested_left_out": left_out,
            }
        )
    return out


def read_plan(
    schema: IntrospectedSchema, connection: Connection, options: ConnectionOptions
) -> ReadPlan:
    """How `connection` reads: its cursor, and the argument through which the server filters on
    it (None: every row is read and dlt's incremental keeps the new ones).

    The one place that decides it, for the read and for `lxp-sync discover` alike.
    """
    cursor = pick_cursor(schema, connection, options)
    return ReadPlan(cursor=cursor, server_filter=server_filter(schema, connection, cursor, options))


def connection_resource(
    gql: GraphQLClient,
    connection: Connection,
    options: ConnectionOptions,
    *,
    name: str | None = None,
) -> DltResource:
    """A merge resource over every page of `connection`, incremental where a cursor exists.

    With a server-side filter for the cursor, an incremental run asks only for rows at or after
    the cursor; without one, every page is read and dlt's incremental drops the rows it has.
    """
    schema = gql.schema()
    name = name or connection.name
    resource_name = f"{gql.source}.{name}"
    table = table_name(name)
    selection = schema.selection(connection.node_type)
    hints = node_hints(schema, connection.node_type, options.json_scalars)
    if options.deleted_field and options.hard_delete and options.deleted_field in hints:
        hints[options.deleted_field] = {**hints[options.deleted_field], "hard_delete": True}
    plan = read_plan(schema, connection, options)
    cursor, server_arg = plan.cursor, plan.server_filter
    if cursor in hints:
        # a row read twice in one run (the list moved) lands once: the newest copy
        hints[cursor] = {**hints[cursor], "dedup_sort": "desc"}
    page_size = max(1, min(options.page_size, options.max_page_size))
    # ISO texts in different offsets do not sort as the moments they are: the cursor is compared
    # (by dlt's incremental) and kept in state as an aware datetime
    leaves = schema.leaf_fields(connection.node_type)
    is_datetime = cursor and leaves[cursor] == "DateTime"
    lists, nested_hints = _nested_lists(schema, connection, options, table)
    nested_hints = {**list_hints(schema, connection.node_type), **nested_hints}
    tables = child_tables(table, nested_hints)
    # dlt's incremental compares a Date cursor as the text it is in rows (and keeps it so in
    # state), as a date in Arrow: such a resource stays on rows
    free_form = [f for f, scalar in leaves.items() if scalar in options.json_scalars]
    arrow = (
        options.arrow
        and arrow_exact(schema, connection.node_type, arrow_json.free_form(options.json_scalars))
        and all(arrow_exact(schema, nested.connection.node_type) for nested in lists.values())
        and _names_fit(tables)
        and (cursor is None or is_datetime)
    )
    arrow, children = arrow_lists(tables, arrow)
    # on the Arrow path the builder parses timestamps, by the same rules, in one step
    shape = node_shape(
        schema,
        connection.node_type,
        options.json_scalars,
        parse_stamps=not arrow,
        resource=resource_name,
        key_field=options.primary_key,
    )
    if arrow:
        for nested in lists.values():
            nested.shape = node_shape(
                schema,
                nested.connection.node_type,
                options.json_scalars,
                parse_stamps=False,
                resource=resource_name,
                key_field=nested.key,
            )
    if lists:
        selection = " ".join([selection, *(nested.field for nested in lists.values())])
        route_key = next(iter(lists.values())).connection.route
        if route_key is not None and route_key.key not in selection.split():
            selection += f" {route_key.key}"
    listing = key_listing(gql, connection, options, name, table)

    def pages(updated: dlt.sources.incremental[Any] | None) -> Iterator[list[dict[str, Any]]]:
        filters = dict(options.filters or {})
        start = updated.start_value if updated is not None else None
        if server_arg and start is not None:
            filters[server_arg] = iso_text(start)
        plan.total = None
        for page in relay_pages(
            gql,
            connection,
            selection,
            resource=resource_name,
            key=options.primary_key,
            page_size=page_size,
            filters=filters,
            max_pages=options.max_pages,
            keep_repeat=changed_since(cursor, datetime.now(UTC)),
        ):
            plan.counted(page.total)
            if page.nodes:
                if lists:
                    complete_nested(
                        gql,
                        page.nodes,
                        lists,
                        resource=resource_name,
                        parent_key=options.primary_key,
                        page_size=page_size,
                    )
                shape(page.nodes)
                if is_datetime:
                    parse_datetimes(page.nodes, cursor)  # strictly: a cursor must be a moment
                yield page.nodes

    def read(
        updated: dlt.sources.incremental[Any] | None = (
            dlt.sources.incremental(cursor, on_cursor_value_missing="include") if cursor else None
        ),
    ) -> Iterator[Any]:
        if arrow:
            # a run's own: it starts from the table's columns as dlt's schema has them now
            free_form_columns = FreeFormColumns(table, free_form) if free_form else None
            yield from batched_arrow(
                pages(updated),
                hints,
                row_ids=True,
                children=children,
                free_form=free_form_columns,
            )
        else:
            yield from pages(updated)

    resource = dlt.resource(
        read,
        name=name,
        table_name=table,
        primary_key=options.primary_key,
        write_disposition="merge",
        columns=with_row_ids(hints) if arrow else hints,
        # from Arrow, the child tables are declared on their own (`declare_child_tables`): dlt
        # would give nested hints' tables the root Arrow table's columns
        nested_hints=None if arrow else nested_hints or None,
        parallelized=True,
    )
    if children is not None:
        children.attach(resource, table)
    return with_read_plan(with_listing(resource, listing), plan)


def node_hints(
    schema: IntrospectedSchema, type_name: str, json_scalars: frozenset[str]
) -> dict[str, dict[str, Any]]:
    """Column hints of a node type's table: its scalars, and `x__pk` of its nested objects."""
    hints = column_hints(schema, type_name, json_scalars)
    for field_name, identity in nested_identities(schema, type_name).items():
        # `event_type { pk }` lands as `event_type__pk`, typed even when every value is null
        scalar = schema.leaf_fields(schema_type_of(schema, type_name, field_name))
        data_type = SCALAR_TYPES.get(scalar.get(identity, "ID"), "text")
        hints[f"{field_name}__{identity}"] = {"data_type": data_type, "nullable": True}
    return hints


def node_shape(
    schema: IntrospectedSchema,
    type_name: str,
    json_scalars: frozenset[str],
    *,
    parse_stamps: bool = True,
    resource: str | None = None,
    key_field: str = "pk",
) -> Callable[[list[dict[str, Any]]], None]:
    """Nodes of `type_name`, in place, as their table takes them: null nested objects dropped,
    free-form values as JSON, DateTime texts parsed by the core's rules (leniently; with
    `parse_stamps` False they stay texts, for the Arrow builder), Decimal texts as exact
    numbers (a value `decimal(38,9)` cannot hold fails, naming `resource` and the row's
    `key_field`)."""
    nested = nested_identities(schema, type_name)
    leaves = schema.leaf_fields(type_name)
    free_form = {
        f: scalar in JSON_TEXT_SCALARS for f, scalar in leaves.items() if scalar in json_scalars
    }
    stamps = [f for f, scalar in leaves.items() if scalar == "DateTime"]
    stamp_lists = (
        [f for f, scalar in leaves.items() if scalar == "[DateTime]"] if parse_stamps else []
    )
    decimals = {
        f: DecimalColumn(f, resource, scale=GRAPHQL_DECIMAL_SCALE, rounds=False)
        for f, scalar in leaves.items()
        if scalar.strip("[]") == DECIMAL
    }

    def shape(nodes: list[dict[str, Any]]) -> None:
        if nested:
            _drop_null_objects(nodes, nested)
        if free_form:
            free_form_values(nodes, free_form)
        for name, column in decimals.items():  # texts as exact numbers, on both paths
            for node in nodes:
                value = node.get(name)
                key = node.get(key_field)
                if isinstance(value, list):
                    node[name] = [column.fit(item, key) for item in value]
                elif value is not None:
                    node[name] = column.fit(value, key)
        if stamps and parse_stamps:
            parse_datetimes(nodes, *stamps, strict=False)
        for name in stamp_lists:  # the items of a list of DateTime, as its child table's value
            for node in nodes:
                items = node.get(name)
                if isinstance(items, list):
                    wrapped = [{"value": item} for item in items]
                    parse_datetimes(wrapped, "value", strict=False)
                    node[name] = [item["value"] for item in wrapped]

    return shape


def list_hints(schema: IntrospectedSchema, type_name: str) -> dict[str, Any]:
    """The child tables of a node type's lists: of scalars, `value` typed from the GraphQL type
    (a list of DateTime would otherwise be text or timestamp by what its first texts look like);
    of objects, their `pk`/`id`; with dlt's link columns (`with_links`)."""
    hints: dict[str, Any] = {}
    for name, scalar in schema.leaf_fields(type_name).items():
        if not scalar.startswith("["):
            continue
        scalar = scalar.strip("[]")
        data_type = SCALAR_TYPES.get(scalar)
        if data_type is None and schema.types.get(scalar, {}).get("kind") == "ENUM":
            data_type = "text"
        if data_type is None:
            continue
        hints[name] = {"columns": with_links({"value": _hint(data_type)})}
    for name, identity in object_lists(schema, type_name).items():
        scalar = schema.leaf_fields(schema_type_of(schema, type_name, name)).get(identity, "ID")
        column = {"data_type": SCALAR_TYPES.get(scalar, "text"), "nullable": True}
        hints[name] = {"columns": with_links({identity: column})}
    return hints


def _names_fit(tables: tuple[ChildTable, ...]) -> bool:
    """Child tables and columns no warehouse shortens (`ARROW_NAME_BYTES`)."""
    return all(
        len(table.name.encode()) <= ARROW_NAME_BYTES
        and all(len(c.encode()) <= ARROW_NAME_BYTES for c in table.hints)
        and _names_fit(table.children)
        for table in tables
    )


def _nested_lists(
    schema: IntrospectedSchema, connection: Connection, options: ConnectionOptions, table: str
) -> tuple[dict[str, NestedList], dict[str, Any]]:
    """The connections inside the nodes of `connection` that load, and their child tables' hints."""
    found, left_out = nested_connections(schema, connection.node_type, connection.name)
    for field_name, why in left_out.items():
        log.info("%s: the connection %s inside its nodes is not loaded: %s", table, field_name, why)
    lists: dict[str, NestedList] = {}
    hints: dict[str, Any] = {}
    parent_column = PARENT_KEY.format(key=options.primary_key)
    parent_type = schema.leaf_fields(connection.node_type).get(options.primary_key, "ID")
    for field_name, nested in found.items():
        key = schema.identity_field(nested.node_type)
        assert key is not None  # `nested_connections` loads only these
        lists[field_name] = NestedList(
            nested,
            schema.selection(nested.node_type),
            key,
            node_shape(
                schema, nested.node_type, options.json_scalars, resource=table, key_field=key
            ),
        )
        columns = node_hints(schema, nested.node_type, options.json_scalars)
        columns[parent_column] = {
            "data_type": SCALAR_TYPES.get(parent_type, "text"),
            "nullable": False,
        }
        for sub_path, sub_hints in list_hints(schema, nested.node_type).items():
            hints[(field_name, sub_path)] = sub_hints
        hints[field_name] = {
            # dlt names the root table's column hints itself, not a nested table's
            "columns": with_links(columns),
            "references": [
                {
                    "referenced_table": table,
                    "columns": [parent_column],
                    "referenced_columns": [options.primary_key],
                }
            ],
        }
    return lists, hints


def table_name(name: str) -> str:
    """A resource's table: its name, less the `__` that dlt reads as a child table's path
    (`Things__all` -> `things_all`: dlt's nested hints could not find the parent otherwise)."""
    return _NAMING.normalize_identifier(name) if "__" in name else name


def key_listing(
    gql: GraphQLClient,
    connection: Connection,
    options: ConnectionOptions,
    name: str,
    table: str | None = None,
) -> KeyListing:
    """The deletes sweep's listing: only the key (and the deleted flag), pages as large as a
    data read's (the API's largest unless `page_size` says less)."""
    fields = gql.schema().leaf_fields(connection.node_type)
    return relay_key_listing(
        gql,
        connection,
        resource=f"{gql.source}.{name}",
        table=table or name,
        key=options.primary_key,
        page_size=max(1, min(options.page_size, options.max_page_size)),
        filters=options.filters,
        deleted_field=options.deleted_field if options.deleted_field in fields else None,
        hard_delete=options.hard_delete,
    )


def schema_type_of(schema: IntrospectedSchema, type_name: str, field_name: str) -> str:
    return unwrap(schema.fields(type_name)[field_name]["type"])[1]


def free_form_values(nodes: list[dict[str, Any]], fields: Mapping[str, bool]) -> None:
    """Free-form fields of `nodes`, in place, as their JSON column takes them.

    `fields`: name -> whether the value is JSON text (JSONString), which is parsed. An object or
    a list stays in the JSON column. A lone string, number or boolean cannot be a JSON value in
    dlt's columns: it moves to `<name>__v_<type>` (the column dlt itself would give it), since
    dlt would otherwise read a string as JSON text ("5" becoming 5, '"a"' failing the load).
    """
    for node in nodes:
        for name, is_text in fields.items():
            value = node.get(name)
            if value is None:
                continue
            if is_text and isinstance(value, str):
                with contextlib.suppress(orjson.JSONDecodeError):  # else kept as the text it is
                    value = orjson.loads(value)
            if isinstance(value, dict | list):
                node[name] = value
                continue
            del node[name]
            if value is not None:
                kind = next(kind for python, kind in VARIANTS if isinstance(value, python))
                node[variant_name(name, kind)] = value


def _drop_null_objects(nodes: list[dict[str, Any]], nested: Mapping[str, str]) -> None:
    # a null nested object would otherwise become an untyped column of its own
    for node in nodes:
        for field_name in nested:
            if field_name in node and node[field_name] is None:
                del node[field_name]
