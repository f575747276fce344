"""Mechanics of the Pitchly source: auth, the client, the catalog of tables, per-table settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from lxp_sync.sources.core.auth import (
    OAuth2ClientCredentials,
    PitchlyJWTAuth,
    RefreshTokenAuth,
    RefreshTokenStore,
    RenewableTokenAuth,
)
from lxp_sync.sources.core.errors import AuthenticationError, ConfigurationError
from lxp_sync.sources.core.graphql import GraphQLClient, IntrospectedSchema, unwrap
from lxp_sync.sources.core.http import ApiClient, RetryPolicy
from lxp_sync.sources.core.numbers import loads_exact
from lxp_sync.sources.core.secrets import require_credential
from lxp_sync.sources.core.urls import require_https
from lxp_sync.sources.pitchly.naming import configured_name, default_table_name
from lxp_sync.sources.pitchly.settings import AUTH_MODES

SOURCE = "pitchly"

# What to do when the API refuses the credentials, per auth mode.
REFUSED_HINTS = {
    "jwt": "Check `client_id` and `client_secret` (the JWT is signed with the secret) and this "
    "machine's clock (the JWT's `iat` and `exp` come from it; `clock_offset_s` corrects it)",
    "client_credentials": "Check `client_id`, `client_secret` and `organization_id`",
    "refresh_token": "Check `client_id` and `client_secret`; if it persists, authorize the app "
    "again and set the new `refresh_token`",
}


def as_list(value: Sequence[str] | str | None) -> list[str] | None:
    """A list setting that may arrive as `a,b` or `a b` from an environment variable."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return [str(part) for part in value]


def make_auth(
    auth_mode: str,
    client_id: str,
    client_secret: str,
    *,
    token_url: str,
    organization_id: str | None = None,
    refresh_token: str | None = None,
    refresh_token_path: str | None = None,
    workspace_ids: Sequence[str] | None = None,
    permissions: Sequence[str] | None = None,
    jwt_lifetime_s: float = 300.0,
    clock_offset_s: float = 0.0,
    timeout_s: float = 60.0,
    allow_insecure_http: bool = False,
) -> RenewableTokenAuth:
    """The `httpx.Auth` of one of Pitchly's three ways to authenticate an app."""
    what = f"{SOURCE}.token"
    client_id = require_credential(client_id, setting="client_id", source=SOURCE, secret=False)
    client_secret = require_credential(client_secret, setting="client_secret", source=SOURCE)
    if refresh_token and auth_mode == "refresh_token":  # none: the saved one is used
        refresh_token = require_credential(refresh_token, setting="refresh_token", source=SOURCE)
    if auth_mode in ("client_credentials", "refresh_token"):  # a JWT is minted here, not fetched
        require_https(
            token_url, setting="token_url", source=SOURCE, allow_insecure_http=allow_insecure_http
        )
    downscope = {"workspace_ids": " ".join(workspace_ids)} if workspace_ids else {}
    if auth_mode == "jwt":
        if jwt_lifetime_s <= 0:
            raise ConfigurationError(
                f"jwt_lifetime_s must be positive, not {jwt_lifetime_s}", resource=SOURCE
            )
        return PitchlyJWTAuth(
            client_id,
            client_secret,
            lifetime_s=jwt_lifetime_s,
            workspace_ids=workspace_ids,
            permissions=permissions,
            clock_offset_s=clock_offset_s,
        )
    if auth_mode == "client_credentials":
        if not organization_id:
            raise ConfigurationError(
                "auth_mode client_credentials needs `organization_id`",
                resource=SOURCE,
                hint="Set `organization_id` (the organization that installed the app) under "
                "[sources.pitchly] or SOURCES__PITCHLY__ORGANIZATION_ID",
            )
        return OAuth2ClientCredentials(
            token_url,
            client_id,
            client_secret,
            extra={"organization_id": organization_id, **downscope},
            what=what,
            timeout=timeout_s,
        )
    if auth_mode == "refresh_token":
        if not refresh_token_path:
            raise ConfigurationError(
                "auth_mode refresh_token needs `refresh_token_path`: each refresh token works "
                "once, so the new one must be saved where the next run finds it",
                resource=SOURCE,
                hint="Set `refresh_token_path` to a private file that outlives the run (e.g. "
                "~/.config/lxp-sync/pitchly-refresh-token.json)",
            )
        return RefreshTokenAuth(
            token_url,
            client_id,
            client_secret,
            refresh_token,
            RefreshTokenStore(refresh_token_path),
            extra=downscope,
            what=what,
            timeout=timeout_s,
        )
    raise ConfigurationError(
        f"auth_mode {auth_mode!r} is not one of {', '.join(AUTH_MODES)}",
        resource=SOURCE,
        hint="Set `auth_mode` under [sources.pitchly]",
    )


