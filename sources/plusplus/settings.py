"""PlusPlus endpoints, page sizes and cursors, as data: a new entity is a line here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REST_MAX_PAGE_SIZE = 100
REST_PRIMARY_KEY = "public_id"

# Column hints by type. dlt writes the column name into a hint dict, so every column gets a copy
# (see `columns()`), never one of these shared dicts.
TIMESTAMP = {"data_type": "timestamp", "timezone": True, "nullable": True}
DATE = {"data_type": "date", "nullable": True}
DOUBLE = {"data_type": "double", "nullable": True}
BIGINT = {"data_type": "bigint", "nullable": True}
TEXT = {"data_type": "text", "nullable": True}
BOOL = {"data_type": "bool", "nullable": True}


def columns(hints: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fresh column hint dicts for one resource."""
    return {name: dict(hint) for name, hint in hints.items()}


@dataclass(frozen=True)
class RestEndpoint:
    """One list endpoint of the PlusPlus Public REST API."""

    path: str
    # The cursor the API filters on (`<cursor>_gte`), or None.
    server_cursor: str | None = None
    # A cursor filtered on our side when the API has no filter for it.
    client_cursor: str | None = None
    # Rows whose state changes later without a timestamp: re-read a window back from the cursor.
    refresh_window: bool = False
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    # list fields (child tables `<table>__<field>`): field -> the columns of an item
    lists: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


_PERSON = {"public_id": TEXT, "name": TEXT, "email": TEXT}


def _nested(prefix: str, columns: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{prefix}__{name}": hint for name, hint in columns.items()}


_CONTENT = {
    "public_id": TEXT,
    "name": TEXT,
    "content_type": TEXT,
    "description": TEXT,
    "is_archived": BOOL,
    "is_hidden": BOOL,
    "is_completable": BOOL,
    "is_self_assignable": BOOL,
    "duration_minutes": BIGINT,
    "avg_feedback_rating": DOUBLE,
    "total_assignments": BIGINT,
    "completed_assignments_count": BIGINT,
    "created": TIMESTAMP,
    "modified": TIMESTAMP,
}

REST_ENDPOINTS: dict[str, RestEndpoint] = {
    "users": RestEndpoint(
        "users/",
        columns={
            "public_id": TEXT,
            "email": TEXT,
            "name": TEXT,
            "role": TEXT,
            "employee_id": TEXT,
            "is_active": BOOL,
            **_nested("manager", _PERSON),
            "date_joined": TIMESTAMP,
        },
    ),
    "groups": RestEndpoint(
        "groups/",
        client_cursor="modified",
        columns={
            "public_id": TEXT,
            "name": TEXT,
            "source": TEXT,
            "member_count": BIGINT,
            "created": TIMESTAMP,
            "modified": TIMESTAMP,
        },
    ),
    "articles": RestEndpoint("articles/", client_cursor="modified", columns=dict(_CONTENT)),
    "content_items": RestEndpoint(
        "content_items/",
        server_cursor="modified",
        columns=dict(_CONTENT),
        lists={"groups": {"public_id": TEXT, "name": TEXT}},
    ),
    "assignments": RestEndpoint(
        "assignments/",
        server_cursor="created",
        refresh_window=True,
        columns={
            "public_id": TEXT,
            **_nested("user", _PERSON),
            **_nested("content_item", {"public_id": TEXT, "name": TEXT, "content_type": TEXT}),
            "state": TEXT,
            "progress": DOUBLE,
            "score": DOUBLE,
            "is_success": BOOL,
            "due_date": DATE,
            "is_overdue": BOOL,
            "started_at": TIMESTAMP,
            "completed_datetime": TIMESTAMP,
            "dropped_at": TIMESTAMP,
            "exempted_at": TIMESTAMP,
            "expires_at": TIMESTAMP,
            "feedback_rating": DOUBLE,
            "attempt": BIGINT,
            "created": TIMESTAMP,
        },
    ),
    "enrollments": RestEndpoint(
        "enrollments/",
        server_cursor="created",
        refresh_window=True,
        columns={
            "public_id": TEXT,
            **_nested("user", _PERSON),
            **_nested("event", {"public_id": TEXT, "name": TEXT}),
            "status": TEXT,
            "attendance_method": TEXT,
            "checkin_datetime": TIMESTAMP,
            "state": TEXT,
            "created": TIMESTAMP,
        },
    ),
}


# -- PlusPlus GraphQL: every root relay connection of the live schema, found by introspection.

GRAPHQL_MAX_PAGE_SIZE = 300
GRAPHQL_PRIMARY_KEY = "pk"
# Cursor fields to try on each node type, in order (the first DateTime one it has is used).
GRAPHQL_CURSOR_FIELDS = ("modified", "created")
# The server-side filter of each cursor as the document names it, taken first where a
# connection declares it; other names are found by introspection (`core.filters`), and the
# connections without any are filtered client-side by dlt's incremental.
GRAPHQL_SERVER_FILTERS = {"modified": "modified_gte", "created": "created_gte"}
# Every PlusPlus type has it; with `hard_delete`, rows that have it true leave the warehouse.
GRAPHQL_DELETED_FIELD = "is_deleted"
