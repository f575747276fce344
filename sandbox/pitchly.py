"""The sandbox's Pitchly API: `POST /pitchly/graphql` and `POST /pitchly/api/oauth/token`.

Follows `seeds/003_0e2904f0b3e0d325.txt`. Where the doc is silent, the sandbox does what
Pitchly plausibly does, as written here.

Auth (`Authorization: Bearer <token>` on `/graphql`), three ways:

- A self-signed HS256 JWT: `iss` = client id, `iat` (required), optional `exp`,
  `workspace_ids` (absent: every workspace; `[]`: none) and `permissions`, signed with the
  client secret. A bad signature, an unknown `iss`, an expired `exp` or a missing `iat` is
  `UNAUTHENTICATED` (60 s of clock leeway). `permissions` is accepted and not enforced: the
  sandbox only reads.
- `grant_type=client_credentials` with `organization_id` -> an install token (`plyi_...`),
  `expires_in` 3600 (`configure({"token_lifetime_s": N})`), no refresh token.
- `grant_type=refresh_token` -> a new user token (`plyu_...`) AND a new refresh token
  (`plyr_...`); the old refresh token dies at once. The first one is `INITIAL_REFRESH_TOKEN`;
  `configure({"reset_refresh_token": true})` makes it the only live one again. (The doc gives
  user tokens the workspaces the app may read AND the user belongs to; the sandbox user belongs
  to every workspace.)
  `grant_type=authorization_code` exists but the sandbox has no authorize page, so every code
  is invalid.

The token endpoint reads the form-encoded body the doc shows (`Content-Type:
application/x-www-form-urlencoded`) and, as a convenience, a JSON body; client credentials
may also come as HTTP Basic. Errors: 401 `invalid_client` for a bad client id or secret, 400
for everything else (`invalid_grant`, `unsupported_grant_type`, `invalid_scope`,
`invalid_request`), each `{"error", "error_description"}`. `scope` and `workspace_ids` (space
delimited) downscope a token; the app is approved for `records:create records:update`.
`configure({"revoke_tokens": true})` forgets every access token issued.

GraphQL always answers HTTP 200; failures are in `errors[].extensions.code`, with `data: null`
when a root field failed: `UNAUTHENTICATED` (no, bad or expired token), `FORBIDDEN` (a
workspace outside the token's `workspace_ids`), `NOT_FOUND` (unknown id), `TABLE_NOT_READY`
(records of a table an admin has not marked ready; the doc names no code), `BAD_USER_INPUT`
(filter, cursor, page size, variables), `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`
(Apollo's codes, which `UNAUTHENTICATED` suggests Pitchly uses). Introspection needs no token.

Queries: `workspaces` (added: the doc has no root field to list workspaces; only those the
token may read), `workspace(id) { tables { id name isReady fields { ... } } }`, `table(id)`,
and `recordsConnection(tableId, filter, first, after, last, before)` ->
`{ edges { cursor node { id tableId fields { fieldId value stringValue } } } pageInfo
{ hasNextPage hasPreviousPage startCursor endCursor } totalCount }`. Records come in creation
order; cursors are opaque and stay valid across inserts and deletes. `first` defaults to 100
and may be 0..1000 (more is `BAD_USER_INPUT`). Not-ready tables are listed with
`isReady: false` and their field definitions; only their records are refused. `filter` is the
doc's grammar, evaluated server-side; the operators per field type (including the sandbox's
choices for dates, Created / Updated At and yes/no) are listed in `sandbox/pitchly_filter.py`.

Field values (`value` / `stringValue`), per the doc's field-type page:

- text, multi-line text, dropdown: `{"val": "Lincoln"}` / `"Lincoln"`
- number: `{"val": 2300}` / `"2,300"`; yes/no: `{"val": true}` / `"Yes"`. Companies' Market Cap
  holds integers past 2**53 and Growth Rate decimals with 18 places (up to 20 digits), written
  as JSON numbers with every digit (more than a double holds)
- dropdown multiple: `{"val": ["Lincoln", "Omaha"]}` / `["Lincoln", "Omaha"]`
- currency: `{"val": 23045, "currency": "USD"}` / `"$23,045"` (decimals: `"$1,234.50"`)
- attachment: `{"val": url, "type": mime, "size": bytes}` / url
- reference: `{"val": "wks... rec..."}` / the referenced record's primary field: the workspace
  id, a space and the record id, as the field-type page's sample shows it, while record ids
  everywhere else (nodes, filters) are `wks...|rec...`. `configure({"reference_form": "pipe"})`
  serves `{"val": "wks...|rec..."}` instead ("space" is the default). Filters on a reference
  take record ids (`wks...|rec...`) in either form.
- reference multiple (doc blank): `{"val": [ids]}` (each in the reference form) / `[primary
  values]`
- date (doc: "MM/DD/YYYY", sample blank): `{"val": "2024-03-15T00:00:00.000Z"}` / `"03/15/2024"`
- created at, updated at (samples blank): `{"val": "2025-06-01T12:34:56.789Z"}` (always UTC
  with milliseconds, as a MongoDB app writes dates, not in several offsets) /
  `"06/01/2025 12:34 PM"` (UTC)
- lookup (blank): the looked-up field's value and stringValue, unchanged
- formula (blank): `{"val": 2304.5}` / `"2,304.5"`, or `{"val": "text"}` / `"text"`

A record's `fields` lists only the fields that have a value, in the table's field order; a
cleared text field is `{"val": ""}` / `""`, a cleared dropdown multiple `{"val": []}` / `[]`.

Data: organization `org_sandbox` with workspaces Sales (Companies, Deals, Pipeline Draft - not
ready), Legal (Clients, Matters - no Updated At field) and Archive (Employees, Legacy Import -
not ready); field names that collide once normalised ("Deal Size" / "deal_size",
"Amount ($)" / "Amount") and unicode names ("Größe", "客户"). `config.rows` records in all,
split by fixed shares; generated from `config.seed` on a table's first use. Generated values
of a field come from a pool of at most 4096 (so values repeat in large tables); ids, Created
At and Updated At are per record.

Sandbox endpoints:

- `truth(entity)`: `workspaces`, `tables`, `fields` (every table), `fields:<tableId>`, and
  `records:<tableId>`: every record exactly as `recordsConnection` serializes a node
  (`{"id", "tableId", "fields": [{"fieldId", "value", "stringValue"}]}`), in creation order.
- `mutate(spec)`:
  `{"entity": "records:<tableId>", "insert": n, "update": n | [ids], "delete": n | [ids]}`:
  an update changes one plain value (never a primary field nor one a lookup reads) and moves
  the record's Updated At to now; deleting a record removes references to it, which is an
  update of the referencing records. Returns `{"inserted", "updated", "deleted",
  "cascaded"}` (record ids).
  `{"entity": "fields:<tableId>", "add": {"name", "type", ["options", "currencies",
  "referenceTableId"]}}` (not lookup or formula; existing records have no value in a new
  stored field, and no Updated At change; records inserted later do),
  `"rename": {"fieldId", "name"}` or `"remove": fieldId` -> `{"added" | "renamed": field}` or
  `{"removed": fieldId}`. `{"entity": "tables:<tableId>", "ready": bool}` marks a table ready.
- `configure`: `token_lifetime_s`, `reset_refresh_token`, `revoke_tokens`, `max_page_size`,
  `fast_path` (false runs every query through graphql-core's executor, for tests),
  `reference_form` ("space" | "pipe", above), `odd_timestamps` (every API: `base.py`),
  `offset_cursors` (true: cursors are graphene's `arrayconnection:<offset>` instead of the
  record's place, so a record deleted before the cursor shifts every later one up by one),
  `created_at_filter` ("applied", the default; "ignored": a condition on a Created At field lets
  every record through; "refused": it is `BAD_USER_INPUT`; the document lists no operators for
  dates, so an API may do either).
- Request log: `{"root_fields": [names], "args": {root field name: its coerced arguments},
  "executor": "compiled" | "graphql-core"}` for GraphQL, `{"grant_type": ...}` for the token
  endpoint.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jwt
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lxp_sync_sandbox.base import Api, json_response, serving_odd_timestamps
from lxp_sync_sandbox.pitchly_data import (
    ATTACHMENT,
    BOOLEAN,
    COMPUTED_TYPES,
    CURRENCY,
    DATE,
    DROPDOWN,
    FORMULA,
    LOOKUP,
    MULTILINE_TEXT,
    NUMBER,
    ORGANIZATION_ID,
    TEXT,
    Field,
    Organization,
    Record,
    Table,
    make_field,
)
from lxp_sync_sandbox.pitchly_graphql import UNAUTHENTICATED_MESSAGE, Caller, PitchlyGraphQL

CLIENT_ID = "sandbox-pitchly-client"
CLIENT_SECRET = "sandbox-pitchly-secret"
INITIAL_REFRESH_TOKEN = "plyr_sandbox-initial-refresh-token"
APPROVED_SCOPE = ("records:create", "records:update")
TOKEN_LIFETIME_S = 3600
JWT_LEEWAY_S = 60

INVALID_CLIENT_ID = "Please provide a valid 'client_id' (this may also be called your 'App ID')."
# fields an update mutation may change, best first
UPDATABLE_TYPES = (NUMBER, CURRENCY, MULTILINE_TEXT, TEXT, DATE, BOOLEAN, DROPDOWN, ATTACHMENT)


@dataclass
class _Grant:
    scope: tuple[str, ...]
    workspace_ids: frozenset[str] | None
    kind: str = ""
    expires_at: float = 0.0


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class PitchlyAuth:
    """Access tokens: self-signed JWTs, and the OAuth grants the token endpoint issues."""

    def __init__(self, org: Organization) -> None:
        self.org = org
        self.lifetime_s = TOKEN_LIFETIME_S
        self.access: dict[str, _Grant] = {}
        self.refresh: dict[str, _Grant] = {}
        self.reset_refresh_token()

    def reset_refresh_token(self) -> None:
        self.refresh = {INITIAL_REFRESH_TOKEN: _Grant(APPROVED_SCOPE, None, "user")}

    def caller(self, authorization: str | None) -> Caller:
        """Who the Authorization header says is asking (with an error if nobody valid)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Caller(error=UNAUTHENTICATED_MESSAGE)
        if token.count(".") == 2:
            return self._jwt_caller(token)
        grant = self.access.get(token)
        if grant is None:
            return Caller(error=f"Invalid access token. {UNAUTHENTICATED_MESSAGE}")
        if grant.expires_at <= time.time():
            del self.access[token]
            return Caller(error=f"The access token has expired. {UNAUTHENTICATED_MESSAGE}")
        return Caller(workspace_ids=grant.workspace_ids, kind=grant.kind)

    def _jwt_caller(self, token: str) -> Caller:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return Caller(error=f"Malformed access token. {UNAUTHENTICATED_MESSAGE}")
        if unverified.get("iss") != CLIENT_ID:
            return Caller(
                error=f"Unknown client in the token's 'iss' claim. {UNAUTHENTICATED_MESSAGE}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    CLIENT_SECRET,
                    algorithms=["HS256"],
                    options={"require": ["iss", "iat"]},
                    leeway=JWT_LEEWAY_S,
                )
        except jwt.ExpiredSignatureError:
            return Caller(error=f"The access token has expired. {UNAUTHENTICATED_MESSAGE}")
        except jwt.InvalidTokenError as exc:
            return Caller(error=f"Invalid access token ({exc}). {UNAUTHENTICATED_MESSAGE}")
        workspace_ids = claims.get("workspace_ids")
        if workspace_ids is None:
            return Caller(kind="jwt")
        if not isinstance(workspace_ids, list) or not all(
            isinstance(w, str) for w in workspace_ids
        ):
            return Caller(error="The 'workspace_ids' claim must be a list of workspace ids.")
        return Caller(workspace_ids=frozenset(workspace_ids), kind="jwt")

    def token(self, params: dict[str, str]) -> dict[str, Any]:
        """The token endpoint's answer to `params` (raises _OAuthError)."""
        grant_type = params.get("grant_type")
        if grant_type not in ("client_credentials", "refresh_token", "authorization_code"):
            raise _OAuthError(400, "unsupported_grant_type", "Please provide a valid 'grant_type'.")
        if params.get("client_id") != CLIENT_ID:
            raise _OAuthError(401, "invalid_client", INVALID_CLIENT_ID)
        if params.get("client_secret") != CLIENT_SECRET:
            raise _OAuthError(401, "invalid_client", "Please provide a valid 'client_secret'.")
        if grant_type == "authorization_code":
            raise _OAuthError(400, "invalid_grant", "Please provide a valid 'code'.")
        if grant_type == "client_credentials":
            if params.get("organization_id") != ORGANIZATION_ID:
                raise _OAuthError(400, "invalid_grant", "Please provide a valid 'organization_id'.")
            grant = self._downscoped(_Grant(APPROVED_SCOPE, None, "install"), params)
            return self._issue("plyi_", grant)
        old = self.refresh.get(params.get("refresh_token") or "")
        if old is None:
            raise _OAuthError(400, "invalid_grant", "Please provide a valid 'refresh_token'.")
        grant = self._downscoped(_Grant(old.scope, old.workspace_ids, "user"), params)
        del self.refresh[params["refresh_token"]]
        refresh_token = "plyr_" + secrets.token_urlsafe(32)
        self.refresh[refresh_token] = grant
        body = self._issue("plyu_", grant)
        scope = body.pop("scope")
        return {**body, "refresh_token": refresh_token, "scope": scope}

    def _downscoped(self, grant: _Grant, params: dict[str, str]) -> _Grant:
        scope = grant.scope
        if params.get("scope"):
            wanted = tuple(params["scope"].split())
            if not set(wanted) <= set(grant.scope):
                raise _OAuthError(
                    400,
                    "invalid_scope",
                    "The requested 'scope' exceeds the permissions approved for this app.",
                )
            scope = wanted
        workspace_ids = grant.workspace_ids
        if params.get("workspace_ids"):
            wanted_ws = frozenset(params["workspace_ids"].split())
            known = {ws.id for ws in self.org.workspaces}
            if not wanted_ws <= known or (
                workspace_ids is not None and not wanted_ws <= workspace_ids
            ):
                raise _OAuthError(400, "invalid_request", "Please provide valid 'workspace_ids'.")
            workspace_ids = wanted_ws
        return _Grant(scope, workspace_ids, grant.kind)

    def _issue(self, prefix: str, grant: _Grant) -> dict[str, Any]:
        token = prefix + secrets.token_urlsafe(32)
        self.access[token] = _Grant(
            grant.scope, grant.workspace_ids, grant.kind, time.time() + self.lifetime_s
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "scope": " ".join(grant.scope),
        }


