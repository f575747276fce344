"""PlusPlus GraphQL sandbox: the graphql-core schema, relay paging, and compiled projections.

Two ways to answer a query share the same row accessors (`raw_getter`) and paging (`paginate`):

- graphql-core executes the schema built by `build_schema` (every query can take this path);
- `compile_connection` turns a plain selection (fields and aliases only: no fragments, no
  directives) into a function from a `Page` to the response dict, which is what graphql-core
  would return for it, 20-50 times faster. The API uses it whenever it can.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputType,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    StringValueNode,
    ValueNode,
    value_from_ast_untyped,
)

from lxp_sync_sandbox.plusplus_graphql_data import (
    ENTITIES,
    ENUMS,
    EntitySpec,
    FieldSpec,
    Store,
    global_id,
    signed_url,
    url_expiry,
)

MAX_PAGE = 300
CURSOR_PREFIX = "arrayconnection:"


@dataclass
class Variant:
    """The switches `configure` sets: ways the API disagrees with our reading of the documents."""

    drift: bool = False  # `EventType.capacity_note`
    page_limit: int = MAX_PAGE
    page_size_mode: str = "error"  # over the limit: "error" (graphene-django) or "cap" (serve it)
    nested_connections: bool = False  # lists of objects inside a node are relay connections
    filter_names: dict[str, str] = dataclasses.field(
        default_factory=dict
    )  # our name -> the served name
    vendor_filters: bool = False  # events take `starts_at_after` and `name`
    created_only: bool = False  # the `comments` connection: a type with only `created`

    def arg(self, name: str) -> str:
        return self.filter_names.get(name, name)

    def canonical(self, args: dict[str, Any]) -> dict[str, Any]:
        """Arguments under our names again."""
        ours = {served: name for name, served in self.filter_names.items()}
        return {ours.get(k, k): v for k, v in args.items()}

    def shows(self, spec: EntitySpec) -> bool:
        return not spec.optional or self.created_only


# -- scalars (as graphene defines them) -----------------------------------------------------------


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise GraphQLError(f"DateTime cannot represent value: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_datetime_literal(node: ValueNode, _variables: Any = None) -> datetime:
    if not isinstance(node, StringValueNode):
        raise GraphQLError(f"DateTime cannot represent non-string value: {node}")
    return _parse_datetime(node.value)


def _serialize_temporal(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else value


DATETIME = GraphQLScalarType(
    "DateTime",
    serialize=_serialize_temporal,
    parse_value=_parse_datetime,
    parse_literal=_parse_datetime_literal,
    description="The `DateTime` scalar type represents a DateTime value as specified by "
    "[iso8601](https://en.wikipedia.org/wiki/ISO_8601).",
)
DATE = GraphQLScalarType(
    "Date",
    serialize=_serialize_temporal,
    description="The `Date` scalar type represents a Date value as specified by "
    "[iso8601](https://en.wikipedia.org/wiki/ISO_8601).",
)
GENERIC = GraphQLScalarType(
    "GenericScalar",
    serialize=lambda value: value,
    parse_value=lambda value: value,
    parse_literal=lambda node, variables=None: value_from_ast_untyped(node, variables),
    description="The `GenericScalar` scalar type represents a generic GraphQL scalar value that "
    "could be: String, Boolean, Int, Float, List or Object.",
)

JSON_STRING = GraphQLScalarType(
    "JSONString",
    # rows hold the JSON text already, as graphene's JSONString.serialize makes it
    serialize=lambda value: value,
    parse_value=lambda value: value,
    description="Allows use of a JSON String for input / output from the GraphQL schema.\n\n"
    "Use of this type is *not recommended* as you lose the benefits of having a defined, static\n"
    "schema (one of the key benefits of GraphQL).",
)
# graphene's Decimal: the number as text (`str(Decimal)`), every digit (django's DecimalField)
DECIMAL = GraphQLScalarType(
    "Decimal",
    serialize=lambda value: str(value),
    parse_value=lambda value: str(value),
    description="The `Decimal` scalar type represents a python Decimal.",
)

_SCALARS: dict[str, GraphQLScalarType] = {
    "Int": GraphQLInt,
    "Float": GraphQLFloat,
    "String": GraphQLString,
    "Boolean": GraphQLBoolean,
    "ID": GraphQLID,
    "DateTime": DATETIME,
    "Date": DATE,
    "GenericScalar": GENERIC,
    "JSONString": JSON_STRING,
    "Decimal": DECIMAL,
}

# -- row accessors (shared by graphql-core resolvers and compiled projections) ---------------------


def raw_getter(store: Store, spec: EntitySpec, field: FieldSpec) -> Callable[[dict], Any]:
    """row -> the field's value; for nested objects the referenced row (None if gone)."""
    name = field.name
    if name == "id":
        type_name = spec.type_name
        return lambda row: global_id(type_name, row["pk"])
    if name == spec.image:
        entity = spec.name
        return lambda row: signed_url(entity, row["pk"], url_expiry()) if row["_c"] else None
    if field.ref:
        # the referenced table may not be generated yet (its `by_pk` still empty): ensure it
        table = store.tables[field.ref]
        if field.many:
            return lambda row: [table.ensure().by_pk.get(pk) for pk in row[name]]
        return lambda row: None if row[name] is None else table.ensure().by_pk.get(row[name])
    return operator.itemgetter(name)


