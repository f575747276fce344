"""The sources `lxp-sync` knows: how to build each, check it, and point it at the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config

from sources.core.auth import TokenAuth
from sources.core.http import ApiClient, RetryPolicy
from sources.pitchly import check_pitchly, pitchly_source
from sources.plusplus import plusplus_graphql_source, plusplus_rest_source
from sources.plusplus.graphql import graphql_client
from sources.pluvo import pluvo_source
from sources.pluvo.helpers import check_connection, organization_root, pluvo_client
from sources.pluvo.settings import DEFAULT_SCOPES


@dataclass(frozen=True)
class SourceSpec:
    """How the command drives one source."""

    name: str
    factory: Callable[..., Any]
    # one cheap request that proves credentials and connectivity; returns a short fact
    check: Callable[[], str]
    # the factory's arguments for the bundled sandbox at `sandbox_url` (demo and tests)
    sandbox_args: Callable[[str], dict[str, Any]]
    description: str = ""


@with_config(sections=("sources", "plusplus_rest"))
def check_plusplus_rest(
    base_url: str = dlt.config.value, api_token: str = dlt.secrets.value, timeout_s: float = 30.0
) -> str:
    with ApiClient(
        base_url.rstrip("/") + "/",
        TokenAuth(api_token, "Bearer"),
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=2),
    ) as client:
        body = client.get_json("users/", params={"page_size": 1}, resource="plusplus_rest.users")
    total = body.get("meta", {}).get("total_count")
    return f"token accepted; {total} users visible"


def _plusplus_rest_sandbox(sandbox_url: str) -> dict[str, Any]:
    from sandbox.plusplus_rest import API_TOKEN

    return {"base_url": f"{sandbox_url}/plusplus_rest/api/v1", "api_token": API_TOKEN}


@with_config(sections=("sources", "plusplus_graphql"))
def check_plusplus_graphql(
    base_url: str = dlt.config.value, api_token: str = dlt.secrets.value, timeout_s: float = 30.0
) -> str:
    gql = graphql_client(base_url, api_token, timeout_s=timeout_s, max_retries=2)
    try:
        data = gql.execute("{ __typename }", resource="plusplus_graphql")
    finally:
        gql.api.close()
    return f"token accepted; query root {data.get('__typename')}"


def _plusplus_graphql_sandbox(sandbox_url: str) -> dict[str, Any]:
    from sandbox.plusplus_graphql import API_TOKEN

    return {"base_url": f"{sandbox_url}/plusplus_graphql/graphql/", "api_token": API_TOKEN}


@with_config(sections=("sources", "pluvo"))
def check_pluvo(
    base_url: str = dlt.config.value,
    client_id: str = dlt.config.value,
    client_secret: str = dlt.secrets.value,
    scopes: str = DEFAULT_SCOPES,
    timeout_s: float = 30.0,
    token_cache_path: str | None = None,
) -> str:
    gql, auth = pluvo_client(
        organization_root(base_url),
        client_id,
        client_secret,
        scopes,
        max_retries=2,
        timeout_s=timeout_s,
        token_cache_path=token_cache_path,
    )
    try:
        return check_connection(gql, auth)
    finally:
        gql.api.close()


def _pluvo_sandbox(sandbox_url: str) -> dict[str, Any]:
    from sandbox.pluvo import ALL_SCOPES, CLIENT_ID, CLIENT_SECRET

    return {
        "base_url": f"{sandbox_url}/pluvo/",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ALL_SCOPES,
    }


def _pitchly_sandbox(sandbox_url: str) -> dict[str, Any]:
    from sandbox.pitchly import CLIENT_ID, CLIENT_SECRET

    return {
        "graphql_url": f"{sandbox_url}/pitchly/graphql",
        "token_url": f"{sandbox_url}/pitchly/api/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_mode": "jwt",
    }


SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in [
        SourceSpec(
            name="plusplus_rest",
            factory=plusplus_rest_source,
            check=check_plusplus_rest,
            sandbox_args=_plusplus_rest_sandbox,
            description="PlusPlus Public REST API",
        ),
        SourceSpec(
            name="plusplus_graphql",
            factory=plusplus_graphql_source,
            check=check_plusplus_graphql,
            sandbox_args=_plusplus_graphql_sandbox,
            description="PlusPlus GraphQL API, every connection found by introspection",
        ),
        SourceSpec(
            name="pluvo",
            factory=pluvo_source,
            check=check_pluvo,
            sandbox_args=_pluvo_sandbox,
            description="Pluvo GraphQL API (OAuth2), every paginated connection",
        ),
        SourceSpec(
            name="pitchly",
            factory=pitchly_source,
            check=check_pitchly,
            sandbox_args=_pitchly_sandbox,
            description="Pitchly GraphQL API, one typed table per Pitchly table",
        ),
    ]
}
