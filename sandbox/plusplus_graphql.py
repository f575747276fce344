"""The sandbox's PlusPlus GraphQL API (graphene-django style), executed by graphql-core.

Endpoint: `POST /plusplus_graphql/graphql/` (also without the trailing slash), JSON body
`{"query", "variables", "operationName"}`, header `Authorization: Token sandbox-graphql-token`.

- Auth failure: HTTP 401 `{"detail": "Invalid token."}`. A body that is not JSON: HTTP 400
  `{"errors": [{"message": "POST body sent invalid JSON."}]}`; no query: 400 as well.
- Query errors (syntax, unknown field, missing `first`/`last`, `first` or `last` > 300, bad
  variables): HTTP 200 `{"errors": [{"message", "locations", "path"}], "data": null}`.
- Root relay connections: events, users, event_types, locations, enrollments, assignments,
  tracks, tags, badges. Each takes `first`/`last` (one is mandatory, at most 300), `after`/`before`
  (graphene's opaque cursors: base64 of `arrayconnection:<offset in the filtered list>`; a cursor
  that does not decode is ignored, as graphene does), `is_deleted: Boolean`, `pk: [Int]` and
  per-connection list filters that OR (events: `presenter_id`, `event_type_id`, `location_id`;
  enrollments: `user_id`, `event_id`; assignments: `user_id`, `content_item_id`; users: `email`).
  events, users and enrollments also take `modified_gte: DateTime` (inclusive) and list rows by
  ascending `(modified, pk)`; the others have `created`/`modified` fields but no such filter, and
  list rows by `pk`. Connections return `totalCount`, `pageInfo { hasNextPage hasPreviousPage
  startCursor endCursor }` and `edges { cursor node }`; unfiltered lists include deleted rows.
- Node types (`UserType`, `EventType`, `EventTypeType`, `LocationType`, `EnrollmentType`,
  `AssignmentType`, `ContentItemType` (nested only), `TrackType`, `TagType`, `BadgeType`)
  implement `Node`; each has `pk: Int!`, `id: ID!` (relay global id, base64 of `<Type>:<pk>`),
  `created` and `modified` (DateTime: ISO-8601 with an offset, in several offsets, as graphene
  writes them), `is_deleted: Boolean!`; `BadgeType` has no `modified`, so that its soft deletes
  and updates move no cursor a client can see. Deprecated fields: `EventType.duration`, `UserType.username`.
  Free-form: `EventType.custom_fields` (`GenericScalar`) and `EventType.registration_form`
  (`JSONString`, graphene's JSON text: an object, a list, a lone string, or null). Signed
  image URLs (`cover_url`, `avatar_url`): `https://cdn.example.com/<entity>/<pk>/cover.png?
  Expires=<unix ts 7-8 days ahead, constant for a UTC day>&Signature=<hmac>`.
- The request log (`request.scope["sandbox_log"]`) gets `root_fields` (field names, not aliases,
  in query order), `args` (root field name -> its coerced arguments, datetimes as ISO text) and
  `executor`: "compiled" (plain selections, see `plusplus_graphql_schema`) or "graphql-core".

`truth(entity)` (entity = a root connection name) returns every row of the connection in its
unfiltered order, each with EVERY field of the node type (deprecated fields and, while schema
drift is on, `capacity_note` included) exactly as the API serializes it; a nested object is
reduced to `{"pk": <pk>}` (null when the object is null or its row was hard-deleted), a list of
objects to a list of `{"pk": <pk>}` (null items for hard-deleted rows). Signed URLs equal the
API's within the same UTC day.

Sizes, as shares of `config.rows`: enrollments 34%, events 28%, assignments 14%, users 12%,
tracks 4%, event_types 3%, tags 3%, locations 2%, badges 2% (content items 2%); about 5% of rows are
soft-deleted. An entity's rows are generated on first use (1M rows: ~25 s of CPU in all).

`mutate(spec)`: `{"entity", "insert": n, "update": n | [pks], "delete": n | [pks],
"hard_delete": [pks]}`; an int picks that many live rows at random (seeded). Updates change a
visible value; updates and soft deletes (`is_deleted` true) bump `modified` to now. Returns
`{"inserted": [pks], "updated": [...], "deleted": [...], "hard_deleted": [...]}`.

Variants, switched by `configure` (`/_sandbox/config` with `"api": "plusplus_graphql"`), for
what the vendor's help pages show and the document does not (defaults: as described above):

- `strict_url: true`: 404 (Django's page) on `/graphql/`; only `/graphql` is routed, as on a
  server with `path("graphql", ...)`.
- `page_limit: n` (default 300) with `page_size_mode`: "error" (default; graphene-django's
  message with n) or "cap" (more than n asked, n served, `hasNextPage` true).
- `nested_connections: true`: a list of objects inside a node (`EventType.presenters`) is a
  `UserTypeConnection!` with `first`/`last`/`after`/`before`, its own paging, the same limit and
  `first`/`last` mandatory (graphene-django's many-to-many field). `long_lists: [n, ...]` gives
  the first events (by pk) n presenters each (the first users by pk), bumping nothing; the answer
  says which (`{"long_lists": {"<event pk>": n}}`). Truth keeps the `[{"pk"}]` list form.
- `filter_names: {"modified_gte": "modified_after"}` serves an argument under another name;
  `vendor_filters: true` adds `starts_at_after: DateTime` (inclusive) and `name: String`
  (case-insensitive contains) to events.
- `created_only: true` adds the `comments` connection (`CommentType`: `created` but no
  `modified`); its updates and soft deletes change no timestamp.

`configure({"schema_drift": true})` adds `capacity_note: String` (nullable, some values null) to
`EventType`, for every row; `false` removes it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lxp_sync_sandbox.base import Api, serving_odd_timestamps
from lxp_sync_sandbox.plusplus_graphql_data import ENTITIES, Store, url_expiry
from lxp_sync_sandbox.plusplus_graphql_schema import (
    Selection,
    Variant,
    build_schema,
    compile_connection,
    compile_node,
    paginate,
    truth_selection,
)

API_TOKEN = "sandbox-graphql-token"
CACHE_SIZE = 256
NOT_FOUND_PAGE = (
    '<!doctype html><html lang="en"><head><title>Not Found</title></head><body>'
    "<h1>Not Found</h1><p>The requested resource was not found on this server.</p></body></html>"
)


class _Unsupported(Exception):
    """The query needs graphql-core's executor (fragments, directives, introspection, ...)."""


