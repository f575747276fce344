"""Pitchly: workspaces, tables and fields, and every Pitchly table as a typed warehouse table."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from lxp_sync.sources.core.discovery import ReadPlan, with_read_plan
from lxp_sync.sources.core.errors import ConfigurationError
from lxp_sync.sources.core.graphql import Connection, GraphQLClient
from lxp_sync.sources.core.lazy import Discovery, LazySource
from lxp_sync.sources.core.selection import select_resources
from lxp_sync.sources.pitchly.helpers import (
    SOURCE,
    Catalog,
    as_list,
    check_connection,
    fetch_catalog,
    graphql_client,
    make_auth,
    table_settings,
)
from lxp_sync.sources.pitchly.naming import column_hints, column_layout
from lxp_sync.sources.pitchly.records import RecordsOptions, TableNames, TablePlan, records_resource
from lxp_sync.sources.pitchly.settings import (
    CREATED_AT,
    GRAPHQL_URL,
    JWT_LIFETIME_S,
    MAX_PAGE_SIZE,
    RECORDS_CONNECTION,
    TOKEN_URL,
    UPDATED_AT,
)

log = logging.getLogger("lxp_sync")


@dlt.source(name="pitchly", section="pitchly", _impl_cls=LazySource)
def pitchly_source(
    client_id: str = dlt.config.value,
    client_secret: TSecretStrValue = dlt.secrets.value,
    auth_mode: str = "jwt",
    organization_id: str | None = None,
    refresh_token: TSecretStrValue | None = None,
    refresh_token_path: str | None = None,
    workspace_ids: Sequence[str] | None = None,
    permissions: Sequence[str] | None = None,
    jwt_lifetime_s: int = JWT_LIFETIME_S,
    clock_offset_s: float = 0.0,
    graphql_url: str = GRAPHQL_URL,
    token_url: str = TOKEN_URL,
    resources: Sequence[str] | None = None,
    tables: Mapping[str, Any] | None = None,
    page_size: int = MAX_PAGE_SIZE,
    arrow: bool = True,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    max_pages: int | None = None,
    windows: int = 1,
    allow_insecure_http: bool = False,
) -> Discovery:
    """The `workspaces`, `tables` and `fields` of the organization, and one resource per table.

    A table's resource is named `<workspace>__<table>` and loads one column per field, typed from
    the field type; it is read incrementally on its Updated At field where it has one, else in
    full (records deleted in Pitchly leave the warehouse). Tables not marked ready are skipped
    with a warning. `tables` (keyed by table id) renames, excludes or filters tables. The token
    and the catalog wait until the resources are first needed (`sources/core/lazy.py`): making
    the source sends no request and spends no refresh token.
    """
    workspace_ids = as_list(workspace_ids)
    auth = make_auth(
        auth_mode,
        client_id,
        client_secret,
        token_url=token_url,
        organization_id=organization_id,
        refresh_token=refresh_token,
        refresh_token_path=refresh_token_path,
        workspace_ids=workspace_ids,
        permissions=as_list(permissions),
        jwt_lifetime_s=jwt_lifetime_s,
        clock_offset_s=clock_offset_s,
        timeout_s=timeout_s,
        allow_insecure_http=allow_insecure_http,
    )
    gql = graphql_client(
        graphql_url,
        auth,
        max_retries=max_retries,
        timeout_s=timeout_s,
        allow_insecure_http=allow_insecure_http,
    )
    options = RecordsOptions(
        page_size=max(1, min(page_size, MAX_PAGE_SIZE)),
        max_pages=max_pages,
        arrow=arrow,
        windows=max(1, windows),
    )

    def make() -> Iterator[DltResource]:
        catalog = fetch_catalog(gql, workspace_ids, auth_mode)
        settings = table_settings(tables, catalog)
        plans = table_plans(catalog, settings)
        names = TableNames(
            {plan.table_id: plan.default_name for plan in plans},
            {tid: s.name for tid, s in settings.items() if s.name},
        )
        available: dict[str, DltResource | TablePlan] = {
            **metadata_resources(catalog, plans, names),
            **{plan.resource_name: plan for plan in plans},
        }
        by_id = {plan.table_id: plan.resource_name for plan in plans}
        chosen = select_resources(SOURCE, available, resources, aliases=by_id)
        connection = None
        for _, item in chosen:
            if not isinstance(item, TablePlan):
                yield item
                continue
            connection = connection or records_connection(gql)
            yield records_resource(gql, connection, item, options, names)

    return Discovery(make)


def records_connection(gql: GraphQLClient) -> Connection:
    connection = gql.schema().connections().get(RECORDS_CONNECTION)
    if connection is None:
        raise ConfigurationError(
            f"the API has no `{RECORDS_CONNECTION}` connection", resource=SOURCE
        )
    return connection


def table_plans(catalog: Catalog, settings: Mapping[str, Any]) -> list[TablePlan]:
    """A plan per table to load: ready, not excluded; a table not ready is skipped, warned."""
    fields_by_id = catalog.fields_by_id
    plans = []
    for table in catalog.tables:
        table_id = table["id"]
        setting = settings.get(table_id)
        if setting is not None and not setting.include:
            continue
        if not table.get("isReady", True):
            log.warning(
                "%s: skipped table %s: it is not marked ready in Pitchly (an admin can mark it)",
                SOURCE,
                catalog.label(table),
            )
            continue
        fields = catalog.fields[table_id]
        layout = column_layout(fields, fields_by_id, setting.columns if setting else None)
        default = catalog.default_name(table)
        plans.append(
            TablePlan(
                table_id=table_id,
                label=catalog.label(table),
                default_name=default,
                resource_name=setting.name if setting and setting.name else default,
                layout=layout,
                hints=column_hints(layout),
                updated=_stamp(fields, layout, UPDATED_AT),
                created=_stamp(fields, layout, CREATED_AT),
                filter=setting.filter if setting else None,
            )
        )
    return plans


def _stamp(
    fields: list[dict[str, Any]], layout: Mapping[str, Any], kind: str
) -> tuple[str, str] | None:
    """(field id, column) of the table's first field of type `kind` (Created / Updated At)."""
    found = next((f for f in fields if f.get("type") == kind), None)
    return None if found is None else (found["id"], layout[found["id"]][0].name)


