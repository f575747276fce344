"""A GraphQL API built from a schema the caller describes: for property-based tests.

`POST /generated/graphql` (header `Authorization: Token generated-token`), executed by
graphql-core. `configure({"spec": {...}})` (`/_sandbox/config` with `"api": "generated"`)
replaces the schema and its rows; the spec is JSON:

- `types`: type name -> list of fields, each `{"name", "kind", ...}`: `kind` "scalar" with
  `type` (`Int`, `Float`, `String`, `Boolean`, `ID`, `DateTime`, `Decimal` (its text, as
  graphene sends it), or an enum's name), `list`
  (a list of those), `non_null`, `deprecated` (`GenericScalar`: any JSON value); "object" with
  `target` (a type: a nested object, the value is the target row's `pk`; with `list`, a list
  of them, the value a list of `pk`s); "connection" with `target` (a relay connection
  inside the node, the value a list of the target's `pk`s; `first` or `last` required, at
  most `page_limit`). Every type gets `pk: Int!` first; with `node` true also `id: ID!` and
  the relay `Node` interface.
- `enums`: enum name -> its values. `roots`: root connection name -> type. `rows`: type ->
  rows (values as the API serializes them: a DateTime is sent as the text given).
- `page_limit` (default 100): `first`/`last` above it is graphene-django's error.
- `node` (default true): a `node(id: ID!)` root field (relay); false: none, and root
  connections take `pk: [Int]` instead, so a long nested list is paged through them.

Root connections take `first`, `after`, `last`, `before` and return `edges { cursor node }`,
`pageInfo` and `totalCount` (graphene's `arrayconnection:N` cursors). `truth(root)` is the rows
of the root's type as given.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    graphql_sync,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lxp_sync_sandbox.base import Api
from lxp_sync_sandbox.plusplus_graphql_schema import _SCALARS as GRAPHENE_SCALARS
from lxp_sync_sandbox.plusplus_graphql_schema import (
    Page,
    connection_payload,
    page_args,
    page_of,
)

API_TOKEN = "generated-token"

# graphene's scalars, as the PlusPlus variant defines them (a DateTime is sent as the text given)
SCALARS = {name: GRAPHENE_SCALARS[name] for name in ("Int", "Float", "String", "Boolean", "ID", "DateTime", "Decimal", "GenericScalar")}  # fmt: skip
EMPTY_SPEC: dict[str, Any] = {"types": {}, "roots": {}, "rows": {}, "enums": {}}


class _Limit:
    """`page_args` wants a variant with the page limit (graphene-django's error over it)."""

    page_size_mode = "error"

    def __init__(self, page_limit: int) -> None:
        self.page_limit = page_limit


def global_id(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def build_schema(spec: dict[str, Any]) -> GraphQLSchema:
    """The graphql-core schema a spec describes (module docstring)."""
    limit = _Limit(int(spec.get("page_limit", 100)))
    with_node = bool(spec.get("node", True))
    rows = {name: {row["pk"]: row for row in table} for name, table in spec["rows"].items()}
    enums = {name: GraphQLEnumType(name, {v: v for v in values}) for name, values in spec["enums"].items()}  # fmt: skip
    node = GraphQLInterfaceType("Node", {"id": GraphQLField(GraphQLNonNull(GraphQLID))})
    objects: dict[str, GraphQLObjectType] = {}
    connections: dict[str, GraphQLObjectType] = {}
    page_info = GraphQLObjectType(
        "PageInfo",
        {
            "hasNextPage": GraphQLField(GraphQLNonNull(GraphQLBoolean)),
            "hasPreviousPage": GraphQLField(GraphQLNonNull(GraphQLBoolean)),
            "startCursor": GraphQLField(GraphQLString),
            "endCursor": GraphQLField(GraphQLString),
        },
    )

    def connection(type_name: str) -> GraphQLObjectType:
        if type_name not in connections:
            edge = GraphQLObjectType(
                f"{type_name}Edge",
                lambda: {
                    "node": GraphQLField(objects[type_name]),
                    "cursor": GraphQLField(GraphQLNonNull(GraphQLString)),
                },
            )
            connections[type_name] = GraphQLObjectType(
                f"{type_name}Connection",
                {
                    "pageInfo": GraphQLField(GraphQLNonNull(page_info)),
                    "edges": GraphQLField(GraphQLNonNull(GraphQLList(edge))),
                    "totalCount": GraphQLField(GraphQLInt),
                },
            )
        return connections[type_name]

    def scalar(field: dict[str, Any]) -> Any:
        named = SCALARS.get(field["type"]) or enums[field["type"]]
        if field.get("list"):
            named = GraphQLList(named)
        return GraphQLNonNull(named) if field.get("non_null") else named

    def page(items: list[dict[str, Any]], field_name: str, args: dict[str, Any]) -> dict:
        checked = page_args(field_name, args, limit)  # type: ignore[arg-type]
        result: Page = page_of(items, 0, checked)
        return connection_payload(result)

    def fields_of(type_name: str) -> dict[str, GraphQLField]:
        out = {"pk": GraphQLField(GraphQLNonNull(GraphQLInt))}
        if with_node:
            out["id"] = GraphQLField(
                GraphQLNonNull(GraphQLID),
                resolve=lambda row, _i, t=type_name: global_id(t, row["pk"]),
            )
        for field in spec["types"][type_name]:
            name, kind = field["name"], field["kind"]
            reason = "generated" if field.get("deprecated") else None
            get = lambda row, _info, n=name: row.get(n)  # noqa: E731
            if kind == "scalar":
                out[name] = GraphQLField(scalar(field), resolve=get, deprecation_reason=reason)
            elif kind == "object" and field.get("list"):
                target = field["target"]
                out[name] = GraphQLField(
                    GraphQLList(objects[target]),
                    resolve=lambda row, _i, n=name, t=target: (
                        None if row.get(n) is None else [rows[t].get(pk) for pk in row[n]]
                    ),
                    deprecation_reason=reason,
                )
            elif kind == "object":
                target = field["target"]
                out[name] = GraphQLField(
                    objects[target],
                    resolve=lambda row, _i, n=name, t=target: rows[t].get(row.get(n)),
                    deprecation_reason=reason,
                )
            else:
                target = field["target"]

                def resolve(
                    row: dict, info: Any, n: str = name, t: str = target, **args: Any
                ) -> dict:
                    return page([rows[t][pk] for pk in row.get(n) or []], info.field_name, args)

                out[name] = GraphQLField(
                    GraphQLNonNull(connection(target)),
                    args=_paging_args(),
                    resolve=resolve,
                    deprecation_reason=reason,
                )
        return out

    for type_name in spec["types"]:
        objects[type_name] = GraphQLObjectType(
            type_name,
            lambda t=type_name: fields_of(t),
            interfaces=[node] if with_node else [],
        )

    query: dict[str, GraphQLField] = {}
    for root, type_name in spec["roots"].items():

        def resolve_root(_root: Any, info: Any, t: str = type_name, **args: Any) -> dict:
            items = list(rows.get(t, {}).values())
            wanted = args.pop("pk", None)
            if wanted is not None:
                items = [row for row in items if row["pk"] in set(wanted)]
            return page(items, info.field_name, args)

        args = _paging_args()
        if not with_node:
            args["pk"] = GraphQLArgument(GraphQLList(GraphQLInt))
        query[root] = GraphQLField(connection(type_name), args=args, resolve=resolve_root)
    if with_node:

        def resolve_node(_root: Any, _info: Any, id: str) -> Any:  # noqa: A002
            type_name, _, pk = base64.b64decode(id).decode().partition(":")
            row = rows.get(type_name, {}).get(int(pk))
            return None if row is None else {**row, "__typename": type_name}

        query["node"] = GraphQLField(
            node, args={"id": GraphQLArgument(GraphQLNonNull(GraphQLID))}, resolve=resolve_node
        )
    node.resolve_type = lambda value, *_: value["__typename"]
    if not query:
        query["empty"] = GraphQLField(GraphQLString)
    return GraphQLSchema(GraphQLObjectType("Query", query), types=list(objects.values()))


def _paging_args() -> dict[str, GraphQLArgument]:
    return {
        "first": GraphQLArgument(GraphQLInt),
        "after": GraphQLArgument(GraphQLString),
        "last": GraphQLArgument(GraphQLInt),
        "before": GraphQLArgument(GraphQLString),
    }


class GeneratedApi(Api):
    name = "generated"

    def __init__(self) -> None:
        self.spec: dict[str, Any] = EMPTY_SPEC
        self.schema = build_schema(self.spec)

    def routes(self) -> list[Any]:
        return [Route("/graphql", self.endpoint, methods=["POST"])]

    def describe(self, base_url: str) -> dict[str, Any]:
        return {"base_url": f"{base_url}/{self.name}/graphql", "api_token": API_TOKEN}

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        spec = dict(spec)
        result = None
        if "spec" in spec:
            self.spec = {**EMPTY_SPEC, **spec.pop("spec")}
            self.schema = build_schema(self.spec)
            result = {"types": len(self.spec["types"]), "roots": sorted(self.spec["roots"])}
        super().configure(spec)
        return result

    def truth(self, entity: str) -> list[dict[str, Any]]:
        return list(self.spec["rows"].get(self.spec["roots"][entity], []))

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("generated: configure a new spec instead")

    async def endpoint(self, request: Request) -> Response:
        if request.headers.get("authorization", "").strip() != f"Token {API_TOKEN}":
            return Response(orjson.dumps({"detail": "Invalid token."}), 401, media_type="application/json")  # fmt: skip
        body = orjson.loads(await request.body())
        result = graphql_sync(
            self.schema,
            body["query"],
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        return Response(orjson.dumps(payload), 200, media_type="application/json")


def build(config: Any) -> GeneratedApi:
    return GeneratedApi()
