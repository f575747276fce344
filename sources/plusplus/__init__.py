"""PlusPlus sources: the Public REST API (`plusplus_rest`) and GraphQL (`plusplus_graphql`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config
from dlt.sources import DltResource

from lxp_sync.sources.core.arrow import batched_arrow, with_load_id, with_row_ids
from lxp_sync.sources.core.arrow_children import arrow_lists, child_tables, with_links
from lxp_sync.sources.core.auth import TokenAuth
from lxp_sync.sources.core.connections import connection_resource
from lxp_sync.sources.core.discovery import ReadPlan, with_read_plan
from lxp_sync.sources.core.http import ApiClient, RetryPolicy
from lxp_sync.sources.core.lazy import Discovery, LazySource
from lxp_sync.sources.core.limits import PageSizes
from lxp_sync.sources.core.paging import parse_datetimes
from lxp_sync.sources.core.secrets import require_credential
from lxp_sync.sources.core.selection import select_resources
from lxp_sync.sources.core.sweep import KeyListing, with_listing
from lxp_sync.sources.core.urls import require_https
from lxp_sync.sources.plusplus.graphql import connection_options, graphql_client
from lxp_sync.sources.plusplus.rest import (
    cursor_params,
    drop_unchanged,
    read_pages,
    yields_each_key_once,
)
from lxp_sync.sources.plusplus.settings import (
    GRAPHQL_MAX_PAGE_SIZE,
    REST_ENDPOINTS,
    REST_MAX_PAGE_SIZE,
    REST_PRIMARY_KEY,
    RestEndpoint,
    columns,
)


@dlt.source(name="plusplus_rest", section="plusplus_rest")
def plusplus_rest_source(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    resources: Sequence[str] | None = None,
    page_size: int = REST_MAX_PAGE_SIZE,
    concurrency: int = 4,
    refresh_window_days: float = 14.0,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    max_pages: int | None = None,
    allow_insecure_http: bool = False,
    arrow: bool = True,
) -> Iterator[DltResource]:
    """Users, groups, articles, content items, assignments and enrollments, merged on `public_id`.

    Every table goes to dlt as Arrow tables, child tables (`content_items__groups`) included
    (`arrow`; README: "Arrow"); with `arrow = false`, as rows through dlt's normalizer.
    """
    selected = select_resources("plusplus_rest", REST_ENDPOINTS, resources)
    client = ApiClient(
        _rest_root(base_url, allow_insecure_http),
        _rest_auth(api_token),
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=max_retries),
        max_connections=max(4, concurrency * 2),
    )
    page_size = max(1, min(page_size, REST_MAX_PAGE_SIZE))
    sizes = PageSizes(page_size)  # lowered, for every list, when the API refuses a size
    for name, endpoint in selected:
        yield _rest_resource(
            client,
            name,
            endpoint,
            page_size,
            concurrency,
            refresh_window_days,
            max_pages,
            sizes,
            arrow,
        )


def _rest_root(base_url: str, allow_insecure_http: bool) -> str:
    """The REST API root with one trailing slash, after the transport check."""
    url = require_https(
        base_url,
        setting="base_url",
        source="plusplus_rest",
        allow_insecure_http=allow_insecure_http,
    )
    return url.strip().rstrip("/") + "/"


def _rest_auth(api_token: str) -> TokenAuth:
    return TokenAuth(require_credential(api_token, setting="api_token", source="plusplus_rest"))


def _rest_resource(
    client: ApiClient,
    name: str,
    endpoint: RestEndpoint,
    page_size: int,
    concurrency: int,
    refresh_window_days: float,
    max_pages: int | None,
    sizes: PageSizes,
    arrow: bool,
) -> DltResource:
    resource = f"plusplus_rest.{name}"
    cursor = endpoint.server_cursor or endpoint.client_cursor
    hints = columns(endpoint.columns)
    nested_hints = {field: {"columns": with_links(c)} for field, c in endpoint.lists.items()}
    tables = child_tables(name, nested_hints)
    arrow, children = arrow_lists(tables, arrow)
    # the deletes sweep: the cheapest full listing the API has (every row, the largest pages)
    listing = KeyListing(
        resource,
        REST_PRIMARY_KEY,
        lambda: read_pages(
            client,
            f"{resource} keys",
            endpoint,
            page_size=REST_MAX_PAGE_SIZE,
            concurrency=concurrency,
            sizes=sizes,
        ),
        table=name,
        client=client,
    )
    if cursor and not endpoint.refresh_window:
        # a row read twice in one run (the list moved) lands once: the newest copy
        hints[cursor] = {**hints[cursor], "dedup_sort": "desc"}
    lag = refresh_window_days * 86400 if endpoint.refresh_window else None
    plan = ReadPlan(
        cursor=cursor,
        server_filter=f"{endpoint.server_cursor}_gte" if endpoint.server_cursor else None,
        note=f"re-reads the rows created in the {refresh_window_days:g} days before the cursor "
        "(refresh_window_days), keeping those that changed"
        if endpoint.refresh_window
        else "",
    )

    def read(
        updated: dlt.sources.incremental[Any] | None = (
            dlt.sources.incremental(cursor, lag=lag) if cursor else None
        ),
    ) -> Iterator[list[dict[str, Any]]]:
        params = cursor_params(endpoint, updated.start_value if updated else None)
        plan.total = None
        pages = read_pages(
            client,
            resource,
            endpoint,
            page_size=page_size,
            concurrency=concurrency,
            params=params,
            max_pages=max_pages,
            started=datetime.now(UTC),
            counted=plan.counted,
            sizes=sizes,
        )
        if endpoint.refresh_window and cursor:
            window = timedelta(days=refresh_window_days)
            pages = drop_unchanged(pages, dlt.current.resource_state(), cursor, window)
        if arrow:  # timestamps by the core's parser
            yield from batched_arrow(pages, hints, row_ids=children is not None, children=children)
        else:
            stamps = [c for c, hint in hints.items() if hint["data_type"] == "timestamp"]
            for rows in pages:
                parse_datetimes(rows, *stamps, strict=False)  # the core's rules, not dlt's
                if cursor:
                    parse_datetimes(rows, cursor)
                yield rows

    # a read that yields each key once leaves the load nothing to deduplicate (no sort of the
    # staged rows by key: less time and memory in the warehouse)
    once = yields_each_key_once(endpoint)
    made = dlt.resource(
        read,
        name=name,
        primary_key=REST_PRIMARY_KEY,
        write_disposition={"disposition": "merge", "deduplicated": True} if once else "merge",
        columns=(with_row_ids(hints) if children else with_load_id(hints)) if arrow else hints,
        nested_hints=None if arrow else nested_hints or None,
        parallelized=True,
    )
    if children is not None:
        children.attach(made, name)
    return with_read_plan(with_listing(made, listing), plan)


@dlt.source(name="plusplus_graphql", section="plusplus_graphql", _impl_cls=LazySource)
def plusplus_graphql_source(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    resources: Sequence[str] | None = None,
    page_size: int = GRAPHQL_MAX_PAGE_SIZE,
    hard_delete: bool = False,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    max_pages: int | None = None,
    allow_insecure_http: bool = False,
    incremental_by_created: bool = False,
    arrow: bool = True,
) -> Discovery:
    """Every root relay connection of the live schema (or `resources`), merged on `pk`.

    Fields come from introspection, so a field PlusPlus adds reaches the warehouse as a new
    column. Rows with `is_deleted` stay as soft deletes, or leave the tables with `hard_delete`.
    A type with `created` but no `modified` is read in full every run (an edit or soft delete
    changes no timestamp), or by `created` with `incremental_by_created`. The schema is
    introspected when the resources are first needed (`sources/core/lazy.py`), not here.
    Tables without JSON or Decimal fields go to dlt as Arrow tables, child tables included
    (`arrow`; README: "Arrow").
    """
    gql = graphql_client(
        base_url,
        api_token,
        timeout_s=timeout_s,
        max_retries=max_retries,
        allow_insecure_http=allow_insecure_http,
    )
    options = connection_options(
        page_size=page_size,
        hard_delete=hard_delete,
        max_pages=max_pages,
        incremental_by_created=incremental_by_created,
        arrow=arrow,
    )

    def make() -> Iterator[DltResource]:
        for _, connection in select_resources(
            "plusplus_graphql", gql.schema().connections(), resources
        ):
            yield connection_resource(gql, connection, options)

    return Discovery(make)


@with_config(sections=("sources", "plusplus_rest"))
def check_plusplus_rest(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    timeout_s: float = 30.0,
    allow_insecure_http: bool = False,
) -> str:
    with ApiClient(
        _rest_root(base_url, allow_insecure_http),
        _rest_auth(api_token),
        timeout=timeout_s,
        retry=RetryPolicy(max_retries=2),
    ) as client:
        body = client.get_json("users/", params={"page_size": 1}, resource="plusplus_rest.users")
    total = body.get("meta", {}).get("total_count")
    return f"token accepted; {total} users visible"


@with_config(sections=("sources", "plusplus_graphql"))
def check_plusplus_graphql(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    timeout_s: float = 30.0,
    allow_insecure_http: bool = False,
) -> str:
    gql = graphql_client(
        base_url,
        api_token,
        timeout_s=timeout_s,
        max_retries=2,
        allow_insecure_http=allow_insecure_http,
    )
    try:
        data = gql.execute("{ __typename }", resource="plusplus_graphql")
    finally:
        gql.api.close()
    return f"token accepted; query root {data.get('__typename')}"


__all__ = [
    "check_plusplus_graphql",
    "check_plusplus_rest",
    "plusplus_graphql_source",
    "plusplus_rest_source",
]
