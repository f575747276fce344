"""GraphQL over the shared HTTP client: errors, introspection, selection sets, relay paging.

Used by every GraphQL source (PlusPlus, Pluvo, Pitchly). A selection set is built from the
live schema, so a field the vendor adds tomorrow reaches the warehouse without a code change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxp_sync.sources.core.errors import (
    AuthenticationError,
    GraphQLQueryError,
    PermissionDeniedError,
)
from lxp_sync.sources.core.http import ApiClient, request_id_of
from lxp_sync.sources.core.paging import Progress

INTROSPECTION_QUERY = """
query LxpIntrospection {
  __schema {
    queryType { name }
    types {
      kind name
      fields(includeDeprecated: true) {
        name isDeprecated deprecationReason
        args { name type { ...TypeRef } }
        type { ...TypeRef }
      }
    }
  }
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
}
"""

LEAF_KINDS = frozenset({"SCALAR", "ENUM"})
# Identity fields of a nested object, in order of preference.
IDENTITY_FIELDS = ("pk", "id")


def unwrap(type_ref: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(kind, name, is_list) of a type reference, through NON_NULL and LIST wrappers."""
    is_list = False
    ref: Mapping[str, Any] | None = type_ref
    while ref is not None and ref.get("kind") in ("NON_NULL", "LIST"):
        is_list = is_list or ref["kind"] == "LIST"
        ref = ref.get("ofType")
    if ref is None:
        return "SCALAR", "String", is_list
    return ref["kind"], ref["name"], is_list


def type_ref_str(type_ref: Mapping[str, Any]) -> str:
    """A type reference as GraphQL writes it: `[Int]!`, `DateTime`, ..."""
    kind = type_ref["kind"]
    if kind == "NON_NULL":
        return type_ref_str(type_ref["ofType"]) + "!"
    if kind == "LIST":
        return "[" + type_ref_str(type_ref["ofType"]) + "]"
    return type_ref["name"]


@dataclass(frozen=True)
class Connection:
    """A root relay connection found by introspection."""

    name: str
    node_type: str
    args: dict[str, str]  # argument name -> GraphQL type, as written in a variable declaration
    count_field: str | None  # `totalCount` or `count` when the connection has one


@dataclass
class IntrospectedSchema:
    """The parts of a live schema a source needs."""

    query_type: str
    types: dict[str, dict[str, Any]]
    _selections: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_introspection(cls, data: Mapping[str, Any]) -> IntrospectedSchema:
        schema = data["__schema"]
        types = {t["name"]: t for t in schema["types"] if t.get("name")}
        return cls(query_type=schema["queryType"]["name"], types=types)

    def fields(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.types.get(type_name, {}).get("fields") or []}

    def connections(self) -> dict[str, Connection]:
        """Every root field whose type is a relay connection (`edges { node }`)."""
        found = {}
        for name, root_field in self.fields(self.query_type).items():
            if root_field.get("isDeprecated"):
                continue
            kind, type_name, is_list = unwrap(root_field["type"])
            if kind != "OBJECT" or is_list:
                continue
            conn_fields = self.fields(type_name)
            if "edges" not in conn_fields:
                continue
            _, edge_type, _ = unwrap(conn_fields["edges"]["type"])
            node = self.fields(edge_type).get("node")
            if node is None:
                continue
            _, node_type, _ = unwrap(node["type"])
            count_field = next((c for c in ("totalCount", "count") if c in conn_fields), None)
            args = {a["name"]: type_ref_str(a["type"]) for a in root_field.get("args") or []}
            found[name] = Connection(name, node_type, args, count_field)
        return found

    def identity_field(self, type_name: str) -> str | None:
        fields = self.fields(type_name)
        return next((name for name in IDENTITY_FIELDS if name in fields), None)

    def selection(self, type_name: str) -> str:
        """Every scalar and enum field (lists included), `{ pk }`/`{ id }` of nested objects.

        Deprecated fields and fields with required arguments are skipped; nested objects
        without an identity field and connections inside a node are left out (depth 1).
        """
        if type_name in self._selections:
            return self._selections[type_name]
        parts = []
        for name, node_field in self.fields(type_name).items():
            if node_field.get("isDeprecated"):
                continue
            if any(a["type"]["kind"] == "NON_NULL" for a in node_field.get("args") or []):
                continue
            kind, field_type, _ = unwrap(node_field["type"])
            if kind in LEAF_KINDS:
                parts.append(name)
            elif kind == "OBJECT":
                identity = self.identity_field(field_type)
                if identity and "edges" not in self.fields(field_type):
                    parts.append(f"{name} {{ {identity} }}")
        selection = " ".join(parts)
        self._selections[type_name] = selection
        return selection

    def leaf_fields(self, type_name: str) -> dict[str, str]:
        """Non-deprecated scalar/enum fields and their type names (for column hints)."""
        out = {}
        for name, node_field in self.fields(type_name).items():
            kind, field_type, is_list = unwrap(node_field["type"])
            if kind in LEAF_KINDS and not node_field.get("isDeprecated"):
                out[name] = f"[{field_type}]" if is_list else field_type
        return out


