"""Pluvo: every paginated root connection of an organization's GraphQL API, merged on `id`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dlt
from dlt.common.configuration.inject import with_config
from dlt.sources import DltResource

from lxp_sync.sources.core.connections import ConnectionOptions, connection_resource
from lxp_sync.sources.core.lazy import Discovery, LazySource
from lxp_sync.sources.core.selection import select_resources
from lxp_sync.sources.pluvo.helpers import (
    check_connection,
    organization_root,
    pluvo_client,
    resource_names,
)
from lxp_sync.sources.pluvo.settings import (
    CURSOR_FIELDS,
    DEFAULT_SCOPES,
    MAX_PAGE_SIZE,
    PRIMARY_KEY,
)


@dlt.source(name="pluvo", section="pluvo", _impl_cls=LazySource)
def pluvo_source(
    base_url: str = dlt.config.value,
    client_id: str = dlt.config.value,
    client_secret: str = dlt.secrets.value,
    scopes: str = DEFAULT_SCOPES,
    resources: Sequence[str] | None = None,
    page_size: int = MAX_PAGE_SIZE,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    max_pages: int | None = None,
    token_cache_path: str | None = None,
    allow_insecure_http: bool = False,
    arrow: bool = True,
) -> Discovery:
    """Users, groups, trainings, events, ...: every `paginated*` connection found by introspection.

    One OAuth2 client-credentials token serves every resource of the run (and, with
    `token_cache_path`, later runs within its lifetime). Every page is checked, and every read
    reconciled with the connection's `count` (`sources/core/completeness.py`). The token and
    the introspection wait until the resources are first needed (`sources/core/lazy.py`).
    """
    gql, _auth = pluvo_client(
        organization_root(base_url),
        client_id,
        client_secret,
        scopes,
        max_retries=max_retries,
        timeout_s=timeout_s,
        token_cache_path=token_cache_path,
        allow_insecure_http=allow_insecure_http,
    )
    options = ConnectionOptions(
        primary_key=PRIMARY_KEY,
        cursor_fields=CURSOR_FIELDS,
        page_size=page_size,
        max_page_size=MAX_PAGE_SIZE,
        max_pages=max_pages,
        arrow=arrow,
    )

    def make() -> Iterator[DltResource]:
        available = resource_names(gql.schema().connections())
        aliases = {connection.name: name for name, connection in available.items()}
        for name, connection in select_resources("pluvo", available, resources, aliases):
            yield connection_resource(gql, connection, options, name=name)

    return Discovery(make)


@with_config(sections=("sources", "pluvo"))
def check_pluvo(
    base_url: str = dlt.config.value,
    client_id: str = dlt.config.value,
    client_secret: str = dlt.secrets.value,
    scopes: str = DEFAULT_SCOPES,
    timeout_s: float = 30.0,
    token_cache_path: str | None = None,
    allow_insecure_http: bool = False,
) -> str:
    gql, auth = pluvo_client(
        organization_root(base_url),
        client_id,
        client_secret,
        scopes,
        max_retries=2,
        timeout_s=timeout_s,
        token_cache_path=token_cache_path,
        allow_insecure_http=allow_insecure_http,
    )
    try:
        return check_connection(gql, auth)
    finally:
        gql.api.close()


__all__ = ["check_pluvo", "pluvo_source"]
