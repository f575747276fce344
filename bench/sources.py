"""The sources the benchmark measures, and the plan of each one's fetch ceiling.

A plan is what a plain httpx loop needs to read every row lxp-sync reads, with the same page sizes
and the same concurrency: for PlusPlus REST the six list endpoints; for a GraphQL source each
connection's paging query exactly as lxp-sync writes it (built from the live schema with
lxp-sync's own query builder, here, before anything is measured) and the `Authorization` header
lxp-sync sends. The ceiling then runs in a process of its own that imports only httpx and orjson.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["plusplus_rest", "plusplus_graphql", "pluvo", "pitchly"]
GRAPHQL_SOURCES = SOURCES[1:]
# Pitchly's catalog, not records: loaded, but not counted as rows
PITCHLY_METADATA = ("workspaces", "tables", "fields")


def project_settings() -> dict[str, Any]:
    """The project's `.dlt/config.toml`, as lxp-sync reads it in the measured runs."""
    try:
        return tomllib.loads((ROOT / ".dlt" / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def setting(section: str, key: str, default: Any) -> Any:
    value: Any = project_settings()
    for part in [*section.split("."), key]:
        value = value.get(part) if isinstance(value, dict) else None
    return default if value is None else value


@dataclass
class Plan:
    """How to read a source's rows with nothing but httpx, and where lxp-sync's rows land."""

    source: str
    kind: str  # "rest" or "graphql"
    url: str  # REST: the API root; GraphQL: the endpoint
    concurrency: int  # REST: pages in flight per resource; GraphQL: connections read at once
    page_size: int
    # REST: {"name", "path"}; GraphQL: {"name", "field", "query", "variables"}
    connections: list[dict[str, Any]]
    tables: list[str]  # the root tables lxp-sync loads the rows into
    pages_ahead: int = 1  # GraphQL: requests in flight per connection where cursors are offsets
    auth: Any = field(default=None, repr=False)  # an httpx.Auth, for a fresh header per run

    def to_json(self) -> dict[str, Any]:
        """What the ceiling's process needs, with an `Authorization` header made now."""
        return {
            "source": self.source,
            "kind": self.kind,
            "url": self.url,
            "concurrency": self.concurrency,
            "pages_ahead": self.pages_ahead,
            "page_size": self.page_size,
            "connections": self.connections,
            "headers": {"Authorization": authorization(self.auth, self.url)},
        }


def authorization(auth: httpx.Auth, url: str) -> str:
    """The `Authorization` header `auth` puts on a request (fetching or minting a token)."""
    request = httpx.Request("POST", url)
    return next(auth.sync_auth_flow(request)).headers["Authorization"]


def lxp_sync_env(source: str, sandbox_url: str) -> dict[str, str]:
    """lxp-sync's settings for `source` against the sandbox, as environment variables."""
    from lxp_sync.pipelines.registry import SOURCES as SPECS

    args = SPECS[source].sandbox_args(sandbox_url)
    return {f"SOURCES__{source.upper()}__{key.upper()}": str(value) for key, value in args.items()}


def plan(source: str, sandbox_url: str) -> Plan:
    """The ceiling's plan for `source` against the sandbox (a few requests: schema, catalog)."""
    return {
        "plusplus_rest": _plusplus_rest,
        "plusplus_graphql": _plusplus_graphql,
        "pluvo": _pluvo,
        "pitchly": _pitchly,
    }[source](sandbox_url)


def _snake(names: list[str]) -> list[str]:
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    naming = NamingConvention()
    return [naming.normalize_path(name) for name in names]


def _plusplus_rest(sandbox_url: str) -> Plan:
    from lxp_sync.sources.core.auth import TokenAuth
    from lxp_sync.sources.plusplus.settings import REST_ENDPOINTS, REST_MAX_PAGE_SIZE
    from lxp_sync_sandbox.plusplus_rest import API_TOKEN

    page_size = min(int(setting("sources.plusplus_rest", "page_size", 100)), REST_MAX_PAGE_SIZE)
    return Plan(
        source="plusplus_rest",
        kind="rest",
        url=f"{sandbox_url}/plusplus_rest/api/v1/",
        concurrency=int(setting("sources.plusplus_rest", "concurrency", 4)),
        page_size=page_size,
        connections=[{"name": n, "path": e.path} for n, e in REST_ENDPOINTS.items()],
        tables=list(REST_ENDPOINTS),
        auth=TokenAuth(API_TOKEN, "Bearer"),
    )


def _graphql_plan(
    source: str,
    gql: Any,
    url: str,
    resources: dict[str, Any],
    page_size: int,
    filters: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """A plan over `resources` (resource name -> connection) of one GraphQL client."""
    from lxp_sync.sources.core.graphql import relay_query

    schema = gql.schema()
    connections = []
    for name, connection in resources.items():
        extra = dict((filters or {}).get(name, {}))
        selection = extra.pop("_selection", None) or schema.selection(connection.node_type)
        connections.append(
            {
                "name": name,
                "field": connection.name,
                "query": relay_query(connection, selection, extra),
                "variables": extra,
                "count_field": connection.count_field,
            }
        )
    return Plan(
        source=source,
        kind="graphql",
        url=url,
        # dlt extracts parallelized resources on `extract.workers` threads, one page at a time
        # per resource (a generator is advanced by one thread at a time)
        concurrency=int(setting("extract", "workers", 5)),
        pages_ahead=gql.pages_ahead,
        page_size=page_size,
        connections=connections,
        tables=_snake(list(resources)),
        auth=gql.api.http.auth,
    )


def _plusplus_graphql(sandbox_url: str) -> Plan:
    from lxp_sync.pipelines.registry import SOURCES as SPECS
    from lxp_sync.sources.plusplus.graphql import graphql_client
    from lxp_sync.sources.plusplus.settings import GRAPHQL_MAX_PAGE_SIZE

    args = SPECS["plusplus_graphql"].sandbox_args(sandbox_url)
    gql = graphql_client(args["base_url"], args["api_token"])
    page_size = min(
        int(setting("sources.plusplus_graphql", "page_size", 300)), GRAPHQL_MAX_PAGE_SIZE
    )
    return _graphql_plan(
        "plusplus_graphql", gql, args["base_url"], gql.schema().connections(), page_size
    )


def _pluvo(sandbox_url: str) -> Plan:
    from lxp_sync.pipelines.registry import SOURCES as SPECS
    from lxp_sync.sources.pluvo.helpers import organization_root, pluvo_client, resource_names
    from lxp_sync.sources.pluvo.settings import GRAPHQL_PATH, MAX_PAGE_SIZE

    args = SPECS["pluvo"].sandbox_args(sandbox_url)
    root = organization_root(args["base_url"])
    gql, _ = pluvo_client(
        root,
        args["client_id"],
        args["client_secret"],
        args["scopes"],
        max_retries=2,
        timeout_s=60,
        token_cache_path=None,
    )
    page_size = min(int(setting("sources.pluvo", "page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE)
    resources = resource_names(gql.schema().connections())
    return _graphql_plan("pluvo", gql, root + GRAPHQL_PATH, resources, page_size)


def _pitchly(sandbox_url: str) -> Plan:
    from lxp_sync.pipelines.registry import SOURCES as SPECS
    from lxp_sync.sources.pitchly import records_connection, table_plans
    from lxp_sync.sources.pitchly.helpers import (
        fetch_catalog,
        graphql_client,
        make_auth,
        table_settings,
    )
    from lxp_sync.sources.pitchly.settings import MAX_PAGE_SIZE, RECORD_SELECTION

    args = SPECS["pitchly"].sandbox_args(sandbox_url)
    auth = make_auth(
        args["auth_mode"], args["client_id"], args["client_secret"], token_url=args["token_url"]
    )
    gql = graphql_client(args["graphql_url"], auth)
    catalog = fetch_catalog(gql, None, args["auth_mode"])
    tables = table_plans(catalog, table_settings(None, catalog))
    connection = records_connection(gql)
    page_size = min(int(setting("sources.pitchly", "page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE)
    by_name = {t.resource_name: connection for t in tables}
    filters = {
        t.resource_name: {"tableId": t.table_id, "filter": None, "_selection": RECORD_SELECTION}
        for t in tables
    }
    return _graphql_plan("pitchly", gql, args["graphql_url"], by_name, page_size, filters)
