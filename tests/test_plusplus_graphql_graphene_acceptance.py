"""Acceptance tests of issue 11's follow-up: the PlusPlus GraphQL source against graphene-django.

A page limit of 150 that the default `page_size` exceeds, connections inside a node
(`events { presenters }`) with their own paging, server-side cursor filters named as the vendor
names them, a type with only `created`, and `JSONString` as JSON; then the same facts on the
sandbox's variants. Written before the source handled them (they all failed then).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import table_reader
from tests.helpers import sync
from tests.support.graphene import GrapheneStandIn
from tests.test_plusplus_graphql import assert_connection_equals_truth, requests_by_connection
from tests.test_plusplus_graphql_graphene import (
    API,
    LIMIT,
    assert_flat_fields_equal_truth,
    sync_standin,
)

ROOTS = ("events", "users", "event_types", "locations", "enrollments", "tags", "comments")
BIG = {412: 163, 418: 1000}  # events with more presenters than a page holds
PARENT_KEYS = ("_parent_pk", "events_pk", "event_pk", "parent_pk")


def root_requests(standin: GrapheneStandIn) -> dict[str, list[dict[str, Any]]]:
    """GraphQL request bodies per root connection they page (introspection left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in standin.requests():
        body = entry["body"] or {}
        query = body.get("query") or ""
        match = re.search(r"\{\s*(" + "|".join(ROOTS) + r")\s*\(", query)
        if match and "__schema" not in query:
            out.setdefault(match.group(1), []).append(body)
    return out


def argument_used(body: dict[str, Any], name: str) -> bool:
    """The root connection was called with `name` (as a variable or a literal)."""
    return re.search(rf"\b{re.escape(name)}\s*:", body["query"]) is not None


def children_by_parent(workdir: Path, table: str, field: str) -> dict[int, list[dict[str, Any]]]:
    """Rows of `<table>__<field>` per parent pk: linked by dlt's `_dlt_parent_id`, or by a
    parent-key column."""
    read = table_reader(workdir, API)
    parents = read(table)
    children = read(f"{table}__{field}")
    by_dlt_id = {row["_dlt_id"]: row["pk"] for row in parents}
    out: dict[int, list[dict[str, Any]]] = {}
    for child in children:
        parent = by_dlt_id.get(child.get("_dlt_parent_id"))
        if parent is None:
            parent = next((child[k] for k in PARENT_KEYS if child.get(k) is not None), None)
        assert parent is not None, f"{table}__{field}: a row without its parent: {child}"
        out.setdefault(parent, []).append(child)
    return out


def test_the_default_page_size_is_lowered_to_the_limit_the_server_names(
    standin: GrapheneStandIn, workdir: Path
) -> None:
    # `Requesting 300 records on the `events` connection exceeds the `first` limit of 150
    # records.` must not end the run: the page size is lowered, remembered, logged once
    standin.clear_requests()
    sync_standin(standin, workdir, resources=["events", "users"])  # default page_size: 300

    for connection in ("events", "users"):
        assert_flat_fields_equal_truth(standin, workdir, connection)
    for connection, bodies in root_requests(standin).items():
        sizes = [b.get("variables", {}).get("first") for b in bodies]
        refused = [size for size in sizes if size is not None and size > LIMIT]
        assert len(refused) <= 1, f"{connection}: the refused size is remembered: {sizes}"


def test_nested_connections_load_as_child_tables_following_their_own_pages(
    standin: GrapheneStandIn, workdir: Path
) -> None:
    sync_standin(standin, workdir, page_size=LIMIT, resources=["events"])

    truth = standin.truth("events")
    names = {row["pk"]: row["name"] for row in standin.truth("users")}
    assert_flat_fields_equal_truth(standin, workdir, "events")
    for field in ("presenters", "tags"):
        loaded = children_by_parent(workdir, "events", field)
        for row in truth:
            want = [item["pk"] for item in row[field]]
            got = [child["pk"] for child in loaded.get(row["pk"], [])]
            assert sorted(got) == sorted(want), f"events {row['pk']}.{field}"
            if field == "presenters":
                for child in loaded.get(row["pk"], []):
                    if "name" in child:
                        assert child["name"] == names[child["pk"]]
    presenters = children_by_parent(workdir, "events", "presenters")
    assert {pk: len(presenters[pk]) for pk in BIG} == BIG


def test_incremental_runs_filter_on_the_server_with_the_filters_it_names(
    fresh_standin: GrapheneStandIn, workdir: Path
) -> None:
    # events: `modified_after: DateTime`; users: `modified__gte: DateTime` (django-filter's
    # generated name); enrollments only have `created__gte`, which is not their cursor
    standin = fresh_standin
    connections = ["events", "users", "enrollments"]
    sync_standin(standin, workdir, page_size=LIMIT, resources=connections)
    for connection in connections:
        standin.mutate(entity=connection, update=4, delete=2)
    standin.clear_requests()
    sync_standin(standin, workdir, page_size=LIMIT, resources=connections)

    for connection in connections:
        assert_flat_fields_equal_truth(standin, workdir, connection)
    requests = root_requests(standin)
    assert all(argument_used(b, "modified_after") for b in requests["events"])
    assert all(argument_used(b, "modified__gte") for b in requests["users"])
    assert not any(argument_used(b, "created__gte") for b in requests["enrollments"])
    assert len(requests["events"]) == 1 and len(requests["users"]) == 1  # only what changed


def test_a_soft_delete_on_a_type_with_only_created_reaches_the_warehouse(
    fresh_standin: GrapheneStandIn, workdir: Path
) -> None:
    # comments have `created` but no `modified`: deleting or editing one bumps no timestamp
    standin = fresh_standin
    sync_standin(standin, workdir, page_size=LIMIT, resources=["comments"])
    changed = standin.mutate(entity="comments", update=3, delete=3)
    sync_standin(standin, workdir, page_size=LIMIT, resources=["comments"])

    assert_flat_fields_equal_truth(standin, workdir, "comments")
    loaded = {row["pk"]: row for row in table_reader(workdir, API)("comments")}
    assert all(loaded[pk]["is_deleted"] for pk in changed["deleted"])


def test_with_incremental_by_created_the_sweep_of_every_run_flags_the_soft_deletes(
    fresh_standin: GrapheneStandIn, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # read by `created`, a soft delete reaches the warehouse through the deletes sweep (here
    # every run; `reconcile_every` says how often), an edit only with a full refresh
    standin = fresh_standin
    monkeypatch.setenv("SOURCES__PLUSPLUS_GRAPHQL__RECONCILE_EVERY", "1")
    args = {"page_size": LIMIT, "resources": ["comments"], "incremental_by_created": True}
    sync_standin(standin, workdir, **args)
    changed = standin.mutate(entity="comments", update=3, delete=3)
    standin.clear_requests()
    sync_standin(standin, workdir, **args)

    loaded = {row["pk"]: row for row in table_reader(workdir, API)("comments")}
    truth = {row["pk"]: row for row in standin.truth("comments")}
    assert {pk: row["is_deleted"] for pk, row in loaded.items()} == {
        pk: row["is_deleted"] for pk, row in truth.items()
    }
    assert any(loaded[pk]["is_deleted"] for pk in changed["deleted"])
    edited = [pk for pk in changed["updated"] if pk not in changed["deleted"]]
    assert all(loaded[pk]["body"] != truth[pk]["body"] for pk in edited), "no cursor sees edits"


def test_json_string_fields_land_as_json_columns(standin: GrapheneStandIn, workdir: Path) -> None:
    pipeline = sync_standin(standin, workdir, page_size=LIMIT, resources=["events", "event_types"])

    schema = pipeline.default_schema
    assert schema.get_table_columns("events")["custom_fields"]["data_type"] == "json"
    assert schema.get_table_columns("event_types")["settings"]["data_type"] == "json"


# -- the same facts on the sandbox's variants (faster; `/_sandbox/config`)


def test_sandbox_page_limit_error_lowers_the_page_size(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    fresh_sandbox.configure(api=API, page_limit=150, page_size_mode="error")
    sync(API, fresh_sandbox, workdir, resources=["events"])  # default page_size: 300

    assert_connection_equals_truth(fresh_sandbox, workdir, "events")


def test_sandbox_nested_connections_load_every_presenter(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    fresh_sandbox.configure(api=API, nested_connections=True, long_lists=[301, 350])
    sync(API, fresh_sandbox, workdir, resources=["events"])

    assert_connection_equals_truth(fresh_sandbox, workdir, "events")  # events__presenters too


def test_sandbox_renamed_modified_filter_is_used_on_the_server(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api=API, filter_names={"modified_gte": "modified_after"})
    sync(API, sandbox, workdir, resources=["events"])
    sandbox.mutate(api=API, entity="events", update=3)
    sandbox.clear_requests()
    sync(API, sandbox, workdir, resources=["events"])

    assert_connection_equals_truth(sandbox, workdir, "events")
    pages = requests_by_connection(sandbox)["events"]
    assert len(pages) == 1 and "modified_after" in pages[0]


def test_sandbox_soft_delete_without_a_timestamp_reaches_the_warehouse(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api=API, created_only=True)
    sync(API, sandbox, workdir, resources=["comments"])
    sandbox.mutate(api=API, entity="comments", delete=3, update=2)
    sync(API, sandbox, workdir, resources=["comments"])

    assert_connection_equals_truth(sandbox, workdir, "comments")
