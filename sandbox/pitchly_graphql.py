"""The Pitchly sandbox's GraphQL schema and executor (graphql-core, so introspection works).

Every query runs through graphql-core's parser and validator. A query whose only root field is
`recordsConnection` (the bulk of a sync) is then answered by a fast path that renders the
selection straight from cached per-record JSON bytes; everything else, and every error, goes
through graphql-core's executor, whose output the fast path reproduces byte for byte.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from lxp_sync_sandbox.base import dumps
from lxp_sync_sandbox.pitchly_data import Organization, Page, Record, Table
from lxp_sync_sandbox.pitchly_filter import FilterError, compile_filter

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

SDL = '''
"""Any JSON value: a field's `value` object, or a `stringValue` (a string, or a list of them)."""
scalar JSON

type Query {
  """Every workspace the token may read (a sandbox addition: the doc shows no root list)."""
  workspaces: [Workspace!]!
  workspace(id: ID!): Workspace!
  table(id: ID!): Table!
  """Records of a table, in creation order; `filter` follows the doc's filter grammar."""
  recordsConnection(
    tableId: ID!
    filter: JSON
    first: Int
    after: String
    last: Int
    before: String
  ): RecordConnection!
}

type Workspace {
  id: ID!
  name: String!
  organizationId: ID!
  tables: [Table!]!
}

type Table {
  id: ID!
  name: String!
  workspaceId: ID!
  """False until an admin marks the table ready; its records are refused until then."""
  isReady: Boolean!
  fields: [Field!]!
}

type Field {
  id: ID!
  name: String!
  """text, multilineText, number, boolean, dropdown, dropdownMultiple, date, currency,
  attachment, reference, referenceMultiple, lookup, createdAt, updatedAt, formula"""
  type: String!
  tableId: ID!
  isPrimary: Boolean!
  isReadOnly: Boolean!
  """The choices of a dropdown or dropdown multiple field."""
  options: [String!]
  referenceTableId: ID
  lookupReferenceFieldId: ID
  lookupFieldId: ID
  formula: String
}