# -- paging (graphene-django's DjangoConnectionField rules) ---------------------------------------


def offset_to_cursor(offset: int) -> str:
    return base64.b64encode(f"{CURSOR_PREFIX}{offset}".encode()).decode()


def cursor_to_offset(cursor: str | None) -> int | None:
    """The offset in a cursor; None for a cursor that is not one (graphene then ignores it)."""
    if not cursor:
        return None
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        return int(text[len(CURSOR_PREFIX) :]) if text.startswith(CURSOR_PREFIX) else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


@dataclass
class Page:
    """One page of a connection: `rows[start:end]`, offsets counted from `base`."""

    rows: list[dict[str, Any]]
    base: int
    start: int
    end: int
    total: int
    has_previous: bool
    has_next: bool

    def page_info(self) -> dict[str, Any]:
        empty = self.end <= self.start
        return {
            "hasNextPage": self.has_next,
            "hasPreviousPage": self.has_previous,
            "startCursor": None if empty else offset_to_cursor(self.start - self.base),
            "endCursor": None if empty else offset_to_cursor(self.end - 1 - self.base),
        }


def paginate(
    store: Store, field_name: str, args: dict[str, Any], variant: Variant | None = None
) -> Page:
    """The page `args` ask for; ValueError with graphene-django's messages for bad arguments."""
    variant = variant or Variant()
    args = page_args(field_name, variant.canonical(args), variant)
    table = store.table(field_name)
    return page_of(*table.select(args).since(args.get("modified_gte")), args)


