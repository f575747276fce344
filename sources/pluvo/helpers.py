"""Mechanics of the Pluvo source: URLs, resource names, the OAuth2 client and its check."""

from __future__ import annotations

import httpx

from lxp_sync.sources.core.auth import OAuth2ClientCredentials, TokenCache
from lxp_sync.sources.core.errors import ConfigurationError
from lxp_sync.sources.core.graphql import Connection, GraphQLClient
from lxp_sync.sources.core.http import ApiClient, RetryPolicy
from lxp_sync.sources.core.secrets import require_credential
from lxp_sync.sources.core.urls import require_https
from lxp_sync.sources.pluvo.settings import CONNECTION_PREFIX, GRAPHQL_PATH, TOKEN_PATH


def organization_root(base_url: str) -> str:
    """`https://acme.pluvo.com` -> `https://acme.pluvo.com/`; a pasted `.../graphql/` is trimmed."""
    url = (base_url or "").strip()
    if "<" in url:  # `https://<organization>.pluvo.com/`, as config.toml shows it
        require_https(url, setting="base_url", source="pluvo", allow_insecure_http=False)
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"base_url {url!r} is not an http(s) URL",
            resource="pluvo",
            hint="Set `base_url` under [sources.pluvo] to your organization's root, "
            "e.g. https://acme.pluvo.com/",
        )
    url = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    for suffix in (GRAPHQL_PATH, TOKEN_PATH):
        if url.endswith("/" + suffix.rstrip("/")):
            url = url[: -len(suffix.rstrip("/"))].rstrip("/")
    return url + "/"


def resource_name(connection: str) -> str:
    """`paginatedUsers` -> `users`; a connection without the prefix keeps its name."""
    if connection.startswith(CONNECTION_PREFIX) and len(connection) > len(CONNECTION_PREFIX):
        rest = connection[len(CONNECTION_PREFIX) :]
        return rest[0].lower() + rest[1:]
    return connection


def resource_names(connections: dict[str, Connection]) -> dict[str, Connection]:
    """Resource name -> connection; a short name two connections would share keeps the long one."""
    short = [resource_name(name) for name in connections]
    return {
        (resource_name(name) if short.count(resource_name(name)) == 1 else name): connection
        for name, connection in connections.items()
    }


def pluvo_client(
    root: str,
    client_id: str,
    client_secret: str,
    scopes: str,
    *,
    max_retries: int,
    timeout_s: float,
    token_cache_path: str | None,
    allow_insecure_http: bool = False,
) -> tuple[GraphQLClient, OAuth2ClientCredentials]:
    """The GraphQL client of one organization, authenticated with client credentials."""
    client_id = require_credential(client_id, setting="client_id", source="pluvo", secret=False)
    client_secret = require_credential(client_secret, setting="client_secret", source="pluvo")
    # the token URL is the root's, so one check covers the client secret and the token
    require_https(root, setting="base_url", source="pluvo", allow_insecure_http=allow_insecure_http)
    auth = OAuth2ClientCredentials(
        root + TOKEN_PATH,
        client_id,
        client_secret,
        scope=" ".join(scopes.split()) or None,
        what="pluvo.token",
        url_setting="base_url",
        cache=TokenCache(token_cache_path) if token_cache_path else None,
        timeout=timeout_s,
    )
    api = ApiClient(root, auth, timeout=timeout_s, retry=RetryPolicy(max_retries=max_retries))
    gql = GraphQLClient(api, GRAPHQL_PATH, source="pluvo", renew_auth=auth.invalidate)
    return gql, auth


def check_connection(gql: GraphQLClient, auth: OAuth2ClientCredentials) -> str:
    """Fetch a token and send the cheapest query there is; say which scopes were granted."""
    gql.execute("query LxpCheck { __typename }", resource="pluvo.check")
    granted = (auth.granted_scope or "").split()
    requested = (auth.scope or "").split()
    line = f"token granted with scopes {' '.join(granted) or '(none stated)'}"
    refused = [scope for scope in requested if granted and scope not in granted]
    if refused:
        line += f"; not granted: {' '.join(refused)}"
    return line + f"; GraphQL endpoint {gql.api.base_url}{GRAPHQL_PATH} answered"
