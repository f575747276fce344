"""Mechanics of the PlusPlus GraphQL source: the client, which connections, how each one loads."""

from __future__ import annotations

from lxp_sync.sources.core.auth import TokenAuth
from lxp_sync.sources.core.connections import ConnectionOptions
from lxp_sync.sources.core.graphql import GraphQLClient
from lxp_sync.sources.core.http import ApiClient, RetryPolicy
from lxp_sync.sources.plusplus.settings import (
    GRAPHQL_CURSOR_FIELDS,
    GRAPHQL_DELETED_FIELD,
    GRAPHQL_JSON_SCALARS,
    GRAPHQL_MAX_PAGE_SIZE,
    GRAPHQL_PRIMARY_KEY,
    GRAPHQL_SERVER_FILTERS,
)

SOURCE = "plusplus_graphql"


def graphql_client(
    base_url: str, api_token: str, *, timeout_s: float = 60.0, max_retries: int = 5
) -> GraphQLClient:
    """A GraphQL client for the customer's endpoint, `Authorization: Token <t>`."""
    api = ApiClient(
        base_url,
        TokenAuth(api_token, "Token"),
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=max_retries),
    )
    return GraphQLClient(api, "", source=SOURCE)


def connection_options(
    *, page_size: int, hard_delete: bool, max_pages: int | None
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
        json_scalars=GRAPHQL_JSON_SCALARS,
    )