async def _token_params(request: Request) -> dict[str, str]:
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise _OAuthError(
                400, "invalid_request", "The request body is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise _OAuthError(400, "invalid_request", "The request body must be an object.")
        params = {
            k: v if isinstance(v, str) else " ".join(v) if isinstance(v, list) else str(v)
            for k, v in body.items()
            if v is not None
        }
    else:
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and "client_id" not in params:
        try:
            client_id, _, client_secret = base64.b64decode(credentials).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _OAuthError(401, "invalid_client", INVALID_CLIENT_ID) from None
        params.setdefault("client_id", client_id)
        params.setdefault("client_secret", client_secret)
    return params


class PitchlyApi(Api):
    """Pitchly: GraphQL over workspaces, tables and records, with JWT and OAuth2 auth."""

    name = "pitchly"

    def __init__(self, rows: int, seed: int) -> None:
        self.org = Organization(rows, seed)
        self.graphql = PitchlyGraphQL(self.org)
        self.auth = PitchlyAuth(self.org)

    def routes(self) -> list[Any]:
        return [
            Route("/graphql", serving_odd_timestamps(self, self._graphql), methods=["POST"]),
            Route("/api/oauth/token", self._token, methods=["POST"]),
        ]

    async def _graphql(self, request: Request) -> Response:
        log: dict[str, Any] = request.scope.get("sandbox_log", {})
        caller = self.auth.caller(request.headers.get("authorization"))
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        content = self.graphql.execute(body, caller, log)
        return Response(content, media_type="application/json")

    async def _token(self, request: Request) -> Response:
        log: dict[str, Any] = request.scope.get("sandbox_log", {})
        try:
            params = await _token_params(request)
            log["grant_type"] = params.get("grant_type")
            body, status = self.auth.token(params), 200
        except _OAuthError as exc:
            body, status = {"error": exc.error, "error_description": exc.description}, exc.status
        return json_response(
            body, status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    # --- sandbox endpoints -------------------------------------------------------------

    def describe(self, base_url: str) -> dict[str, Any]:
        return {
            "graphql_url": f"{base_url}/{self.name}/graphql",
            "token_url": f"{base_url}/{self.name}/api/oauth/token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "organization_id": ORGANIZATION_ID,
            "refresh_token": INITIAL_REFRESH_TOKEN,
        }

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        unknown = set(spec) - {
            "token_lifetime_s",
            "reset_refresh_token",
            "revoke_tokens",
            "fast_path",
            "max_page_size",
            "reference_form",
            "odd_timestamps",
            "offset_cursors",
            "created_at_filter",
        }
        if unknown:
            raise ValueError(f"{self.name}: unknown settings {sorted(unknown)}")
        if "token_lifetime_s" in spec:
            self.auth.lifetime_s = int(spec["token_lifetime_s"])
        if spec.get("reset_refresh_token"):
            self.auth.reset_refresh_token()
        if spec.get("revoke_tokens"):
            self.auth.access.clear()
        if "fast_path" in spec:
            self.graphql.fast_path = bool(spec["fast_path"])
        if "max_page_size" in spec:
            self.graphql.max_page_size = int(spec["max_page_size"])
        if "odd_timestamps" in spec:
            self.odd_timestamps = bool(spec["odd_timestamps"])
        if "reference_form" in spec:
            self.org.set_reference_form(str(spec["reference_form"]))
        if "offset_cursors" in spec:
            self.graphql.offset_cursors = bool(spec["offset_cursors"])
        if "created_at_filter" in spec:
            if spec["created_at_filter"] not in ("applied", "ignored", "refused"):
                raise ValueError(f"{self.name}: created_at_filter: applied, ignored or refused")
            self.org.created_at_filter = str(spec["created_at_filter"])
        return {
            "created_at_filter": self.org.created_at_filter,
            "reference_form": self.org.reference_form,
            "token_lifetime_s": self.auth.lifetime_s,
            "fast_path": self.graphql.fast_path,
            "max_page_size": self.graphql.max_page_size,
            "offset_cursors": self.graphql.offset_cursors,
        }

    def truth(self, entity: str) -> list[dict[str, Any]]:
        kind, _, table_id = entity.partition(":")
        if kind == "workspaces" and not table_id:
            return [ws.as_dict() for ws in self.org.workspaces]
        if kind == "tables" and not table_id:
            return [table.as_dict() for table in self.org.tables.values()]
        if kind == "fields" and not table_id:
            return [f.as_dict() for f in self.org.all_fields()]
        if kind == "fields":
            return [f.as_dict() for f in self.org.tables[table_id].fields]
        if kind == "records":
            table = self.org.tables[table_id]
            return [table.node(rec) for rec in table.ordered()[0]]
        raise KeyError(entity)

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        kind, _, table_id = str(spec.get("entity", "")).partition(":")
        table = self.org.tables[table_id]
        if kind == "records":
            result = self._mutate_records(table, spec)
        elif kind == "fields":
            result = self._mutate_fields(table, spec)
        elif kind == "tables":
            table.ready = bool(spec["ready"])
            result = {"table": table.as_dict()}
        else:
            raise KeyError(spec.get("entity"))
        self.org.changed()
        return result

    def _mutate_records(self, table: Table, spec: dict[str, Any]) -> dict[str, Any]:
        rng = self.org.mutation_rng()
        inserted = [rec.id for rec in self.org.insert(table, int(spec.get("insert", 0)), rng)]
        updated: list[str] = []
        if spec.get("update"):
            recs = self._pick(table, spec["update"], rng, exclude=set(inserted))
            self.org.update(table, self._updatable_field(table), recs, rng)
            updated = [rec.id for rec in recs]
        deleted: list[str] = []
        cascaded: list[str] = []
        if spec.get("delete"):
            recs = self._pick(table, spec["delete"], rng, exclude={*inserted, *updated})
            cascaded = self.org.delete(table, recs)
            deleted = [rec.id for rec in recs]
        return {"inserted": inserted, "updated": updated, "deleted": deleted, "cascaded": cascaded}

    @staticmethod
    def _pick(table: Table, which: Any, rng: random.Random, exclude: set[str]) -> list[Record]:
        if isinstance(which, list):
            return [table.records[rid] for rid in which]
        candidates = [rec for rec in table.records.values() if rec.id not in exclude]
        return rng.sample(candidates, min(int(which), len(candidates)))

    def _updatable_field(self, table: Table) -> Field:
        """The plain field updates change: never a primary field (references display it) nor
        one a lookup reads, so that no record changes without its own Updated At moving."""
        candidates = [
            f
            for f in table.fields
            if not f.primary and f.type in UPDATABLE_TYPES and not self.org.lookups_reading(f)
        ]
        if not candidates:
            raise ValueError(f"table {table.id} has no field an update may change")
        return min(candidates, key=lambda f: UPDATABLE_TYPES.index(f.type))

    def _mutate_fields(self, table: Table, spec: dict[str, Any]) -> dict[str, Any]:
        if "add" in spec:
            add = dict(spec["add"])
            kind = add.get("type", "")
            if kind in (LOOKUP, FORMULA):
                raise ValueError("the sandbox cannot add lookup or formula fields")
            options = {k: v for k, v in add.items() if k not in ("name", "type")}
            field = make_field(self.org.mutation_rng(), table, str(add["name"]), kind, options)
            if kind not in COMPUTED_TYPES:
                field.empty = 0.0
            return {"added": table.add_field(field).as_dict()}
        if "rename" in spec:
            field = table.field(spec["rename"]["fieldId"])
            field.name = str(spec["rename"]["name"])
            return {"renamed": field.as_dict()}
        if "remove" in spec:
            field = table.field(spec["remove"])
            users = [
                f.name
                for t in self.org.tables.values()
                for f in t.fields
                if field.id in (f.lookup_field_id, f.lookup_reference_field_id, *f.depends_on)
            ]
            if field.primary or users:
                raise ValueError(f"field {field.id} is primary or used by {users}")
            table.remove_field(field)
            return {"removed": field.id}
        raise ValueError("a fields mutation needs 'add', 'rename' or 'remove'")


def build(config: Any) -> PitchlyApi:
    return PitchlyApi(config.rows, config.seed)