def page_args(field_name: str, args: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """`args`, checked as graphene-django does; over the limit capped when the variant says so."""
    first, last = args.get("first"), args.get("last")
    if not (first or last):
        raise ValueError(
            f"You must provide a `first` or `last` value to properly paginate the "
            f"`{field_name}` connection."
        )
    limit = variant.page_limit
    for arg, value in (("first", first), ("last", last)):
        if value and value > limit:
            if variant.page_size_mode == "cap":
                args = {**args, arg: limit}
                continue
            raise ValueError(
                f"Requesting {value} records on the `{field_name}` connection exceeds the "
                f"`{arg}` limit of {limit} records."
            )
        if value is not None and value < 0:
            raise ValueError(f"Argument '{arg}' must be a non-negative integer.")
    return args


def page_of(rows: list[dict[str, Any]], base: int, args: dict[str, Any]) -> Page:
    """The page of `rows[base:]` that checked `args` select (graphql-relay's offset rules)."""
    first, last = args.get("first"), args.get("last")
    length = len(rows) - base
    after, before = cursor_to_offset(args.get("after")), cursor_to_offset(args.get("before"))
    start, end = 0, length
    if after is not None and after >= 0:
        start = min(after + 1, length)
    if before is not None and 0 <= before < length:
        end = max(start, min(end, before))
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    lower = after + 1 if after is not None and after >= 0 else 0
    upper = before if before is not None and 0 <= before < length else length
    return Page(
        rows=rows,
        base=base,
        start=base + start,
        end=base + end,
        total=length,
        has_previous=last is not None and start > lower,
        has_next=first is not None and end < upper,
    )


def connection_payload(page: Page) -> dict[str, Any]:
    """The connection as graphql-core's default resolvers read it (nodes are raw rows)."""
    base = page.base
    return {
        "totalCount": page.total,
        "pageInfo": page.page_info(),
        "edges": [
            {"cursor": offset_to_cursor(i - base), "node": page.rows[i]}
            for i in range(page.start, page.end)
        ],
    }


# -- the schema -----------------------------------------------------------------------------------


def _wrap(notation: str, named: Callable[[str], Any]) -> Any:
    if notation.endswith("!"):
        return GraphQLNonNull(_wrap(notation[:-1], named))
    if notation.startswith("["):
        return GraphQLList(_wrap(notation[1:-1], named))
    return named(notation)


def build_schema(store: Store, variant: Variant) -> GraphQLSchema:
    """The whole schema as `variant` shapes it (drift, nested connections, filter names, ...)."""
    enums = {name: GraphQLEnumType(name, {v: v for v in values}) for name, values in ENUMS.items()}
    node = GraphQLInterfaceType(
        "Node",
        {"id": GraphQLField(GraphQLNonNull(GraphQLID), description="The ID of the object")},
        description="An object with an ID",
    )
    specs = [spec for spec in ENTITIES.values() if variant.shows(spec)]
    objects: dict[str, GraphQLObjectType] = {}
    connections: dict[str, GraphQLObjectType] = {}

    def output_type(notation: str) -> GraphQLOutputType:
        def named(name: str) -> Any:
            if name.startswith("@"):
                return objects[name[1:]]
            return _SCALARS.get(name) or enums[name]

        return _wrap(notation, named)

    def node_fields(spec: EntitySpec) -> dict[str, GraphQLField]:
        fields = {}
        for field in spec.visible_fields(variant.drift):
            getter = raw_getter(store, spec, field)
            if field.ref and field.many and variant.nested_connections:
                fields[field.name] = _nested_connection(connection(field.ref), getter, variant)
                continue
            fields[field.name] = GraphQLField(
                output_type(field.type),
                resolve=lambda row, _info, get=getter: get(row),
                description=field.description,
                deprecation_reason=field.deprecation_reason,
            )
        return fields

    for spec in specs:
        objects[spec.name] = GraphQLObjectType(
            spec.type_name,
            lambda spec=spec: node_fields(spec),
            interfaces=[node],
        )

    page_info = GraphQLObjectType(
        "PageInfo",
        {
            "hasNextPage": GraphQLField(
                GraphQLNonNull(GraphQLBoolean),
                description="When paginating forwards, are there more items?",
            ),
            "hasPreviousPage": GraphQLField(
                GraphQLNonNull(GraphQLBoolean),
                description="When paginating backwards, are there more items?",
            ),
            "startCursor": GraphQLField(
                GraphQLString, description="When paginating backwards, the cursor to continue."
            ),
            "endCursor": GraphQLField(
                GraphQLString, description="When paginating forwards, the cursor to continue."
            ),
        },
        description="The Relay compliant `PageInfo` type, containing data necessary to paginate "
        "this connection.",
    )

    def connection(entity: str) -> GraphQLObjectType:
        """`<Type>Connection`, shared by the root field and the lists of it inside nodes."""
        if entity not in connections:
            type_name = ENTITIES[entity].type_name
            edge = GraphQLObjectType(
                f"{type_name}Edge",
                {
                    "node": GraphQLField(
                        objects[entity], description="The item at the end of the edge"
                    ),
                    "cursor": GraphQLField(
                        GraphQLNonNull(GraphQLString), description="A cursor for use in pagination"
                    ),
                },
                description=f"A Relay edge containing a `{type_name}` and its cursor.",
            )
            connections[entity] = GraphQLObjectType(
                f"{type_name}Connection",
                {
                    "pageInfo": GraphQLField(
                        GraphQLNonNull(page_info),
                        description="Pagination data for this connection.",
                    ),
                    "edges": GraphQLField(
                        GraphQLNonNull(GraphQLList(edge)),
                        description="Contains the nodes in this connection.",
                    ),
                    "totalCount": GraphQLField(GraphQLInt),
                },
            )
        return connections[entity]

    def input_type(notation: str) -> GraphQLInputType:
        return _wrap(notation, lambda name: _SCALARS.get(name) or enums[name])

    def resolve(_root: Any, info: Any, **kwargs: Any) -> dict[str, Any]:
        return connection_payload(paginate(store, info.field_name, kwargs, variant))

    query_fields: dict[str, GraphQLField] = {}
    for spec in specs:
        if not spec.root:
            continue
        args = _paging_args()
        for flt in spec.filters:
            if variant.vendor_filters or not flt.vendor:
                args[variant.arg(flt.arg)] = GraphQLArgument(input_type(flt.type))
        if spec.incremental:
            args[variant.arg("modified_gte")] = GraphQLArgument(
                DATETIME, description="Rows modified at or after this instant."
            )
        query_fields[spec.name] = GraphQLField(connection(spec.name), args=args, resolve=resolve)

    query = GraphQLObjectType("Query", query_fields)
    return GraphQLSchema(query=query, types=list(objects.values()))


def _paging_args() -> dict[str, GraphQLArgument]:
    return {
        "before": GraphQLArgument(GraphQLString),
        "after": GraphQLArgument(GraphQLString),
        "first": GraphQLArgument(GraphQLInt),
        "last": GraphQLArgument(GraphQLInt),
    }


def _nested_connection(
    connection: GraphQLObjectType, getter: Callable[[dict], Any], variant: Variant
) -> GraphQLField:
    """A list inside a node served as a connection with its own paging, as graphene-django does
    for a many-to-many field (`first`/`last` required, the same limit as the root)."""

    def resolve(row: dict[str, Any], info: Any, **kwargs: Any) -> dict[str, Any]:
        args = page_args(info.field_name, kwargs, variant)
        rows = [item for item in getter(row) if item is not None]
        return connection_payload(page_of(rows, 0, args))

    return GraphQLField(GraphQLNonNull(connection), args=_paging_args(), resolve=resolve)


# -- compiled projections -------------------------------------------------------------------------

# A plain selection: (response key, field name, sub-selection or None for a leaf).
Selection = list[tuple[str, str, "Selection | None"]]


def compile_node(store: Store, entity: str, selection: Selection) -> Callable[[dict], dict]:
    """row -> the node dict graphql-core would return for this selection.

    The projector is generated source: one dict display of `row[...]` lookups, nested objects
    inlined, so that a page of 300 rows with every field takes a few milliseconds instead of
    tens. Keys and field names are GraphQL names (validated by then), embedded with `repr`.
    """
    env: dict[str, Any] = {}
    source = f"def project(row):\n    return {_node_source(store, entity, selection, 'row', env)}\n"
    exec(compile(source, f"<{ENTITIES[entity].type_name} projection>", "exec"), env)
    return env["project"]


def _node_source(
    store: Store, entity: str, selection: Selection, var: str, env: dict[str, Any]
) -> str:
    """A dict display that projects the row in variable `var`; helpers go into `env`."""
    spec = ENTITIES[entity]
    items = []
    for key, name, sub in selection:
        if name == "__typename":
            items.append(f"{key!r}: {spec.type_name!r}")
            continue
        field = spec.field(name)
        if field.ref and sub is not None:
            rows, target = f"rows{len(env)}", f"t{len(env)}"
            env[rows] = store.table(field.ref).by_pk
            inner = _node_source(store, field.ref, sub, target, env)
            if field.many:
                value = (
                    f"[None if ({target} := {rows}.get(pk)) is None else {inner} "
                    f"for pk in {var}[{name!r}]]"
                )
            else:
                value = f"None if ({target} := {rows}.get({var}[{name!r}])) is None else {inner}"
        elif name == "id" or name == spec.image:
            getter = f"get{len(env)}"
            env[getter] = raw_getter(store, spec, field)
            value = f"{getter}({var})"
        else:
            value = f"{var}[{name!r}]"
        items.append(f"{key!r}: {value}")
    return "{" + ", ".join(items) + "}"


def compile_connection(store: Store, entity: str, selection: Selection) -> Callable[[Page], dict]:
    """Page -> the connection dict graphql-core would return for this selection."""
    spec = ENTITIES[entity]
    parts: list[tuple[str, Callable[[Page], Any]]] = []
    for key, name, sub in selection:
        if name == "__typename":
            parts.append((key, lambda _page, t=f"{spec.type_name}Connection": t))
        elif name == "totalCount":
            parts.append((key, lambda page: page.total))
        elif name == "pageInfo":
            parts.append((key, _compile_page_info(sub or [])))
        elif name == "edges":
            parts.append((key, _compile_edges(store, spec, sub or [])))
        else:
            raise KeyError(name)

    def project(page: Page) -> dict:
        return {key: part(page) for key, part in parts}

    return project


def _compile_page_info(selection: Selection) -> Callable[[Page], dict]:
    def project(page: Page) -> dict:
        info = page.page_info()
        info["__typename"] = "PageInfo"
        return {key: info[name] for key, name, _ in selection}

    return project


def _compile_edges(store: Store, spec: EntitySpec, selection: Selection) -> Callable[[Page], list]:
    edge_type = f"{spec.type_name}Edge"
    node_selection = next((sub for _, name, sub in selection if name == "node"), None)
    project_node = compile_node(store, spec.name, node_selection or [])
    plan = [(key, name) for key, name, _ in selection]

    def project(page: Page) -> list:
        out = []
        rows, base = page.rows, page.base
        for i in range(page.start, page.end):
            edge = {}
            for key, name in plan:
                if name == "node":
                    edge[key] = project_node(rows[i])
                elif name == "cursor":
                    edge[key] = offset_to_cursor(i - base)
                else:
                    edge[key] = edge_type
            out.append(edge)
        return out

    return project


def truth_selection(entity: str, drift: bool) -> Selection:
    """Every field of the node type; nested objects (and lists of them) reduced to `pk`."""
    return [
        (f.name, f.name, [("pk", "pk", None)] if f.ref else None)
        for f in ENTITIES[entity].visible_fields(drift)
    ]
