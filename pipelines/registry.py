"""The sources `lxp-sync` knows: how to build each, check it, and point it at the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config

from sources.core.auth import TokenAuth
from sources.core.http import ApiClient, RetryPolicy
from sources.plusplus import plusplus_rest_source


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
    ]
}