type RecordConnection {
  edges: [RecordEdge!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type RecordEdge {
  cursor: String!
  node: Record!
}

type Record {
  id: ID!
  tableId: ID!
  """The record's non-empty fields, in the table's field order."""
  fields: [RecordField!]!
}

type RecordField {
  fieldId: ID!
  value: JSON
  stringValue: JSON
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}
'''

# (parent type, field) -> child object type, for the fast path's selection plans
CHILD_TYPES = {
    ("RecordConnection", "edges"): "RecordEdge",
    ("RecordConnection", "pageInfo"): "PageInfo",
    ("RecordEdge", "node"): "Record",
    ("Record", "fields"): "RecordField",
}
# the key order of the dicts the resolvers return: a plan in this order needs no projection
CANONICAL = {
    "RecordEdge": ("cursor", "node"),
    "Record": ("id", "tableId", "fields"),
    "RecordField": ("fieldId", "value", "stringValue"),
    "PageInfo": ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor"),
}
BAD_BODY = (
    "The POST body must be a JSON object with a 'query' string, optional 'variables' (an object)"
    " and 'operationName' (a string)."
)
UNAUTHENTICATED_MESSAGE = (
    "You must be authenticated to access this resource. "
    "Please provide a valid Bearer Token in the Authorization header."
)


def fail(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


@dataclass
class Caller:
    """Who is asking: an authentication error, or the workspaces the token may read."""

    error: str | None = None
    workspace_ids: frozenset[str] | None = None  # None: every workspace
    kind: str = ""

    def require(self) -> None:
        if self.error is not None:
            raise fail("UNAUTHENTICATED", self.error)

    def allows(self, workspace_id: str) -> bool:
        return self.workspace_ids is None or workspace_id in self.workspace_ids


def encode_cursor(seq: int) -> str:
    return base64.b64encode(f"record:{seq}".encode()).decode()


def encode_offset(offset: int) -> str:
    """A graphene-style cursor (`offset_cursors`): the position in the list, not the record."""
    return base64.b64encode(f"arrayconnection:{offset}".encode()).decode()


def decode_cursor(cursor: str, prefix: str = "record:") -> int:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        if text.startswith(prefix):
            return int(text[len(prefix) :])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise fail("BAD_USER_INPUT", f"Invalid cursor {cursor!r}.")


@dataclass(frozen=True)
class _Plan:
    """A selection on one type: (response key, field name, sub-plan or None)."""

    type_name: str
    entries: tuple[tuple[str, str, _Plan | None], ...]
    identity: bool  # the resolver's dict already has exactly these keys in this order


@dataclass
class _Prepared:
    document: DocumentNode | None
    errors: list[dict[str, Any]]
    plans: dict[str | None, tuple[FieldNode, _Plan] | None]


class _Unsupported(Exception):
    """A selection the fast path leaves to graphql-core."""


class PitchlyGraphQL:
    """Schema, resolvers and the request executor."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.fast_path = True
        self.max_page_size = MAX_PAGE_SIZE
        # graphene-style offset cursors: a record deleted before the cursor shifts later ones
        self.offset_cursors = False
        self.schema: GraphQLSchema = build_schema(SDL)
        root = self.schema.query_type
        assert root is not None
        root.fields["workspaces"].resolve = self._resolve_workspaces
        root.fields["workspace"].resolve = self._resolve_workspace
        root.fields["table"].resolve = self._resolve_table
        root.fields["recordsConnection"].resolve = self._resolve_records
        self._prepared: OrderedDict[str, _Prepared] = OrderedDict()

    # --- resolvers ---------------------------------------------------------------------

    def _workspace_dict(self, ws_id: str) -> dict[str, Any]:
        ws = self.org.workspace(ws_id)
        tables = [self._table_dict(self.org.tables[tid]) for tid in ws.table_ids]
        return {**ws.as_dict(), "tables": tables}

    @staticmethod
    def _table_dict(table: Table) -> dict[str, Any]:
        return {**table.as_dict(), "fields": [f.as_dict() for f in table.fields]}

    def _resolve_workspaces(self, _root: Any, info: Any) -> list[dict[str, Any]]:
        caller: Caller = info.context
        caller.require()
        return [self._workspace_dict(ws.id) for ws in self.org.workspaces if caller.allows(ws.id)]

    def _resolve_workspace(self, _root: Any, info: Any, id: str) -> dict[str, Any]:
        caller: Caller = info.context
        caller.require()
        try:
            self.org.workspace(id)
        except KeyError:
            raise fail("NOT_FOUND", f"Workspace {id!r} not found.") from None
        if not caller.allows(id):
            raise fail("FORBIDDEN", f"This access token has no access to workspace {id!r}.")
        return self._workspace_dict(id)

    def _find_table(self, caller: Caller, table_id: str) -> Table:
        caller.require()
        table = self.org.tables.get(table_id)
        if table is None:
            raise fail("NOT_FOUND", f"Table {table_id!r} not found.")
        if not caller.allows(table.workspace_id):
            raise fail(
                "FORBIDDEN", f"This access token has no access to workspace {table.workspace_id!r}."
            )
        return table

    def _resolve_table(self, _root: Any, info: Any, id: str) -> dict[str, Any]:
        return self._table_dict(self._find_table(info.context, id))

    def records_page(self, caller: Caller, args: dict[str, Any]) -> tuple[Table, Page]:
        """The table and page a `recordsConnection` call asks for (GraphQLError if refused)."""
        table = self._find_table(caller, args["tableId"])
        if not table.ready:
            raise fail(
                "TABLE_NOT_READY",
                f"Table {table.id!r} has not been marked as ready; "
                "apps cannot read its data until an admin does.",
            )
        first, last = args.get("first"), args.get("last")
        for name, size in (("first", first), ("last", last)):
            if size is not None and not 0 <= size <= self.max_page_size:
                raise fail(
                    "BAD_USER_INPUT",
                    f"'{name}' must be between 0 and {self.max_page_size}, got {size}.",
                )
        if first is None and last is None:
            first = DEFAULT_PAGE_SIZE
        rows, seqs = self._matching(table, args.get("filter"))
        after, before = (
            self._position(args.get("after"), seqs),
            self._position(args.get("before"), seqs),
        )
        return table, table.page(rows, seqs, first, after, last, before)

    def _position(self, cursor: str | None, seqs: list[int]) -> int | None:
        """The seq a cursor stands for (with offset cursors: the seq now at that offset)."""
        if cursor is None:
            return None
        if not self.offset_cursors:
            return decode_cursor(cursor)
        offset = decode_cursor(cursor, "arrayconnection:")
        if not seqs or offset < 0:
            return -1
        return seqs[offset] if offset < len(seqs) else seqs[-1] + 1

    def _cursor(self, page: Page, index: int) -> str:
        if self.offset_cursors:
            return encode_offset(page.start + index)
        return encode_cursor(page.records[index].seq)

    def _matching(self, table: Table, spec: Any) -> tuple[list[Record], list[int]]:
        try:
            predicate = compile_filter(spec, table)
        except FilterError as exc:
            raise fail("BAD_USER_INPUT", f"Invalid filter: {exc}") from None
        if predicate is None:
            return table.ordered()
        filter_cache, _ = table.caches()
        key = orjson.dumps([spec, table.org.created_at_filter], option=orjson.OPT_SORT_KEYS)
        hit = filter_cache.get(key)
        if hit is None:
            rows = [rec for rec in table.ordered()[0] if predicate(rec)]
            hit = (rows, [rec.seq for rec in rows])
            if len(filter_cache) >= 16:
                filter_cache.pop(next(iter(filter_cache)))
            filter_cache[key] = hit
        return hit

    def _page_info(self, page: Page) -> dict[str, Any]:
        recs = page.records
        return {
            "hasNextPage": page.has_next,
            "hasPreviousPage": page.has_previous,
            "startCursor": self._cursor(page, 0) if recs else None,
            "endCursor": self._cursor(page, len(recs) - 1) if recs else None,
        }

    def _resolve_records(self, _root: Any, info: Any, **args: Any) -> dict[str, Any]:
        table, page = self.records_page(info.context, args)
        return {
            "edges": [
                {"cursor": self._cursor(page, i), "node": table.node(r)}
                for i, r in enumerate(page.records)
            ],
            "pageInfo": self._page_info(page),
            "totalCount": page.total,
        }

    # --- requests ----------------------------------------------------------------------

    def execute(self, body: Any, caller: Caller, log: dict[str, Any]) -> bytes:
        """Answer one POST body (already JSON-decoded) with the response bytes."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _errors([_error("BAD_REQUEST", BAD_BODY)])
        variables = body.get("variables") or {}
        operation_name = body.get("operationName")
        if not isinstance(variables, dict) or not isinstance(operation_name, str | None):
            return _errors([_error("BAD_REQUEST", BAD_BODY)])
        prepared = self._prepare(body["query"])
        if prepared.errors or prepared.document is None:
            return _errors(prepared.errors)
        operation = get_operation_ast(prepared.document, operation_name)
        coerced: VariableValues | None = None
        if operation is not None:
            definitions = operation.variable_definitions or ()
            found = get_variable_values(self.schema, definitions, variables)
            coerced = found if isinstance(found, VariableValues) else None
            self._log_root_fields(prepared.document, operation, coerced, log)
        if self.fast_path and operation is not None and coerced is not None:
            fast = self._fast(prepared, operation, operation_name, coerced, caller)
            if fast is not None:
                log["executor"] = "compiled"
                return fast
        log["executor"] = "graphql-core"
        result = execute(self.schema, prepared.document, context_value=caller,
                         variable_values=variables, operation_name=operation_name)  # fmt: skip
        assert isinstance(result, ExecutionResult)  # every resolver is synchronous
        errors = [
            _format(e, "INTERNAL_SERVER_ERROR" if e.original_error else "BAD_USER_INPUT")
            for e in result.errors or ()
        ]
        if errors:
            return dumps({"errors": errors, "data": result.data})
        return dumps({"data": result.data})

    def _prepare(self, query: str) -> _Prepared:
        prepared = self._prepared.get(query)
        if prepared is not None:
            self._prepared.move_to_end(query)
            return prepared
        try:
            document = parse(query)
        except GraphQLError as exc:
            prepared = _Prepared(None, [_format(exc, "GRAPHQL_PARSE_FAILED")], {})
        else:
            errors = validate(self.schema, document)
            prepared = _Prepared(
                document, [_format(e, "GRAPHQL_VALIDATION_FAILED") for e in errors], {}
            )
        self._prepared[query] = prepared
        if len(self._prepared) > 256:
            self._prepared.popitem(last=False)
        return prepared

    def _log_root_fields(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        coerced: VariableValues | None,
        log: dict[str, Any],
    ) -> None:
        root = self.schema.query_type
        assert root is not None
        names: list[str] = []
        args: dict[str, Any] = {}
        for node in _root_field_nodes(operation.selection_set, _fragments(document)):
            names.append(node.name.value)
            definition = root.fields.get(node.name.value)
            if definition is None:
                continue
            try:
                args[node.name.value] = get_argument_values(definition, node, coerced)
            except GraphQLError:
                args[node.name.value] = {}
        log["root_fields"] = names
        log["args"] = args

    # --- the fast path -----------------------------------------------------------------

    def _fast(
        self,
        prepared: _Prepared,
        operation: OperationDefinitionNode,
        operation_name: str | None,
        coerced: VariableValues,
        caller: Caller,
    ) -> bytes | None:
        if operation_name not in prepared.plans:
            prepared.plans[operation_name] = _compile_root(operation, prepared.document)
        compiled = prepared.plans[operation_name]
        if compiled is None:
            return None
        node, plan = compiled
        root = self.schema.query_type
        assert root is not None
        try:
            args = get_argument_values(root.fields["recordsConnection"], node, coerced)
            table, page = self.records_page(caller, args)
        except GraphQLError:
            return None  # graphql-core reports errors
        out = [b'{"data":{', orjson.dumps((node.alias or node.name).value), b":"]
        self._render_connection(table, page, plan, out)
        out.append(b"}}")
        return b"".join(out)

    def _render_connection(self, table: Table, page: Page, plan: _Plan, out: list[bytes]) -> None:
        """Append the connection's JSON to `out` (joined once: pages are megabytes)."""
        out.append(b"{")
        for i, (key, name, sub) in enumerate(plan.entries):
            out.append((b"," if i else b"") + orjson.dumps(key) + b":")
            if name == "edges":
                assert sub is not None
                self._render_edges(table, page, sub, out)
            elif name == "pageInfo":
                assert sub is not None
                out.append(orjson.dumps(_project(self._page_info(page), sub)))
            elif name == "totalCount":
                out.append(orjson.dumps(page.total))
            else:
                out.append(b'"RecordConnection"')
        out.append(b"}")

    def _render_edges(self, table: Table, page: Page, plan: _Plan, out: list[bytes]) -> None:
        """The edges as JSON, each serialized once per selection and then served from cache."""
        _, edge_cache = table.caches()
        cache = edge_cache.get(plan)
        if cache is None:
            if len(edge_cache) >= 2:  # a sync uses one selection; keep memory bounded
                edge_cache.pop(next(iter(edge_cache)))
            cache = edge_cache[plan] = {}
        if self.offset_cursors:  # an edge's cursor depends on the page: nothing to cache
            cache = {}
        out.append(b"[")
        for i, rec in enumerate(page.records):
            raw = cache.get(rec.id)
            if raw is None:
                edge = {"cursor": self._cursor(page, i), "node": table.node(rec)}
                raw = cache[rec.id] = dumps(_project(edge, plan))
            if i:
                out.append(b",")
            out.append(raw)
        out.append(b"]")


def _project(obj: dict[str, Any], plan: _Plan) -> Any:
    """`obj` (a resolver's dict) as graphql-core would serialize it under `plan`."""
    if plan.identity:
        return obj
    out: dict[str, Any] = {}
    for key, name, sub in plan.entries:
        if name == "__typename":
            out[key] = plan.type_name
        elif sub is None:
            out[key] = obj[name]
        else:
            value = obj[name]
            out[key] = (
                [_project(v, sub) for v in value]
                if isinstance(value, list)
                else _project(value, sub)
            )
    return out


def _fragments(document: DocumentNode | None) -> dict[str, FragmentDefinitionNode]:
    if document is None:
        return {}
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _root_field_nodes(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> list[FieldNode]:
    nodes: list[FieldNode] = []
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            nodes.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            nodes.extend(_root_field_nodes(sel.selection_set, fragments))
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
            nodes.extend(_root_field_nodes(fragments[sel.name.value].selection_set, fragments))
    return nodes


def _compile_root(
    operation: OperationDefinitionNode, document: DocumentNode | None
) -> tuple[FieldNode, _Plan] | None:
    """The plan for a query whose one root field is `recordsConnection`, else None."""
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    fragments = _fragments(document)
    try:
        fields = _collect(operation.selection_set, "Query", fragments)
        if len(fields) != 1 or fields[0].name.value != "recordsConnection":
            return None
        node = fields[0]
        assert node.selection_set is not None
        return node, _compile(node.selection_set, "RecordConnection", fragments)
    except _Unsupported:
        return None


def _collect(
    selection_set: SelectionSetNode, type_name: str, fragments: dict[str, FragmentDefinitionNode]
) -> list[FieldNode]:
    """The fields of a selection, fragments inlined; _Unsupported for anything fancier."""
    fields: list[FieldNode] = []
    for sel in selection_set.selections:
        if sel.directives:
            raise _Unsupported
        if isinstance(sel, FieldNode):
            fields.append(sel)
            continue
        if isinstance(sel, InlineFragmentNode):
            inner, condition = sel.selection_set, sel.type_condition
        else:
            assert isinstance(sel, FragmentSpreadNode)
            fragment = fragments[sel.name.value]
            inner, condition = fragment.selection_set, fragment.type_condition
        if condition is not None and condition.name.value != type_name:
            raise _Unsupported
        fields.extend(_collect(inner, type_name, fragments))
    keys = [(f.alias or f.name).value for f in fields]
    if len(set(keys)) != len(keys):
        raise _Unsupported  # graphql-core merges repeated keys
    return fields


def _compile(
    selection_set: SelectionSetNode, type_name: str, fragments: dict[str, FragmentDefinitionNode]
) -> _Plan:
    entries = []
    for node in _collect(selection_set, type_name, fragments):
        name = node.name.value
        child = CHILD_TYPES.get((type_name, name))
        sub = None
        if child is not None:
            assert node.selection_set is not None
            sub = _compile(node.selection_set, child, fragments)
        entries.append(((node.alias or node.name).value, name, sub))
    names = tuple(name for _, name, _ in entries)
    identity = (
        names == CANONICAL.get(type_name)
        and all(key == name for key, name, _ in entries)
        and all(sub is None or sub.identity for _, _, sub in entries)
    )
    return _Plan(type_name, tuple(entries), identity)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code}}


def _format(error: GraphQLError, default_code: str) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", default_code)
    formatted["extensions"] = extensions
    return formatted


def _errors(errors: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"errors": errors, "data": None})
