"""Connections inside a node, server-side filters by their names, and how each connection reads.

Against the sandbox's variants (`nested_connections`, `long_lists`, `filter_names`) and the
graphene-django stand-in; the acceptance tests of the same facts are in
`test_plusplus_graphql_graphene_acceptance.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lxp_sync.pipelines.errors import explain
from lxp_sync.sources.core.connections import describe_connections
from lxp_sync.sources.core.filters import cursor_filter
from lxp_sync.sources.plusplus.graphql import connection_options, graphql_client
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import table_reader
from tests.helpers import sync
from tests.support.graphene import API_TOKEN, GrapheneStandIn
from tests.test_plusplus_graphql import assert_connection_equals_truth

API = "plusplus_graphql"


@pytest.mark.parametrize(
    ("args", "cursor", "want"),
    [
        ({"modified_gte": "DateTime"}, "modified", "modified_gte"),
        ({"modified__gte": "DateTime", "modified__lte": "DateTime"}, "modified", "modified__gte"),
        ({"modified_after": "DateTime", "modified_before": "DateTime"}, "modified", "modified_after"),
        ({"modifiedGte": "DateTime!"}, "modified", "modifiedGte"),
        ({"updated_since": "DateTime"}, "updatedAt", "updated_since"),
        ({"updatedAt_gte": "DateTime", "updatedAt_after": "DateTime"}, "updatedAt", "updatedAt_gte"),
        ({"since_modified": "DateTime"}, "modified", "since_modified"),
        # never "before", "at most", "strictly after", another field, another type, a list
        ({"modified_lte": "DateTime", "modified_before": "DateTime"}, "modified", None),
        ({"modified_gt": "DateTime", "modified": "DateTime"}, "modified", None),
        ({"created__gte": "DateTime", "starts_at_after": "DateTime"}, "modified", None),
        ({"modified_gte": "String", "modified_after": "[DateTime]"}, "modified", None),
        ({"modified_until": "DateTime", "max_modified": "DateTime"}, "modified", None),
    ],
)  # fmt: skip
def test_a_server_side_cursor_filter_is_an_at_or_after_argument_of_the_cursors_type(
    args: dict[str, str], cursor: str, want: str | None
) -> None:
    assert cursor_filter(args, cursor, "DateTime") == want


def test_the_configured_name_comes_first_when_the_connection_has_it() -> None:
    args = {"modified_after": "DateTime", "modified_gte": "DateTime"}
    assert cursor_filter(args, "modified", "DateTime", "modified_gte") == "modified_gte"
    assert cursor_filter({"modified_after": "DateTime"}, "modified", "DateTime", "x") == (
        "modified_after"
    )


def test_each_connection_says_how_it_reads_on_the_stand_in(standin: GrapheneStandIn) -> None:
    gql = graphql_client(standin.graphql_url, API_TOKEN, max_retries=0)
    try:
        schema = gql.schema()
        plan = describe_connections(
            schema,
            schema.connections(),
            connection_options(page_size=150, hard_delete=False, max_pages=None),
        )
    finally:
        gql.api.close()
    by_name = {entry["resource"]: entry for entry in plan}
    assert (by_name["events"]["reads"], by_name["events"]["server_filter"]) == (
        "server",
        "modified_after",
    )
    assert by_name["users"]["server_filter"] == "modified__gte"
    assert (by_name["enrollments"]["reads"], by_name["enrollments"]["cursor"]) == (
        "client",
        "modified",
    )
    assert (by_name["comments"]["reads"], by_name["comments"]["cursor"]) == ("full", None)
    presenters = by_name["events"]["nested"]["presenters"]
    assert presenters["table"] == "events__presenters"
    assert presenters["parent_key_column"] == "_parent_pk"
    assert presenters["long_lists_through"] == "node"
    assert presenters["count_field"] == "totalCount"


def test_a_long_nested_list_is_read_through_node_on_the_stand_in(
    standin: GrapheneStandIn, workdir: Path
) -> None:
    from tests.test_plusplus_graphql_graphene import sync_standin

    standin.clear_requests()
    pipeline = sync_standin(standin, workdir, page_size=150, resources=["events"])

    bodies = [entry["body"] or {} for entry in standin.requests()]
    through_node = [b for b in bodies if "node(id: $lxp_parent)" in (b.get("query") or "")]
    parents = {b["variables"]["lxp_parent"] for b in through_node}
    assert len(parents) == 2  # events 412 (163 presenters) and 418 (1,000)
    assert all(b["variables"]["first"] == 150 for b in through_node)
    children = table_reader(workdir, API)("events__presenters")
    by_event: dict[int, set[int]] = {}
    for child in children:
        by_event.setdefault(child["_parent_pk"], set()).add(child["pk"])
    assert len(by_event[418]) == 1000 and len(by_event[412]) == 163
    columns = pipeline.default_schema.get_table_columns("events__presenters")
    assert columns["_parent_pk"]["data_type"] == "bigint"
    assert columns["modified"]["data_type"] == "timestamp"
    references = pipeline.default_schema.tables["events__presenters"].get("references")
    assert references and references[0]["referenced_table"] == "events"


def presenters_by_event(workdir: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for child in sorted(
        table_reader(workdir, API)("events__presenters"), key=lambda c: c["_dlt_list_idx"]
    ):
        out.setdefault(child["_parent_pk"], []).append(child["pk"])
    return out


def test_a_reloaded_parent_replaces_its_nested_rows(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api=API, nested_connections=True, long_lists=[320])
    sync(API, sandbox, workdir, resources=["events"])
    [event] = [int(pk) for pk in sandbox.configure(api=API, long_lists=[5])["long_lists"]]
    sandbox.mutate(api=API, entity="events", update=[event])  # bumps `modified`
    sync(API, sandbox, workdir, resources=["events"])

    assert_connection_equals_truth(sandbox, workdir, "events")  # no orphans either
    loaded = presenters_by_event(workdir)
    truth = {
        row["pk"]: [p["pk"] for p in row["presenters"]] for row in sandbox.truth(API, "events")
    }
    assert loaded[event] == truth[event] and len(loaded[event]) == 5
    assert {pk: pks for pk, pks in loaded.items() if pks} == {
        pk: pks for pk, pks in truth.items() if pks
    }


def test_a_long_nested_list_without_a_way_to_page_it_fails_the_run(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    # no `node` field and no root filter by `pk`: a list longer than a page cannot be completed
    sandbox = fresh_sandbox
    sandbox.configure(
        api=API, nested_connections=True, long_lists=[400], filter_names={"pk": "pk_list"}
    )
    with pytest.raises(Exception) as failure:
        sync(API, sandbox, workdir, resources=["events"])
    line, code = explain(failure.value, API)
    assert code != 0
    assert "has more `presenters` than one page holds" in line, line
    assert "plusplus_graphql.events.presenters" in line
