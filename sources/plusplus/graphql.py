"""Mechanics of the PlusPlus GraphQL source: the client, which connections, how each one loads."""

from __future__ import annotations

from lxp_sync.sources.core.auth import TokenAuth
from lxp_sync.sources.core.connections import ConnectionOptions
from lxp_sync.sources.core.graphql import GraphQLClient
from lxp_sync.sources.core.http import ApiClient, RetryPolicy
from lxp_sync.sources.core.secrets import require_credential
from lxp_sync.sources.core.urls import require_https
from lxp_sync.sources.plusplus.settings import (
    GRAPHQL_CURSOR_FIELDS,
    GRAPHQL_DELETED_FIELD,
    GRAPHQL_MAX_PAGE_SIZE,
    GRAPHQL_PRIMARY_KEY,
    GRAPHQL_SERVER_FILTERS,
)

SOURCE = "plusplus_graphql"


def graphql_client(
    base_url: str,
    api_token: str,
    *,
    timeout_s: float = 60.0,
    max_retries: int = 5,
    allow_insecure_http: bool = False,
) -> GraphQLClient:
    """A GraphQL client for the customer's endpoint, `Authorization: Token <t>`.

    The endpoint is used exactly as given: `https://<domain>/graphql` and `.../graphql/` are
    different routes on a Django server, and only one of them may answer.
    """
    url = require_https(
        base_url, setting="base_url", source=SOURCE, allow_insecure_http=allow_insecure_http
    )
    api = ApiClient(
        url,
        TokenAuth(require_credential(api_token, setting="api_token", source=SOURCE), "Token"),
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=max_retries),
    )
    # an absolute URL, not a path joined to httpx's base URL (which always ends with `/`)
    return GraphQLClient(api, url, source=SOURCE)


def connection_options(
    *,
    page_size: int,
    hard_delete: bool,
    max_pages: int | None,
    incremental_by_created: bool = False,
    arrow: bool = True,
) -> ConnectionOptions:
    """How every PlusPlus connection loads: merge on `pk`, `modified` cursor, soft deletes."""
    return ConnectionOptions(
        primary_key=GRAPHQL_PRIMARY_KEY,
        cursor_fields=GRAPHQL_CURSOR_FIELDS,
        server_filters=GRAPHQL_SERVER_FILTERS,
        page_size=page_size,
        max_page_size=GRAPHQL_MAX_PAGE_SIZE,
        max_pages=max_pages,
        deleted_field=GRAPHQL_DELETED_FIELD,
        hard_delete=hard_delete,
        incremental_by_creation=incremental_by_created,
        arrow=arrow,
    )