@dataclass
class _Prepared:
    """A parsed and validated query text, and its compiled plans per operation name."""

    document: DocumentNode | None
    errors: list[GraphQLError]
    plans: dict[str | None, list | None] = field(default_factory=dict)


def _plain(selection_set: SelectionSetNode | None, root: bool = False) -> Selection | None:
    """The selection as (key, field, sub-selection); _Unsupported unless fields and aliases only.

    Only root fields (the connections) may have arguments.
    """
    if selection_set is None:
        return None
    out: Selection = []
    seen = set()
    for node in selection_set.selections:
        if not isinstance(node, FieldNode) or node.directives or (node.arguments and not root):
            raise _Unsupported
        key = node.alias.value if node.alias else node.name.value
        if key in seen:  # graphql merges same-key fields; leave that to graphql-core
            raise _Unsupported
        seen.add(key)
        out.append((key, node.name.value, _plain(node.selection_set)))
    return out


def _loggable(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in args.items()}


def _errors_body(errors: list[GraphQLError]) -> bytes:
    return orjson.dumps({"errors": [e.formatted for e in errors], "data": None})


class PlusPlusGraphqlApi(Api):
    name = "plusplus_graphql"

    def __init__(self, rows: int, seed: int) -> None:
        self.store = Store(rows=rows, seed=seed)
        self.variant = Variant()
        self.strict_url = False
        self.schema: GraphQLSchema = build_schema(self.store, self.variant)
        self._prepared: OrderedDict[str, _Prepared] = OrderedDict()
        self._responses: OrderedDict[tuple, bytes] = OrderedDict()

    # -- Api interface

    def routes(self) -> list[Any]:
        return [
            Route("/graphql/", serving_odd_timestamps(self, self.endpoint), methods=["POST"]),
            Route("/graphql", serving_odd_timestamps(self, self.endpoint), methods=["POST"]),
        ]

    def describe(self, base_url: str) -> dict[str, Any]:
        return {"base_url": f"{base_url}/{self.name}/graphql/", "api_token": API_TOKEN}

    def truth(self, entity: str) -> list[dict[str, Any]]:
        spec = ENTITIES[entity]
        if not spec.root or not self.variant.shows(spec):
            raise KeyError(entity)
        project = compile_node(self.store, entity, truth_selection(entity, self.variant.drift))
        return [project(row) for row in self.store.table(entity).ordered()]

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        result = self.store.mutate(spec)
        self._responses.clear()
        return result

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        spec = dict(spec)
        result: dict[str, Any] = {}
        variant = self.variant
        if "schema_drift" in spec:
            variant.drift = result["schema_drift"] = bool(spec.pop("schema_drift"))
            result["fields"] = {"EventType": ["capacity_note"]} if variant.drift else {}
        if "page_limit" in spec:
            variant.page_limit = result["page_limit"] = max(1, int(spec.pop("page_limit")))
        if "page_size_mode" in spec:
            mode = spec.pop("page_size_mode")
            if mode not in ("cap", "error"):
                raise ValueError(f"{self.name}: page_size_mode must be 'cap' or 'error'")
            variant.page_size_mode = result["page_size_mode"] = mode
        for switch in ("nested_connections", "vendor_filters", "created_only"):
            if switch in spec:
                setattr(variant, switch, bool(spec.pop(switch)))
                result[switch] = getattr(variant, switch)
        if "filter_names" in spec:
            variant.filter_names = result["filter_names"] = dict(spec.pop("filter_names") or {})
        if "long_lists" in spec:
            result["long_lists"] = self._long_lists([int(n) for n in spec.pop("long_lists")])
        if "strict_url" in spec:
            self.strict_url = result["strict_url"] = bool(spec.pop("strict_url"))
        super().configure(spec)
        self.schema = build_schema(self.store, variant)
        self._prepared.clear()
        self._responses.clear()
        return result

    def _long_lists(self, counts: list[int]) -> dict[str, int]:
        """The first events (by pk) get that many presenters (the first users by pk), as if they
        always had them: nothing is bumped. Returns event pk -> presenters."""
        events = self.store.table("events")
        users = self.store.table("users").ordered()
        users = sorted(users, key=lambda row: row["pk"])
        done = {}
        for pk, count in zip(sorted(events.by_pk), counts, strict=False):
            events.by_pk[pk]["presenters"] = [row["pk"] for row in users[:count]]
            done[str(pk)] = len(events.by_pk[pk]["presenters"])
        events.changed()
        return done

    # -- HTTP

    async def endpoint(self, request: Request) -> Response:
        if self.strict_url and request.url.path.endswith("/"):
            # Django without APPEND_SLASH rescue: the other spelling of the path is not routed
            return Response(NOT_FOUND_PAGE, 404, media_type="text/html")
        if request.headers.get("authorization", "").strip() != f"Token {API_TOKEN}":
            return self._json({"detail": "Invalid token."}, 401, {"WWW-Authenticate": "Token"})
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return self._json({"errors": [{"message": "POST body sent invalid JSON."}]}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self._json({"errors": [{"message": "Must provide query string."}]}, 400)
        variables = body.get("variables") or {}
        if isinstance(variables, str):  # some clients send variables as a JSON string
            try:
                variables = orjson.loads(variables) if variables.strip() else {}
            except orjson.JSONDecodeError:
                return self._json({"errors": [{"message": "Variables are invalid JSON."}]}, 400)
        if not isinstance(variables, dict):
            return self._json({"errors": [{"message": "Variables are invalid JSON."}]}, 400)
        log = request.scope.get("sandbox_log")
        content = self.execute(body["query"], variables, body.get("operationName"), log)
        return Response(content, 200, {"Vary": "Accept"}, media_type="application/json")

    @staticmethod
    def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
        return Response(orjson.dumps(body), status, headers, media_type="application/json")

    # -- execution

    def execute(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None = None,
        log: dict[str, Any] | None = None,
        fast: bool = True,
    ) -> bytes:
        """The response body for one GraphQL request.

        A compiled plan answers when `fast` and the query allows it, else graphql-core; `log`
        gets `root_fields`, `args` and `executor` ("compiled" or "graphql-core").
        """
        log = {} if log is None else log
        prepared = self._prepare(query)
        if prepared.errors:
            log["executor"] = "graphql-core"
            return _errors_body(prepared.errors)
        assert prepared.document is not None
        operation = get_operation_ast(prepared.document, operation_name)
        coerced = None
        if operation is not None:
            coerced = get_variable_values(
                self.schema, operation.variable_definitions or (), variables
            )
            coerced = None if isinstance(coerced, list) else coerced
            self._log(operation, coerced, log)
        if (
            fast
            and operation is not None
            and coerced is not None
            and not self.variant.nested_connections
        ):
            body = self._execute_plan(prepared, operation, operation_name, coerced)
            if body is not None:
                log["executor"] = "compiled"
                return body
        log["executor"] = "graphql-core"
        key = (query, orjson.dumps(variables), operation_name, url_expiry())
        cached = self._responses.get(key)
        if cached is None:
            result = execute_sync(
                self.schema,
                prepared.document,
                variable_values=variables,
                operation_name=operation_name,
            )
            cached = (
                _errors_body(result.errors)
                if result.errors
                else orjson.dumps({"data": result.data})
            )
            self._responses[key] = cached
            if len(self._responses) > 64:
                self._responses.popitem(last=False)
        return cached

    def _prepare(self, query: str) -> _Prepared:
        prepared = self._prepared.get(query)
        if prepared is not None:
            self._prepared.move_to_end(query)
            return prepared
        try:
            document = parse(query)
        except GraphQLError as error:
            prepared = _Prepared(None, [error])
        else:
            prepared = _Prepared(document, validate(self.schema, document))
        self._prepared[query] = prepared
        if len(self._prepared) > CACHE_SIZE:
            self._prepared.popitem(last=False)
        return prepared

    def _log(self, operation: OperationDefinitionNode, coerced: Any, log: dict[str, Any]) -> None:
        query_fields = self.schema.query_type.fields if self.schema.query_type else {}
        roots, args = [], {}
        for node in operation.selection_set.selections:
            if not isinstance(node, FieldNode):
                continue
            name = node.name.value
            roots.append(name)
            if name in query_fields and coerced is not None:
                try:
                    args[name] = _loggable(get_argument_values(query_fields[name], node, coerced))
                except GraphQLError:
                    args[name] = None
        log["root_fields"] = roots
        log["args"] = args

    def _plan(self, operation: OperationDefinitionNode) -> list | None:
        """[(response key, root field, field node, connection projector)], or None if unsupported."""
        if operation.operation != OperationType.QUERY or operation.directives:
            return None
        try:
            selection = _plain(operation.selection_set, root=True) or []
        except _Unsupported:
            return None
        plan = []
        for (key, name, sub), node in zip(
            selection, operation.selection_set.selections, strict=True
        ):
            if name == "__typename":
                plan.append((key, name, node, None))
                continue
            spec = ENTITIES.get(name)
            if spec is None or not spec.root or sub is None:
                return None
            plan.append((key, name, node, compile_connection(self.store, name, sub)))
        return plan

    def _execute_plan(
        self,
        prepared: _Prepared,
        operation: OperationDefinitionNode,
        operation_name: str | None,
        coerced: Any,
    ) -> bytes | None:
        if operation_name not in prepared.plans:
            prepared.plans[operation_name] = self._plan(operation)
        plan = prepared.plans[operation_name]
        if plan is None:
            return None
        query_fields = self.schema.query_type.fields
        data: dict[str, Any] = {}
        for key, name, node, project in plan:
            if project is None:
                data[key] = "Query"
                continue
            try:
                args = get_argument_values(query_fields[name], node, coerced)
                page = paginate(self.store, name, args, self.variant)
            except (GraphQLError, ValueError):
                return None  # graphql-core reports the error, with locations and path
            data[key] = project(page)
        return orjson.dumps({"data": data})


def build(config: Any) -> PlusPlusGraphqlApi:
    return PlusPlusGraphqlApi(rows=config.rows, seed=config.seed)
