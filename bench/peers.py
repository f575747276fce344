"""What a user would write instead of lxp-sync: a dlt `rest_api` config and an Airbyte manifest.

Both describe the same six PlusPlus REST endpoints the connector reads: page / page_size (100),
rows under `data`, a bearer token, merge on `public_id`, and `modified_gte` for content items.
"""

from __future__ import annotations

from typing import Any

ENTITIES = ["users", "groups", "articles", "content_items", "assignments", "enrollments"]
PAGE_SIZE = 100
# The entities the connector reads with a server-side cursor (`<cursor>_gte`).
CURSOR_ENTITIES = ["content_items", "assignments", "enrollments"]
INITIAL_MODIFIED = "2000-01-01T00:00:00+00:00"


def rest_api_config(base_url: str, token: str) -> dict[str, Any]:
    """dlt's `rest_api_source` config, written the way its documentation shows.

    dlt's page-number paginator reads `total_path` as a number of *pages*; the API's
    `meta.total_count` counts rows, so it cannot be used. Without a total the paginator stops at
    the first empty page: one request per resource more than strictly needed.
    """
    resources: list[Any] = []
    for name in ENTITIES:
        endpoint: dict[str, Any] = {"path": f"{name}/"}
        if name == "content_items":
            endpoint["params"] = {
                "page_size": PAGE_SIZE,
                "modified_gte": {
                    "type": "incremental",
                    "cursor_path": "modified",
                    "initial_value": INITIAL_MODIFIED,
                },
            }
        resources.append({"name": name, "endpoint": endpoint})
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": token},
            "paginator": {
                "type": "page_number",
                "base_page": 1,
                "page_param": "page",
                "total_path": None,
                "stop_after_empty_page": True,
            },
        },
        "resource_defaults": {
            "primary_key": "public_id",
            "write_disposition": "merge",
            "endpoint": {"params": {"page_size": PAGE_SIZE}, "data_selector": "data"},
        },
        "resources": resources,
    }


def json_schema(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema for an Airbyte stream, from sample rows (what a manifest author writes)."""
    kinds: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            kinds.setdefault(key, set()).add(_json_type(value))
    properties = {}
    for key, seen in kinds.items():
        seen.discard("null")
        if seen == {"integer", "number"}:
            seen = {"number"}
        kind = seen.pop() if len(seen) == 1 else "string"
        properties[key] = {"type": ["null", kind]}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def airbyte_manifest(base_url: str, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A low-code (declarative) manifest for the same endpoints; `version` is set by the runner.

    `PageIncrement` stops at the first short page. Content items carry a `DatetimeBasedCursor` on
    `modified` sent as `modified_gte`, as a manifest author would write it.
    """
    requester = {
        "type": "HttpRequester",
        "url_base": base_url.rstrip("/") + "/",
        "http_method": "GET",
        "authenticator": {"type": "BearerAuthenticator", "api_token": "{{ config['api_token'] }}"},
    }
    paginator = {
        "type": "DefaultPaginator",
        "page_token_option": {
            "type": "RequestOption",
            "inject_into": "request_parameter",
            "field_name": "page",
        },
        "page_size_option": {
            "type": "RequestOption",
            "inject_into": "request_parameter",
            "field_name": "page_size",
        },
        "pagination_strategy": {
            "type": "PageIncrement",
            "page_size": PAGE_SIZE,
            "start_from_page": 1,
            "inject_on_first_request": True,
        },
    }
    streams = []
    for name in ENTITIES:
        stream: dict[str, Any] = {
            "type": "DeclarativeStream",
            "name": name,
            "primary_key": ["public_id"],
            "retriever": {
                "type": "SimpleRetriever",
                "requester": {**requester, "path": f"{name}/"},
                "record_selector": {
                    "type": "RecordSelector",
                    "extractor": {"type": "DpathExtractor", "field_path": ["data"]},
                },
                "paginator": paginator,
            },
            "schema_loader": {"type": "InlineSchemaLoader", "schema": json_schema(samples[name])},
        }
        if name == "content_items":
            stream["incremental_sync"] = {
                "type": "DatetimeBasedCursor",
                "cursor_field": "modified",
                "datetime_format": "%Y-%m-%dT%H:%M:%S%z",
                "cursor_datetime_formats": ["%Y-%m-%dT%H:%M:%S%z"],
                "start_datetime": {
                    "type": "MinMaxDatetime",
                    "datetime": INITIAL_MODIFIED,
                    "datetime_format": "%Y-%m-%dT%H:%M:%S%z",
                },
                "start_time_option": {
                    "type": "RequestOption",
                    "inject_into": "request_parameter",
                    "field_name": "modified_gte",
                },
            }
        streams.append(stream)
    return {
        "type": "DeclarativeSource",
        "check": {"type": "CheckStream", "stream_names": ["users"]},
        "streams": streams,
        "spec": {
            "type": "Spec",
            "connection_specification": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "required": ["api_token"],
                "properties": {"api_token": {"type": "string", "airbyte_secret": True}},
            },
        },
    }
