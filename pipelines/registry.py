"""The sources `lxp-sync` knows: how to build each, check it, and point it at the sandbox.

Each source's module is imported only when that source is used, so that `lxp-sync run pluvo`
does not pay for importing (and holding in memory) the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    """How the command drives one source."""

    name: str
    # "module:function" of the dlt source, and of one cheap request that proves credentials
    # and connectivity (it returns a short fact)
    source_function: str
    check_function: str
    # the factory's arguments for the bundled sandbox at `sandbox_url` (demo and tests)
    sandbox_args: Callable[[str], dict[str, Any]]
    description: str = ""

    @property
    def factory(self) -> Callable[..., Any]:
        return _load(self.source_function)

    @property
    def check(self) -> Callable[[], str]:
        return _load(self.check_function)


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _plusplus_rest_sandbox(sandbox_url: str) -> dict[str, Any]:
    from lxp_sync_sandbox.plusplus_rest import API_TOKEN

    return {"base_url": f"{sandbox_url}/plusplus_rest/api/v1", "api_token": API_TOKEN}


def _plusplus_graphql_sandbox(sandbox_url: str) -> dict[str, Any]:
    from lxp_sync_sandbox.plusplus_graphql import API_TOKEN

    return {"base_url": f"{sandbox_url}/plusplus_graphql/graphql/", "api_token": API_TOKEN}


def _pluvo_sandbox(sandbox_url: str) -> dict[str, Any]:
    from lxp_sync_sandbox.pluvo import ALL_SCOPES, CLIENT_ID, CLIENT_SECRET

    return {
        "base_url": f"{sandbox_url}/pluvo/",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ALL_SCOPES,
    }


def _pitchly_sandbox(sandbox_url: str) -> dict[str, Any]:
    from lxp_sync_sandbox.pitchly import CLIENT_ID, CLIENT_SECRET

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
            source_function="lxp_sync.sources.plusplus:plusplus_rest_source",
            check_function="lxp_sync.sources.plusplus:check_plusplus_rest",
            sandbox_args=_plusplus_rest_sandbox,
            description="PlusPlus Public REST API",
        ),
        SourceSpec(
            name="plusplus_graphql",
            source_function="lxp_sync.sources.plusplus:plusplus_graphql_source",
            check_function="lxp_sync.sources.plusplus:check_plusplus_graphql",
            sandbox_args=_plusplus_graphql_sandbox,
            description="PlusPlus GraphQL API, every connection found by introspection",
        ),
        SourceSpec(
            name="pluvo",
            source_function="lxp_sync.sources.pluvo:pluvo_source",
            check_function="lxp_sync.sources.pluvo:check_pluvo",
            sandbox_args=_pluvo_sandbox,
            description="Pluvo GraphQL API (OAuth2), every paginated connection",
        ),
        SourceSpec(
            name="pitchly",
            source_function="lxp_sync.sources.pitchly:pitchly_source",
            check_function="lxp_sync.sources.pitchly:check_pitchly",
            sandbox_args=_pitchly_sandbox,
            description="Pitchly GraphQL API, one typed table per Pitchly table",
        ),
    ]
}
