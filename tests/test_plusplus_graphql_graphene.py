"""The PlusPlus GraphQL source against graphene-django itself (`tests/support/graphene.py`).

The sandbox shares our reading of the documents; this stand-in's introspection, errors, limits
and paging are the framework's. What the source does not handle yet is in
`test_plusplus_graphql_graphene_acceptance.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, run_source
from lxp_sync.sources.core.errors import RequestError
from lxp_sync.sources.plusplus.graphql import graphql_client
from tests.compare import diff_table, table_reader
from tests.support.graphene import API_TOKEN, GrapheneStandIn

API = "plusplus_graphql"
CONNECTIONS = ["comments", "enrollments", "event_types", "events", "locations", "tags", "users"]
LIMIT = 150  # RELAY_CONNECTION_MAX_LIMIT
NESTED = {"events": {"presenters", "tags"}}  # connections inside a node
JSON_TEXT = {"events": {"custom_fields"}, "event_types": {"settings"}}  # JSONString
JSON_VALUE = {"events": {"attributes"}}  # GenericScalar


def sync_standin(standin: GrapheneStandIn, workdir: Path, **source_args: Any):
    spec = SOURCES[API]
    options = RunOptions(
        duckdb_path=str(workdir / "warehouse.duckdb"),
        pipelines_dir=str(workdir / "pipelines"),
        dataset=API,
    )
    return run_source(spec, spec.factory(**standin.source_args(), **source_args), options)


def post(standin: GrapheneStandIn, query: str, path: str = "/graphql") -> httpx.Response:
    return httpx.post(
        f"{standin.url}{path}",
        json={"query": query},
        headers={"Authorization": f"Token {API_TOKEN}"},
        timeout=60,
    )


def json_of(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def assert_flat_fields_equal_truth(
    standin: GrapheneStandIn, workdir: Path, connection: str
) -> None:
    """Scalars and `{ pk }` objects row by row; free-form JSON compared as parsed values."""
    truth = standin.truth(connection)
    loaded = table_reader(workdir, API)(connection)
    json_fields = JSON_TEXT.get(connection, set()) | JSON_VALUE.get(connection, set())
    skip = NESTED.get(connection, set()) | json_fields
    flat = [{k: v for k, v in row.items() if k not in skip} for row in truth]
    problems = diff_table(flat, loaded, "pk", ignore=frozenset(skip))
    assert not problems, f"{connection}: {problems}"
    by_pk = {row["pk"]: row for row in loaded}
    for field in json_fields:
        text = field in JSON_TEXT.get(connection, set())
        for row in truth:
            want = json_of(row[field]) if text else row[field]
            assert json_of(by_pk[row["pk"]].get(field)) == want, (connection, row["pk"], field)


def test_the_stand_in_is_graphene_django_with_the_vendors_shapes(standin: GrapheneStandIn) -> None:
    # the facts the source must live with, as the framework states them
    response = post(standin, "{ events(first: 300) { edges { node { pk } } } }")
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == (
        "Requesting 300 records on the `events` connection exceeds the `first` limit of 150 records."
    )
    assert response.json()["data"] == {"events": None}
    missing = post(standin, "{ events(first: 2) { edges { node { presenters { totalCount } } } } }")
    messages = {e["message"] for e in missing.json()["errors"]}
    assert messages == {
        "You must provide a `first` or `last` value to properly paginate the `presenters` "
        "connection."
    }
    assert post(standin, "{ __typename }", path="/graphql/").status_code == 404
    invalid = post(standin, "{ events(first: 1) { edges { node { nope } } } }")
    assert invalid.status_code == 400 and "data" not in invalid.json()
    first = post(standin, "{ events(first: 3) { edges { node { pk name } } } }").json()
    names = [edge["node"]["name"] for edge in first["data"]["events"]["edges"]]
    assert names == ["Agile Training", "High Output Management", "Core Python"]


def test_full_sync_at_the_servers_page_limit_equals_truth(
    standin: GrapheneStandIn, workdir: Path
) -> None:
    standin.clear_requests()
    pipeline = sync_standin(standin, workdir, page_size=LIMIT)

    tables = pipeline.default_schema.data_table_names()
    assert sorted(t for t in tables if "__" not in t) == CONNECTIONS
    for connection in CONNECTIONS:
        assert_flat_fields_equal_truth(standin, workdir, connection)
    deleted = [row for row in table_reader(workdir, API)("users") if row["is_deleted"]]
    assert deleted, "soft-deleted rows are kept by default"
    offsets = {row["modified"][-6:] for row in standin.truth("users")}
    assert len(offsets) >= 4, offsets  # several offsets, DST included
    columns = pipeline.default_schema.get_table_columns("events")
    assert columns["attributes"]["data_type"] == "json"
    assert columns["event_type__pk"]["data_type"] == "bigint"
    bodies = [entry["body"] for entry in standin.requests() if entry["path"] == "/graphql"]
    assert all(entry["path"] == "/graphql" for entry in standin.requests())
    assert {b["variables"]["first"] for b in bodies if "variables" in b} == {LIMIT}


def test_incremental_run_after_changes_equals_truth(
    fresh_standin: GrapheneStandIn, workdir: Path
) -> None:
    standin = fresh_standin
    connections = ["events", "users", "event_types", "enrollments"]
    sync_standin(standin, workdir, page_size=LIMIT, resources=connections)
    for connection in connections:
        standin.mutate(entity=connection, update=5, delete=3)
    sync_standin(standin, workdir, page_size=LIMIT, resources=connections)

    for connection in connections:
        assert_flat_fields_equal_truth(standin, workdir, connection)


def test_a_query_the_server_refuses_with_http_400_keeps_its_message(
    standin: GrapheneStandIn,
) -> None:
    # graphene-django answers a query that does not validate with HTTP 400 and `errors` only
    gql = graphql_client(standin.graphql_url, API_TOKEN, max_retries=0)
    try:
        with pytest.raises(RequestError) as failure:
            gql.execute("{ events(first: 1) { edges { node { nope } } } }", resource=f"{API}.x")
    finally:
        gql.api.close()
    line, code = explain(failure.value, API)
    assert code == 1
    assert "Cannot query field 'nope' on type 'EventType'" in line, line
    assert "HTTP 400" in line