def graphql_client(
    graphql_url: str,
    auth: RenewableTokenAuth,
    *,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    allow_insecure_http: bool = False,
) -> GraphQLClient:
    """Pitchly's GraphQL endpoint; an `UNAUTHENTICATED` answer renews the token once."""
    require_https(
        graphql_url, setting="graphql_url", source=SOURCE, allow_insecure_http=allow_insecure_http
    )
    # httpx ends a base URL with `/`: the endpoint's last segment is the request path
    base, _, path = graphql_url.strip().rstrip("/").rpartition("/")
    api = ApiClient(
        base + "/",
        auth,
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=max_retries),
        decode=loads_exact,  # Number fields may hold more digits than a double
        url_setting="graphql_url",
    )
    return GraphQLClient(api, path, source=SOURCE, renew_auth=auth.invalidate)


@dataclass
class Catalog:
    """The organization as the token sees it: workspaces, their tables, each table's fields."""

    workspaces: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    fields: dict[str, list[dict[str, Any]]]  # table id -> its fields, in order
    workspace_of: dict[str, dict[str, Any]] = field(default_factory=dict)  # table id ->

    @property
    def fields_by_id(self) -> dict[str, dict[str, Any]]:
        return {f["id"]: f for fields in self.fields.values() for f in fields}

    def label(self, table: Mapping[str, Any]) -> str:
        """`Sales / Deals (wks...|tbl...)`, for messages."""
        workspace = self.workspace_of[table["id"]].get("name", "")
        return f"{workspace} / {table.get('name', '')} ({table['id']})"

    def default_name(self, table: Mapping[str, Any]) -> str:
        return default_table_name(self.workspace_of[table["id"]], table)


def _scalars(schema: IntrospectedSchema, type_name: str) -> list[str]:
    """Scalar and enum fields of a type that take no required argument."""
    leaves = schema.leaf_fields(type_name)
    return [
        name
        for name, node_field in schema.fields(type_name).items()
        if name in leaves
        and not any(a["type"]["kind"] == "NON_NULL" for a in node_field.get("args") or [])
    ]


def _child_type(schema: IntrospectedSchema, type_name: str, field_name: str) -> str:
    node_field = schema.fields(type_name).get(field_name)
    if node_field is None:
        raise ConfigurationError(
            f"the API's {type_name} type has no `{field_name}` field", resource=SOURCE
        )
    return unwrap(node_field["type"])[1]


def catalog_query(schema: IntrospectedSchema, workspace_ids: Sequence[str] | None) -> str:
    """Every scalar of workspaces, their tables and the tables' fields, from the live schema.

    With `workspace_ids`, one `workspace(id)` per id (aliased); else the `workspaces` list.
    """
    root = schema.fields(schema.query_type)
    root_field = "workspace" if workspace_ids else "workspaces"
    if root_field not in root:
        raise ConfigurationError(
            f"the API has no `{root_field}` query",
            resource=SOURCE,
            hint="Set `workspace_ids` to the workspaces to load",
        )
    workspace_type = unwrap(root[root_field]["type"])[1]
    table_type = _child_type(schema, workspace_type, "tables")
    field_type = _child_type(schema, table_type, "fields")
    selection = (
        f"{' '.join(_scalars(schema, workspace_type))} "
        f"tables {{ {' '.join(_scalars(schema, table_type))} "
        f"fields {{ {' '.join(_scalars(schema, field_type))} }} }}"
    )
    if not workspace_ids:
        return f"query LxpCatalog {{ workspaces {{ {selection} }} }}"
    parts = " ".join(
        f"w{i}: workspace(id: {orjson.dumps(ws).decode()}) {{ {selection} }}"
        for i, ws in enumerate(workspace_ids)
    )
    return f"query LxpCatalog {{ {parts} }}"