def metadata_resources(
    catalog: Catalog, plans: list[TablePlan], names: TableNames
) -> dict[str, DltResource]:
    """`workspaces`, `tables` (with the warehouse table of each) and `fields` (with columns)."""
    layouts = {plan.table_id: plan.layout for plan in plans}

    def workspaces() -> Iterator[list[dict[str, Any]]]:
        yield catalog.workspaces

    def tables() -> Iterator[list[dict[str, Any]]]:
        warehouse = names.names()
        yield [{**t, "warehouseTable": warehouse.get(t["id"])} for t in catalog.tables]

    def fields() -> Iterator[list[dict[str, Any]]]:
        rows = []
        for table_id, table_fields in catalog.fields.items():
            layout = layouts.get(table_id, {})
            for f in table_fields:
                columns = [c.name for c in layout.get(f["id"], ())] or None
                rows.append({**f, "columns": columns})
        yield rows

    json_columns = {"options": {"data_type": "json"}, "columns": {"data_type": "json"}}
    resources = {
        "workspaces": dlt.resource(
            workspaces, name="workspaces", primary_key="id", write_disposition="replace"
        ),
        "tables": dlt.resource(
            tables,
            name="tables",
            primary_key="id",
            write_disposition="replace",
            columns={"warehouse_table": {"data_type": "text", "nullable": True}},
        ),
        "fields": dlt.resource(
            fields,
            name="fields",
            primary_key="id",
            write_disposition="replace",
            columns=json_columns,
        ),
    }
    counts = {
        "workspaces": len(catalog.workspaces),
        "tables": len(catalog.tables),
        "fields": sum(len(table_fields) for table_fields in catalog.fields.values()),
    }
    for name, resource in resources.items():  # read with the catalog, when the source is made
        with_read_plan(resource, ReadPlan(replace=True, total=counts[name]))
    return resources


@with_config(sections=("sources", "pitchly"))
def check_pitchly(
    client_id: str = dlt.config.value,
    client_secret: TSecretStrValue = dlt.secrets.value,
    auth_mode: str = "jwt",
    organization_id: str | None = None,
    refresh_token: TSecretStrValue | None = None,
    refresh_token_path: str | None = None,
    workspace_ids: Sequence[str] | None = None,
    permissions: Sequence[str] | None = None,
    jwt_lifetime_s: int = JWT_LIFETIME_S,
    clock_offset_s: float = 0.0,
    graphql_url: str = GRAPHQL_URL,
    token_url: str = TOKEN_URL,
    timeout_s: float = 30.0,
    allow_insecure_http: bool = False,
) -> str:
    """`lxp-sync check pitchly`: authenticate as configured and read the catalog."""
    workspace_ids = as_list(workspace_ids)
    auth = make_auth(
        auth_mode,
        client_id,
        client_secret,
        token_url=token_url,
        organization_id=organization_id,
        refresh_token=refresh_token,
        refresh_token_path=refresh_token_path,
        workspace_ids=workspace_ids,
        permissions=as_list(permissions),
        jwt_lifetime_s=jwt_lifetime_s,
        clock_offset_s=clock_offset_s,
        timeout_s=timeout_s,
        allow_insecure_http=allow_insecure_http,
    )
    gql = graphql_client(
        graphql_url,
        auth,
        max_retries=2,
        timeout_s=timeout_s,
        allow_insecure_http=allow_insecure_http,
    )
    try:
        return check_connection(gql, auth_mode, workspace_ids)
    finally:
        gql.api.close()


__all__ = ["check_pitchly", "pitchly_source"]
