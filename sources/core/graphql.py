"""GraphQL over the shared HTTP client: errors, introspection, selection sets, relay paging.

Used by every GraphQL source (PlusPlus, Pluvo, Pitchly). A selection set is built from the
live schema, so a field the vendor adds tomorrow reaches the warehouse without a code change.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lxp_sync.sources.core.completeness import (
    PageAnomaly,
    ReadLedger,
    check_rows,
    fetch_checked,
)
from lxp_sync.sources.core.errors import (
    AuthenticationError,
    DataMismatchError,
    GraphQLQueryError,
    PermissionDeniedError,
    RequestError,
)
from lxp_sync.sources.core.http import ApiClient, request_id_of
from lxp_sync.sources.core.limits import PageSizes
from lxp_sync.sources.core.names import aliased, response_keys
from lxp_sync.sources.core.paging import Ahead, Progress

log = logging.getLogger("lxp_sync")

INTROSPECTION_QUERY = """
query LxpIntrospection {
  __schema {
    queryType { name }
    types {
      kind name
      fields(includeDeprecated: true) {
        name isDeprecated deprecationReason
        args { name defaultValue type { ...TypeRef } }
        type { ...TypeRef }
      }
      interfaces { name }
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


# Arguments of a connection that page it; any other argument is a filter.
PAGING_ARGS = frozenset({"first", "last", "after", "before"})
# Requests of one connection in flight at once (with dlt's 5 extract workers reading 5
# connections, 15 of the ApiClient's 16 pooled connections).
PAGES_AHEAD = 3
# The variable a nested connection's query names its parent with.
PARENT_VARIABLE = "lxp_parent"


@dataclass(frozen=True)
class Route:
    """How one parent's nested connection is asked for on its own: through `node(id:)`, or the
    parent's root connection filtered to that parent (`events(pk: [412], first: 1)`)."""

    parent_type: str
    key: str  # the parent's field whose value names it (`id`, `pk`)
    argument: str  # the argument that takes it
    argument_type: str  # its GraphQL type, as a variable declares it
    root: str  # `node`, or the root connection's name
    is_list: bool = False  # the argument takes a list of keys

    def open(self, inner: str) -> str:
        """`inner` (the nested connection's field) inside the query that reaches the parent."""
        value = f"${PARENT_VARIABLE}"
        if self.root == "node":
            return f"node({self.argument}: {value}) {{ ... on {self.parent_type} {{ {inner} }} }}"
        return (
            f"{self.root}({self.argument}: {value}, first: 1) {{ edges {{ node {{ {inner} }} }} }}"
        )

    def value(self, parent: Mapping[str, Any]) -> Any:
        """The variable's value for one parent row."""
        return [parent[self.key]] if self.is_list else parent[self.key]

    def locate(self, data: Any, name: str) -> Any:
        """The nested connection's object in an answer's `data` (None where it is missing)."""
        parent = data.get(self.root) if isinstance(data, dict) else None
        if self.root != "node":
            edges = parent.get("edges") if isinstance(parent, dict) else None
            parent = edges[0].get("node") if isinstance(edges, list) and len(edges) == 1 else None
        return parent.get(name) if isinstance(parent, dict) else None


@dataclass(frozen=True)
class Connection:
    """A relay connection found by introspection: a root field, or one inside a node (`route`)."""

    name: str
    node_type: str
    args: dict[str, str]  # argument name -> GraphQL type, as written in a variable declaration
    count_field: str | None  # `totalCount` or `count` when the connection has one
    route: Route | None = None  # inside a node: how one parent's list is read on its own
    parent: str | None = None  # inside a node: the parent's root connection (for messages)
    field_name: str | None = None  # the field's own name where `name` is an alias of it

    @property
    def selected(self) -> str:
        """The field as a query selects it: `name`, or `alias: field`."""
        return aliased(self.name, self.field_name or self.name)

    @property
    def path(self) -> str:
        """`events`, or `events.presenters` for a connection inside a node."""
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass
class IntrospectedSchema:
    """The parts of a live schema a source needs."""

    query_type: str
    types: dict[str, dict[str, Any]]
    _selections: dict[str, str] = field(default_factory=dict)
    _fields: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_introspection(cls, data: Mapping[str, Any]) -> IntrospectedSchema:
        schema = data["__schema"]
        types = {t["name"]: t for t in schema["types"] if t.get("name")}
        return cls(query_type=schema["queryType"]["name"], types=types)

    def fields(self, type_name: str) -> dict[str, dict[str, Any]]:
        """The fields of a type by response key: the field's name, or an alias where names
        would land in one column (`response_keys`); `f["name"]` is the field's own name."""
        cached = self._fields.get(type_name)
        if cached is None:
            raw = self.types.get(type_name, {}).get("fields") or []
            keys = response_keys(
                [f["name"] for f in raw],
                [self._column(f) for f in raw],
                # a root connection is a table of its own, named from its field's name
                [f["name"] for f in raw if type_name != self.query_type and self._makes_table(f)],
            )
            if len(set(keys.values())) < len(keys):  # a field would hide another: fail
                raise RuntimeError(f"{type_name}: two fields under one response key: {keys}")
            cached = self._fields[type_name] = {keys[f["name"]]: f for f in raw}
        return cached

    def _column(self, a_field: Mapping[str, Any]) -> str | None:
        """The column a field lands in before naming: `owner__pk` for a nested object; None
        for a deprecated field, which is never selected."""
        if a_field.get("isDeprecated"):
            return None
        kind, type_name, is_list = unwrap(a_field["type"])
        if kind == "OBJECT" and not is_list:
            names = self._field_names(type_name)
            identity = next((name for name in IDENTITY_FIELDS if name in names), None)
            if identity and "edges" not in names:
                return f"{a_field['name']}__{identity}"
        return a_field["name"]

    def _makes_table(self, a_field: Mapping[str, Any]) -> bool:
        """Whether a field's values land in a child table: a list, or a connection."""
        kind, type_name, is_list = unwrap(a_field["type"])
        return is_list or (kind == "OBJECT" and "edges" in self._field_names(type_name))

    def _field_names(self, type_name: str) -> set[str]:
        """A type's own field names, before any alias (`fields` gives them by response key)."""
        return {f["name"] for f in self.types.get(type_name, {}).get("fields") or []}

    def connection_of(self, a_field: Mapping[str, Any]) -> Connection | None:
        """The relay connection (`edges { node }`) a field returns, None for any other field."""
        kind, type_name, is_list = unwrap(a_field["type"])
        if kind != "OBJECT" or is_list:
            return None
        conn_fields = self.fields(type_name)
        if "edges" not in conn_fields:
            return None
        _, edge_type, _ = unwrap(conn_fields["edges"]["type"])
        node = self.fields(edge_type).get("node")
        if node is None:
            return None
        _, node_type, _ = unwrap(node["type"])
        count_field = next((c for c in ("totalCount", "count") if c in conn_fields), None)
        args = {a["name"]: type_ref_str(a["type"]) for a in a_field.get("args") or []}
        return Connection(a_field["name"], node_type, args, count_field)

    def connection_at(self, type_name: str, key: str) -> Connection | None:
        """The connection a field of `type_name` (by response key) returns, named by that key."""
        a_field = self.fields(type_name)[key]
        found = self.connection_of(a_field)
        if found is None or key == a_field["name"]:
            return found
        return replace(found, name=key, field_name=a_field["name"])

    def connections(self) -> dict[str, Connection]:
        """Every root field whose type is a relay connection (`edges { node }`)."""
        found = {}
        for name, root_field in self.fields(self.query_type).items():
            if root_field.get("isDeprecated"):
                continue
            connection = self.connection_at(self.query_type, name)
            if connection is not None:
                found[name] = connection
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
        objects = self.identity_objects(type_name)
        for name, node_field in self.fields(type_name).items():
            if not _selectable(node_field):
                continue
            kind, field_type, _ = unwrap(node_field["type"])
            selected = aliased(name, node_field["name"])
            if kind in LEAF_KINDS:
                parts.append(selected)
            elif name in objects:
                identity = objects[name][0]
                real = self.fields(field_type)[identity]["name"]
                parts.append(f"{selected} {{ {aliased(identity, real)} }}")
        selection = " ".join(parts)
        self._selections[type_name] = selection
        return selection

    def identity_objects(self, type_name: str) -> dict[str, tuple[str, bool]]:
        """Nested objects (alone or in a list) the selection takes as `{ pk }`/`{ id }`: field
        name -> (its identity field, whether it is a list)."""
        out = {}
        for name, node_field in self.fields(type_name).items():
            kind, field_type, is_list = unwrap(node_field["type"])
            if kind != "OBJECT" or not _selectable(node_field):
                continue
            identity = self.identity_field(field_type)
            if identity and "edges" not in self.fields(field_type):
                out[name] = (identity, is_list)
        return out

    def leaf_fields(self, type_name: str) -> dict[str, str]:
        """Non-deprecated scalar/enum fields and their type names (for column hints)."""
        out = {}
        for name, node_field in self.fields(type_name).items():
            kind, field_type, is_list = unwrap(node_field["type"])
            if kind in LEAF_KINDS and not node_field.get("isDeprecated"):
                out[name] = f"[{field_type}]" if is_list else field_type
        return out


def _selectable(node_field: Mapping[str, Any]) -> bool:
    """Whether `IntrospectedSchema.selection` takes a field: not deprecated, no required args."""
    if node_field.get("isDeprecated"):
        return False
    return not any(a["type"]["kind"] == "NON_NULL" for a in node_field.get("args") or [])


@dataclass(frozen=True)
class GraphQLAnswer:
    """An answer without `errors`: its `data` (unchecked), the request id and the HTTP status."""

    data: Any
    request_id: str | None
    status: int


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
        self._page_sizes: PageSizes | None = None
        # requests of one connection in flight at once: the next page's is sent while a page
        # is converted; with offset cursors, the ones after it too (`relay_pages`)
        self.pages_ahead = PAGES_AHEAD

    def page_sizes(self, size: int) -> PageSizes:
        """The page sizes of this source's connections (`size`: where they start), one a run."""
        with self._schema_lock:
            if self._page_sizes is None:
                self._page_sizes = PageSizes(size)
            return self._page_sizes

    def request(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        page: Any = None,
    ) -> GraphQLAnswer:
        """Send a query; an answer with `errors` raises, `data` comes back as the API sent it."""
        payload = _payload(query, variables)
        body, response = self.api.request_json(
            "POST", self.url, json=payload, resource=resource, page=page
        )
        return self._answer(body, response, payload, resource, page)

    def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        page: Any = None,
    ) -> Callable[[], GraphQLAnswer]:
        """Send a query now; its answer is decoded (and its `errors` raised) when the function
        returned is called, so that a page asked for ahead waits as its bytes, a few times
        smaller than its rows. A body that is not JSON is a `PageAnomaly` then (asked for again)."""
        payload = _payload(query, variables)
        content, response = self.api.request_json(
            "POST", self.url, json=payload, resource=resource, page=page, decoded=False
        )

        def answer() -> GraphQLAnswer:
            try:
                body = self.api.decode(content)
            except ValueError:  # orjson's and json's decode errors both are
                raise PageAnomaly(
                    f"the answer from {self.api.where(self.url)} is not JSON",
                    request_id=request_id_of(response),
                    status=response.status_code,
                ) from None
            return self._answer(body, response, payload, resource, page)

        return answer

    def _answer(
        self,
        body: Any,
        response: Any,
        payload: dict[str, Any],
        resource: str | None,
        page: Any,
    ) -> GraphQLAnswer:
        """The answer in `body`; an `UNAUTHENTICATED` error renews the credentials (`renew_auth`)
        and sends the query once more."""
        renewed = False
        while True:
            errors = body.get("errors") if isinstance(body, dict) else None
            if errors:
                codes = {(e.get("extensions") or {}).get("code") for e in errors}
                if "UNAUTHENTICATED" in codes and self.renew_auth and not renewed:
                    self.renew_auth()
                    renewed = True
                    body, response = self.api.request_json(
                        "POST", self.url, json=payload, resource=resource, page=page
                    )
                    continue
                raise self._error(errors, codes, response, body, resource, page)
            data = body.get("data") if isinstance(body, dict) else None
            return GraphQLAnswer(data, request_id_of(response, body), response.status_code)

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        resource: str | None = None,
        page: Any = None,
    ) -> dict[str, Any]:
        """The `data` object of a query's answer (an answer without one is an error)."""
        answer = self.request(query, variables, resource=resource, page=page)
        if not isinstance(answer.data, dict):
            raise GraphQLQueryError(
                "the API answered without data",
                resource=resource,
                page=page,
                status=answer.status,
                request_id=answer.request_id,
            )
        return answer.data

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


def _payload(query: str, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = dict(variables)
    return payload


class PageTurn:
    """Pages decoded one at a time in the process, whatever the number of reads at once.

    A decoded page is its rows as Python objects, several times its bytes (a Pitchly page of 1,000
    records is 1.4 MB of JSON and 15-20 MB of objects); with every resource of a run holding one,
    Python's allocator spread them over arenas that the objects still alive at the end keep,
    and a run at 1M rows kept 30-40 MB more than one at 10k. Reads wait for their answers at
    the same time; only decoding, checking and converting a page (`relay_pages`' `convert`) take
    turns, and those hold one core's lock (the GIL) anyway. What a reader does with the rows it
    was handed (nested lists read, rows gathered into Arrow) comes after its turn. A thread that
    holds the turn may take it again (a nested read while converting).
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()
        self._held = threading.local()

    def take(self) -> None:
        depth = getattr(self._held, "depth", 0)
        if not depth:
            self._turn.acquire()
        self._held.depth = depth + 1

    def give_back(self) -> None:
        self._held.depth -= 1
        if not self._held.depth:
            self._turn.release()


PAGE_TURN = PageTurn()


@dataclass
class RelayPage:
    # the rows not yielded before (see `completeness`), or what `convert` made of them
    nodes: Any
    total: int | None
    page: int


def relay_query(connection: Connection, selection: str, filters: Mapping[str, Any]) -> str:
    """The paging query of one connection, with `first`, `after` and the filters as variables
    (and, inside a node, the parent's key, reached by the connection's route)."""
    names = ["first", "after", *filters]
    declared = [f"${n}: {connection.args.get(n, 'String')}" for n in names]
    passed = ", ".join(f"{n}: ${n}" for n in names)
    count = f" {connection.count_field}" if connection.count_field else ""
    inner = (
        f"{connection.selected}({passed}) {{ "
        f"edges {{ node {{ {selection} }} }} pageInfo {{ hasNextPage endCursor }}{count} }}"
    )
    if connection.route is not None:
        declared.append(f"${PARENT_VARIABLE}: {connection.route.argument_type}")
        inner = connection.route.open(inner)
    return f"query LxpPage({', '.join(declared)}) {{ {inner} }}"


def nested_field(connection: Connection, selection: str) -> str:
    """A connection inside a node as the parent's query selects it: its first page, as large as
    the parent's (`$first`), with what tells whether it has more."""
    count = f" {connection.count_field}" if connection.count_field else ""
    return (
        f"{connection.selected}(first: $first) {{ edges {{ node {{ {selection} }} }} "
        f"pageInfo {{ hasNextPage endCursor }}{count} }}"
    )


@dataclass
class _Received:
    """One relay page as checked: nodes, the count it reported, where the next one starts."""

    nodes: list[dict[str, Any]]
    total: int | None
    has_next: bool
    end_cursor: str | None


@dataclass
class _Pass:
    """What the current pass has seen, for the checks that need more than one page."""

    size: int  # rows a full page holds (`first`, or a server's silent cap found on page 1)
    settled: bool = False  # the size is known (after the read's first page)
    cursors: set[str] = field(default_factory=set)
    received: int = 0
    totals: dict[int, None] = field(default_factory=dict)  # the counts reported, in order


def relay_pages(
    gql: GraphQLClient,
    connection: Connection,
    selection: str,
    *,
    resource: str,
    key: str,
    page_size: int,
    filters: Mapping[str, Any] | None = None,
    max_pages: int | None = None,
    progress: Progress | None = None,
    keep_repeat: Callable[[dict[str, Any]], bool] | None = None,
    parent: Mapping[str, Any] | None = None,
    read_ahead: bool = True,
    convert: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> Iterator[RelayPage]:
    """Every row of a relay connection once, `first`/`after`, checked page by page and against
    the connection's count where it has one (see `completeness`); read again from the start
    when the list moved during a pass.
    `parent`: the parent row of a connection inside a node (read through its route).
    `read_ahead` False: no page is asked for before its turn (a read among others at once,
    `slices`, which keeps as few pages in memory as it can).
    `convert`: what a page's rows become before they are handed on (an Arrow table), made in
    the page's turn (`PageTurn`), so that the rows die before the next page is decoded.

    A page size the API refuses is lowered to the limit the refusal names (`limits`) and the
    page asked for again; the size is remembered for the run."""
    filters = dict(filters or {})
    query = relay_query(connection, selection, filters)
    if connection.route is not None:
        if parent is None:
            raise ValueError(f"{connection.path}: a connection inside a node needs its parent")
        filters[PARENT_VARIABLE] = connection.route.value(parent)
    ledger = ReadLedger(resource, key, keep_repeat=keep_repeat)
    progress = progress or Progress(resource)
    sizes = gql.page_sizes(page_size)
    label = f"{gql.source}.{connection.path}"
    size, settled, why = min(page_size, sizes.size(label)), False, None

    def send(ask: tuple[str | None, int], page: int) -> Callable[[], GraphQLAnswer]:
        after, first = ask
        variables = {"first": first, "after": after, **filters}
        return gql.post(query, variables, resource=resource, page=page)

    ahead = Ahead(send, gql.pages_ahead)

    def fetch(state: _Pass, after: str | None, page: int) -> _Received:
        """The page checked, its turn taken (`PAGE_TURN`): given back once it is handed on."""

        def check(answer: Callable[[], GraphQLAnswer]) -> _Received:
            PAGE_TURN.take()
            try:
                return _check_relay_page(answer(), connection, key, state, resource)
            except BaseException:
                PAGE_TURN.give_back()
                raise

        sent = ahead.take(page, (after, state.size)) if page > 1 else None
        while True:
            ask = (after, state.size)
            try:
                return fetch_checked(
                    gql.api,
                    lambda ask=ask: check(send(ask, page)),
                    first=sent and (lambda sent=sent: check(sent())),
                    resource=resource,
                    page=page,
                )
            except (GraphQLQueryError, RequestError) as error:
                lowered = sizes.lower(label, state.size, error.message, "first")
                if lowered is None:
                    raise
                state.size, sent = lowered, None

    try:
        while True:
            ledger.new_pass(why)
            progress.passes = ledger.passes
            state = _Pass(size, settled)
            after: str | None = None
            page = 0
            ahead.drop()
            while True:
                page += 1
                got = fetch(state, after, page)
                try:
                    state.settled = True
                    state.received += len(got.nodes)
                    if got.total is not None:
                        state.totals.setdefault(got.total)
                        if progress.total is None:
                            progress.total = got.total
                    last = max_pages is not None and page >= max_pages
                    if got.has_next and not last and read_ahead:
                        _ask_ahead(ahead, page, got, state, max_pages)
                    rows, _ = ledger.take(got.nodes)
                    progress.add(len(got.nodes))
                    handed = convert(rows) if convert is not None else rows
                    has_next, end_cursor, total = got.has_next, got.end_cursor, got.total
                    del got, rows
                finally:
                    PAGE_TURN.give_back()
                yield RelayPage(handed, total, page)
                del handed
                if not has_next or last:
                    break
                after = end_cursor
            size, settled = state.size, state.settled
            if max_pages is not None and page >= max_pages:
                break
            why = _pass_problem(connection, ledger, state, resource)
            if why is None:
                break
    finally:
        ahead.close()
    progress.done()


# graphene's cursors: base64 of the row's offset in the list (`arrayconnection:41`)
OFFSET_CURSOR = "arrayconnection:"


def offset_cursor(offset: int) -> str:
    return base64.b64encode(f"{OFFSET_CURSOR}{offset}".encode()).decode()


def cursor_offset(cursor: str | None) -> int | None:
    """The offset an offset cursor stands for; None for any other cursor (a key, a time)."""
    try:
        text = base64.b64decode(cursor or "", validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return None
    digits = text.removeprefix(OFFSET_CURSOR)
    if digits == text or not digits.isascii() or not digits.isdigit():
        return None
    offset = int(digits)
    return offset if offset_cursor(offset) == cursor else None


def _ask_ahead(
    ahead: Ahead[Callable[[], GraphQLAnswer]],
    page: int,
    got: _Received,
    state: _Pass,
    max_pages: int | None,
) -> None:
    """Request the pages after `page` while it is converted: the next one with the cursor it
    gave; with offset cursors that count this pass's rows, the ones after that too (as many as
    the count leaves), each with the offset its page starts after."""
    ahead.send(page + 1, (got.end_cursor, state.size))
    end = cursor_offset(got.end_cursor)
    if end is None or end + 1 != state.received:
        return
    for more in range(1, ahead.workers):
        if got.total is not None and got.total - state.received <= more * state.size:
            break
        if max_pages is not None and page + 1 + more > max_pages:
            break
        ahead.send(page + 1 + more, (offset_cursor(end + more * state.size), state.size))


def _check_relay_page(
    answer: GraphQLAnswer, connection: Connection, key: str, state: _Pass, resource: str
) -> _Received:
    """One page if it can be right, else `PageAnomaly` (`fetch_checked` fetches it again)."""
    facts = {"request_id": answer.request_id, "status": answer.status}
    name = connection.name
    if connection.route is not None:
        conn = connection.route.locate(answer.data, name)
    else:
        conn = answer.data.get(name) if isinstance(answer.data, dict) else None
    if not isinstance(conn, dict):
        what = "no data" if not isinstance(answer.data, dict) else f"data without `{name}`"
        raise PageAnomaly(f"the API answered with {what}", **facts)
    edges = conn.get("edges")
    if not isinstance(edges, list):
        raise PageAnomaly(f"`{name}` has no `edges`", **facts)
    if any(not isinstance(edge, dict) for edge in edges):
        raise PageAnomaly("the page has a null edge", **facts)
    nodes = [edge.get("node") for edge in edges]
    check_rows(nodes, key, "node", **facts)
    info = conn.get("pageInfo")
    if not isinstance(info, dict) or not isinstance(info.get("hasNextPage"), bool):
        raise PageAnomaly(f"`{name}` has no `pageInfo {{ hasNextPage }}`", **facts)
    has_next, end_cursor = info["hasNextPage"], info.get("endCursor")
    total: int | None = None
    if connection.count_field:
        total = conn.get(connection.count_field)
        if not isinstance(total, int):
            raise PageAnomaly(f"`{name}` has no `{connection.count_field}`", **facts)
    if has_next:
        if not end_cursor:
            raise PageAnomaly("hasNextPage is true but there is no endCursor", **facts)
        if end_cursor in state.cursors:
            raise PageAnomaly(f"the cursor {end_cursor!r} came back twice", **facts)
        if len(nodes) < state.size:
            if nodes and not state.settled:
                # a silent server cap: page by what the server serves
                log.info(
                    "%s: the API serves %d rows a page where %d were asked for; paging by %d",
                    resource,
                    len(nodes),
                    state.size,
                    len(nodes),
                )
                state.size = len(nodes)
            else:
                raise PageAnomaly(
                    f"a short page: received {len(nodes)} rows where {state.size} were expected "
                    "(hasNextPage true)",
                    **facts,
                )
        state.cursors.add(end_cursor)
    elif total is not None and set(state.totals) <= {total}:
        received = state.received + len(nodes)
        if received < total:
            raise PageAnomaly(
                f"hasNextPage is false after {received} rows where "
                f"{connection.count_field} is {total}",
                **facts,
            )
    return _Received(nodes, total, has_next, end_cursor)


def _pass_problem(
    connection: Connection, ledger: ReadLedger, state: _Pass, resource: str
) -> str | None:
    """Why the pass just read may have missed a row (None: it read every row)."""
    distinct = ledger.distinct_in_pass
    if connection.count_field is None:
        repeats = state.received - distinct
        return f"{repeats} rows read twice" if repeats else None
    totals = list(state.totals)
    if len(totals) > 1:
        return f"{connection.count_field} moved from {totals[0]} to {totals[-1]}"
    total = totals[0]
    if distinct > total:
        raise DataMismatchError(
            f"received {distinct} distinct rows but {connection.count_field} is {total}",
            resource=resource,
        )
    if distinct < total:
        return f"{distinct} distinct rows of {total}: {state.received - distinct} read twice"
    return None
