"""Connections inside a node (`events { presenters { edges { node } } }`) as child tables.

graphene-django serves a many-to-many field as a relay connection of its own: paged (`first` is
mandatory where `RELAY_CONNECTION_ENFORCE_FIRST_OR_LAST` is on, at most the server's limit),
counted (`totalCount`), filterable. The parent's query selects its first page, as large as the
parent's page (`$first`), with `pageInfo` and the count. A parent whose list that page shows
complete (`hasNextPage` false, as many distinct nodes as the count) keeps it; any other parent's
list is read on its own, from its first page, with every check of a root read
(`relay_pages`): through `node(id:)` where the parent type implements the `node` field's
interface (graphene's relay `Node`), else through the parent's root connection filtered to that
parent by its key (`events(pk: [412], first: 1)`). With neither, such a parent fails the read.

The nodes land in `<table>__<field>` (dlt's child table of the parent's row, so that dlt's merge
replaces a reloaded parent's old child rows), each with the parent's key as `_parent_<key>`
(`_parent_pk`), the key SQL users join on, besides dlt's `_dlt_parent_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lxp_sync.sources.core.errors import DataMismatchError
from lxp_sync.sources.core.graphql import (
    IDENTITY_FIELDS,
    PAGING_ARGS,
    Connection,
    GraphQLClient,
    IntrospectedSchema,
    Route,
    nested_field,
    relay_pages,
    type_ref_str,
    unwrap,
)

# Arguments of a parent's root connection that select one parent by its key, in order.
KEY_FILTERS = ("{key}", "{key}_in", "{key}__in", "{key}s")
# The child rows' column with their parent's key: `_parent_pk`, `_parent_id`.
PARENT_KEY = "_parent_{key}"


def required_filters(a_field: Mapping[str, Any]) -> list[str]:
    """Arguments other than paging ones that a field requires and has no default for."""
    return [
        a["name"]
        for a in a_field.get("args") or []
        if a["type"]["kind"] == "NON_NULL"
        and a.get("defaultValue") is None
        and a["name"] not in PAGING_ARGS
    ]


def nested_connections(
    schema: IntrospectedSchema, type_name: str, parent: str
) -> tuple[dict[str, Connection], dict[str, str]]:
    """The connections inside nodes of `type_name` that load (not deprecated, paged by `first`,
    no required filter, nodes with `pk` or `id`), and those left out with why."""
    loaded: dict[str, Connection] = {}
    left_out: dict[str, str] = {}
    route = parent_route(schema, type_name)
    for name, node_field in schema.fields(type_name).items():
        if node_field.get("isDeprecated"):
            continue
        found = schema.connection_at(type_name, name)
        if found is None:
            continue
        required = required_filters(node_field)
        if "first" not in found.args:
            left_out[name] = "it takes no `first` argument"
        elif required:
            left_out[name] = f"it requires {', '.join(required)}, which has no default"
        elif schema.identity_field(found.node_type) is None:
            left_out[name] = f"its nodes ({found.node_type}) have no `pk` or `id`"
        else:
            loaded[name] = replace(found, route=route, parent=parent)
    return loaded, left_out


def parent_route(schema: IntrospectedSchema, type_name: str) -> Route | None:
    """How one node of `type_name` is asked for again: `node(id:)` where the type implements
    the `node` field's interface, else its root connection filtered by its key; None."""
    fields = schema.fields(type_name)
    node = schema.fields(schema.query_type).get("node")
    interfaces = {i["name"] for i in schema.types.get(type_name, {}).get("interfaces") or []}
    if node is not None and "id" in fields:
        _, interface, _ = unwrap(node["type"])
        id_arg = next((a for a in node.get("args") or [] if a["name"] == "id"), None)
        if interface in interfaces and id_arg is not None:
            return Route(type_name, "id", "id", type_ref_str(id_arg["type"]), "node")
    for connection in schema.connections().values():
        if connection.node_type != type_name:
            continue
        for key in IDENTITY_FIELDS:
            if key not in fields:
                continue
            _, key_type, _ = unwrap(fields[key]["type"])
            for pattern in KEY_FILTERS:
                argument = pattern.format(key=key)
                declared = connection.args.get(argument)
                if declared is None or declared.replace("!", "").strip("[]") != key_type:
                    continue
                return Route(type_name, key, argument, declared, connection.name, "[" in declared)
    return None


@dataclass
class NestedList:
    """One connection inside the nodes of a resource, and how its rows are completed."""

    connection: Connection
    selection: str  # of its nodes
    key: str  # its nodes' identity field
    shape: Callable[[list[dict[str, Any]]], None]  # the nodes as their table takes them

    @property
    def field(self) -> str:
        return nested_field(self.connection, self.selection)


def complete_nested(
    gql: GraphQLClient,
    rows: list[dict[str, Any]],
    lists: Mapping[str, NestedList],
    *,
    resource: str,
    parent_key: str,
    page_size: int,
) -> None:
    """Each of `rows`' nested connections, in place, as the list of every one of its nodes
    (each with `_parent_<key>`): the first page where it shows the whole list, else read."""
    column = PARENT_KEY.format(key=parent_key)
    for row in rows:
        for name, nested in lists.items():
            nodes = _whole_first_page(row.get(name), nested)
            if nodes is None:
                nodes = _read_list(gql, row, nested, resource, parent_key, page_size)
            nested.shape(nodes)
            for node in nodes:
                node[column] = row[parent_key]
            row[name] = nodes


def _whole_first_page(conn: Any, nested: NestedList) -> list[dict[str, Any]] | None:
    """The nodes of an embedded first page that shows the whole list; None: read it."""
    if conn is None:
        return []  # a nullable connection answered null: no list
    if not isinstance(conn, dict) or not isinstance(conn.get("edges"), list):
        return None
    info = conn.get("pageInfo")
    if not isinstance(info, dict) or info.get("hasNextPage") is not False:
        return None
    edges = conn["edges"]
    if any(not isinstance(edge, dict) for edge in edges):
        return None
    nodes = [edge.get("node") for edge in edges]
    if any(not isinstance(node, dict) or node.get(nested.key) is None for node in nodes):
        return None
    if len({node[nested.key] for node in nodes}) != len(nodes):
        return None
    count_field = nested.connection.count_field
    if count_field is not None and conn.get(count_field) != len(nodes):
        return None
    return nodes


def _read_list(
    gql: GraphQLClient,
    row: dict[str, Any],
    nested: NestedList,
    resource: str,
    parent_key: str,
    page_size: int,
) -> list[dict[str, Any]]:
    connection = nested.connection
    where = f"{resource}.{connection.name}"
    route = connection.route
    if route is None or row.get(route.key) is None:
        raise DataMismatchError(
            f"{parent_key} {row.get(parent_key)} has more `{connection.name}` than one page "
            f"holds, and the API offers no way to page them (no `node(id:)` for "
            f"{connection.route.parent_type if route else 'the parent type'}, no root "
            "connection filtered by key)",
            resource=where,
            hint="Raise `page_size` to the API's limit, or leave the resource out",
        )
    nodes: list[dict[str, Any]] = []
    for page in relay_pages(
        gql,
        connection,
        nested.selection,
        resource=f"{where} of {parent_key} {row[parent_key]}",
        key=nested.key,
        page_size=page_size,
        parent=row,
    ):
        nodes.extend(page.nodes)
    return nodes