def fetch_catalog(
    gql: GraphQLClient, workspace_ids: Sequence[str] | None, auth_mode: str
) -> Catalog:
    """Workspaces, tables and field definitions in one query (the first request of a run)."""
    try:
        query = catalog_query(gql.schema(), workspace_ids)
        data = gql.execute(query, resource=f"{SOURCE}.workspaces")
    except AuthenticationError as exc:
        if exc.resource != f"{SOURCE}.token":  # the token endpoint's line says enough
            exc.hint = REFUSED_HINTS.get(auth_mode, exc.hint)
        raise
    found = data["workspaces"] if not workspace_ids else list(data.values())
    workspaces, tables, fields, workspace_of = [], [], {}, {}
    for workspace in found:
        if workspace is None:
            continue
        workspace = dict(workspace)
        for table in workspace.pop("tables", None) or []:
            table = dict(table)
            table.setdefault("workspaceId", workspace["id"])
            table_fields = [dict(f) for f in table.pop("fields", None) or []]
            for table_field in table_fields:
                table_field.setdefault("tableId", table["id"])
            tables.append(table)
            fields[table["id"]] = table_fields
            workspace_of[table["id"]] = workspace
        workspaces.append(workspace)
    return Catalog(workspaces, tables, fields, workspace_of)


@dataclass(frozen=True)
class TableSettings:
    """What the settings say about one table (`[sources.pitchly.tables."<table id>"]`)."""

    name: str | None = None
    include: bool = True
    filter: dict[str, Any] | None = None
    columns: dict[str, str] = field(default_factory=dict)  # field id -> column name


def table_settings(tables: Mapping[str, Any] | None, catalog: Catalog) -> dict[str, TableSettings]:
    """Table id -> its settings; a key may be the table id or its default warehouse name."""
    if not tables:
        return {}
    if isinstance(tables, str):  # JSON from an environment variable
        tables = orjson.loads(tables)
    by_default = {catalog.default_name(t): t["id"] for t in catalog.tables}
    known = {t["id"] for t in catalog.tables}
    found: dict[str, TableSettings] = {}
    for key, spec in dict(tables).items():
        table_id = key if key in known else by_default.get(key)
        if table_id is None:
            raise ConfigurationError(
                f"`tables` names {key!r}, which is neither a table id nor a table name here; "
                f"tables: {sorted(by_default)}",
                resource=SOURCE,
                hint="Key each entry of [sources.pitchly.tables] by table id (see the `tables` "
                "table) or by its default name",
            )
        spec = dict(spec or {})
        unknown = set(spec) - {"name", "include", "filter", "columns"}
        if unknown:
            raise ConfigurationError(
                f"`tables.{key}` has unknown settings {sorted(unknown)}; "
                "known: name, include, filter, columns",
                resource=SOURCE,
            )
        filter_spec = spec.get("filter")
        if filter_spec is not None:  # plain JSON data (TOML's own types do not go into state)
            raw = filter_spec if isinstance(filter_spec, str) else orjson.dumps(filter_spec)
            filter_spec = orjson.loads(raw)
        if filter_spec is not None and not isinstance(filter_spec.get("conditions"), list):
            raise ConfigurationError(
                f"`tables.{key}.filter` must be a Pitchly filter "
                '({"conditions": [...], "logicalOperator": "and"})',
                resource=SOURCE,
            )
        found[table_id] = TableSettings(
            name=configured_name(spec["name"]) if spec.get("name") else None,
            include=bool(spec.get("include", True)),
            filter=filter_spec,
            columns={str(k): str(v) for k, v in (spec.get("columns") or {}).items()},
        )
    names = [s.name for s in found.values() if s.name]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"`tables` gives the name {duplicates[0]!r} to more than one table", resource=SOURCE
        )
    return found


def check_connection(
    gql: GraphQLClient, auth_mode: str, workspace_ids: Sequence[str] | None
) -> str:
    """Authenticate and read the catalog; say what the credentials can see."""
    catalog = fetch_catalog(gql, workspace_ids, auth_mode)
    ready = sum(1 for t in catalog.tables if t.get("isReady", True))
    return (
        f"{auth_mode} credentials accepted; {len(catalog.workspaces)} workspaces, "
        f"{len(catalog.tables)} tables ({ready} ready) visible"
    )