class GraphQLClient:
    """POSTs GraphQL over an `ApiClient`; a response with `errors` is an error, even on HTTP 200.

    `renew_auth`, when given, is called once on an `UNAUTHENTICATED` error before the query is
    sent again (for APIs that answer an expired token with HTTP 200).
    """

    def __init__(
        self,
        api: ApiClient,
        url: str = "",
        *,
        source: str,
        renew_auth: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.url = url
        self.source = source
        self.renew_auth = renew_auth
        self._schema: IntrospectedSchema | None = None
        self._schema_lock = threading.Lock()

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        page: Any = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": query}
        if variables:
            payload["variables"] = dict(variables)
        renewed = False
        while True:
            body, response = self.api.request_json(
                "POST", self.url, json=payload, resource=resource, page=page
            )
            errors = body.get("errors") if isinstance(body, dict) else None
            if errors:
                codes = {(e.get("extensions") or {}).get("code") for e in errors}
                if "UNAUTHENTICATED" in codes and self.renew_auth and not renewed:
                    self.renew_auth()
                    renewed = True
                    continue
                raise self._error(errors, codes, response, body, resource, page)
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise GraphQLQueryError(
                    "the API answered without data",
                    resource=resource,
                    page=page,
                    status=response.status_code,
                    request_id=request_id_of(response, body),
                )
            return data

    @staticmethod
    def _error(
        errors: list[dict[str, Any]],
        codes: set[Any],
        response: Any,
        body: Any,
        resource: str | None,
        page: Any,
    ) -> GraphQLQueryError | AuthenticationError | PermissionDeniedError:
        first = errors[0]
        path = ".".join(str(p) for p in first.get("path") or [])
        message = str(first.get("message", "unknown error"))
        text = f"{message} (at {path})" if path else message
        if len(errors) > 1:
            text += f" and {len(errors) - 1} more errors"
        request_id = request_id_of(response, body) or (first.get("extensions") or {}).get(
            "request_id"
        )
        facts = {
            "resource": resource,
            "page": page,
            "status": response.status_code,
            "request_id": request_id,
        }
        if "UNAUTHENTICATED" in codes:
            return AuthenticationError(f"the API refused the credentials: {text}", **facts)
        if "FORBIDDEN" in codes:
            return PermissionDeniedError(f"access denied: {text}", **facts)
        code = next((c for c in codes if c), None)
        error = GraphQLQueryError(f"query error{f' {code}' if code else ''}: {text}", **facts)
        error.code = code
        return error

    def schema(self) -> IntrospectedSchema:
        """The live schema, introspected once per run."""
        with self._schema_lock:
            if self._schema is None:
                data = self.execute(INTROSPECTION_QUERY, resource=f"{self.source}.schema")
                self._schema = IntrospectedSchema.from_introspection(data)
            return self._schema


@dataclass
class RelayPage:
    nodes: list[dict[str, Any]]
    total: int | None
    page: int


def relay_query(connection: Connection, selection: str, filters: Mapping[str, Any]) -> str:
    """The paging query of one connection, with `first`, `after` and the filters as variables."""
    names = ["first", "after", *filters]
    declared = ", ".join(f"${n}: {connection.args.get(n, 'String')}" for n in names)
    passed = ", ".join(f"{n}: ${n}" for n in names)
    count = f" {connection.count_field}" if connection.count_field else ""
    return (
        f"query LxpPage({declared}) {{ {connection.name}({passed}) {{ "
        f"edges {{ node {{ {selection} }} }} pageInfo {{ hasNextPage endCursor }}{count} }} }}"
    )


def relay_pages(
    gql: GraphQLClient,
    connection: Connection,
    selection: str,
    *,
    resource: str,
    page_size: int,
    filters: Mapping[str, Any] | None = None,
    max_pages: int | None = None,
    progress: Progress | None = None,
) -> Iterator[RelayPage]:
    """Every page of a relay connection, `first`/`after` with `pageInfo`; a repeated cursor fails."""
    filters = dict(filters or {})
    query = relay_query(connection, selection, filters)
    after: str | None = None
    seen: set[str] = set()
    page = 0
    progress = progress or Progress(resource)
    while True:
        page += 1
        data = gql.execute(
            query, {"first": page_size, "after": after, **filters}, resource=resource, page=page
        )
        conn = data.get(connection.name) or {}
        edges = conn.get("edges") or []
        nodes = [edge["node"] for edge in edges if edge and edge.get("node") is not None]
        total = conn.get(connection.count_field) if connection.count_field else None
        if progress.total is None and total is not None:
            progress.total = int(total)
        progress.add(len(nodes))
        yield RelayPage(nodes, total, page)
        info = conn.get("pageInfo") or {}
        if not info.get("hasNextPage") or (max_pages is not None and page >= max_pages):
            break
        after = info.get("endCursor")
        if not after or after in seen:
            raise GraphQLQueryError(
                f"the API returned the cursor {after!r} twice; paging would loop",
                resource=resource,
                page=page,
                hint="Report it to the vendor; lower `page_size` may avoid it",
            )
        seen.add(after)
    progress.done()
