"""The sandbox's PlusPlus GraphQL API behaves like PlusPlus's graphene-django endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lxp_sync_sandbox.base import parse_iso
from lxp_sync_sandbox.plusplus_graphql import API_TOKEN, PlusPlusGraphqlApi
from lxp_sync_sandbox.server import SandboxProcess

API = "plusplus_graphql"
CONNECTIONS = [
    "events",
    "users",
    "event_types",
    "locations",
    "enrollments",
    "assignments",
    "tracks",
    "tags",
    "badges",
]


def post(
    sandbox: SandboxProcess,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = API_TOKEN,
    path: str = "/plusplus_graphql/graphql/",
) -> httpx.Response:
    headers = {"Authorization": f"Token {token}"} if token else {}
    body = {"query": query, "variables": variables or {}}
    return httpx.post(f"{sandbox.url}{path}", json=body, headers=headers, timeout=60)


def data(sandbox: SandboxProcess, query: str, variables: dict[str, Any] | None = None) -> dict:
    response = post(sandbox, query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def errors(sandbox: SandboxProcess, query: str) -> list[dict[str, Any]]:
    response = post(sandbox, query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    return body["errors"]


def selection(truth: list[dict[str, Any]]) -> str:
    """A selection of every field of the truth rows (nested objects, `{"pk": ..}`, as `{ pk }`)."""
    objects = {name for row in truth for name, value in row.items() if _is_reference(value)}
    return " ".join(f"{name} {{ pk }}" if name in objects else name for name in truth[0])


def _is_reference(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_reference(item) for item in value)
    return isinstance(value, dict) and set(value) == {"pk"}


def page_all(
    sandbox: SandboxProcess, connection: str, fields: str, args: str = "", size: int = 300
) -> list[dict[str, Any]]:
    query = (
        f"query($after: String) {{ {connection}(first: {size}, after: $after{args}) "
        f"{{ pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {fields} }} }} }} }}"
    )
    nodes, after = [], None
    while True:
        conn = data(sandbox, query, {"after": after})[connection]
        nodes.extend(edge["node"] for edge in conn["edges"])
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        assert conn["pageInfo"]["endCursor"] != after, "repeated cursor"
        after = conn["pageInfo"]["endCursor"]


INTROSPECTION = """{
  __schema {
    queryType { fields { name args { name } type { name kind } } }
    types { name fields(includeDeprecated: true) { name isDeprecated deprecationReason } }
  }
}"""


def introspect(sandbox: SandboxProcess) -> dict[str, Any]:
    return data(sandbox, INTROSPECTION)["__schema"]


def type_fields(schema: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    found = next(t for t in schema["types"] if t["name"] == type_name)
    return {f["name"]: f for f in found["fields"]}


# -- auth and request errors


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_missing_or_wrong_token_is_401_with_drf_detail(sandbox, token):
    response = post(sandbox, "{ events(first: 1) { edges { node { pk } } } }", token=token)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_bearer_scheme_is_refused(sandbox):
    response = httpx.post(
        f"{sandbox.url}/plusplus_graphql/graphql/",
        json={"query": "{ events(first: 1) { totalCount } }"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert response.status_code == 401


def test_malformed_json_body_is_400(sandbox):
    response = httpx.post(
        f"{sandbox.url}/plusplus_graphql/graphql/",
        content=b'{"query": "{ events(first',
        headers={"Authorization": f"Token {API_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "POST body sent invalid JSON."


def test_endpoint_answers_without_trailing_slash(sandbox):
    response = post(
        sandbox, "{ events(first: 1) { totalCount } }", path="/plusplus_graphql/graphql"
    )
    assert response.status_code == 200
    assert response.json()["data"]["events"]["totalCount"] > 0


def test_missing_first_and_last_is_an_error_with_http_200(sandbox):
    [error] = errors(sandbox, "{ events { edges { node { pk } } } }")
    assert "You must provide a `first` or `last` value" in error["message"]
    assert error["path"] == ["events"]
    assert error["locations"] == [{"line": 1, "column": 3}]


@pytest.mark.parametrize("arg", ["first", "last"])
def test_page_size_over_300_is_an_error_with_http_200(sandbox, arg):
    [error] = errors(sandbox, f"{{ users({arg}: 301) {{ edges {{ node {{ pk }} }} }} }}")
    assert f"exceeds the `{arg}` limit of 300 records" in error["message"]
    assert error["path"] == ["users"]


def test_page_size_of_300_is_allowed(sandbox):
    edges = data(sandbox, "{ enrollments(first: 300) { edges { node { pk } } } }")["enrollments"]
    assert len(edges["edges"]) == 300


@pytest.mark.parametrize(
    "query, message",
    [
        ("{ events(first: 2) { edges { node { pk nope } } } }", "Cannot query field 'nope'"),
        ("{ events(first: 2 { edges }", "Syntax Error"),
        ("{ event_types(first: 2, modified_gte: \"2025-01-01T00:00:00Z\") { totalCount } }",
         "Unknown argument 'modified_gte'"),
    ],
)  # fmt: skip
def test_invalid_queries_are_errors_with_http_200(sandbox, query, message):
    [error] = errors(sandbox, query)
    assert message in error["message"]
    assert error["locations"]


# -- introspection


def test_introspection_lists_the_root_connections_and_their_arguments(sandbox):
    schema = introspect(sandbox)
    roots = {f["name"]: f for f in schema["queryType"]["fields"]}
    assert set(CONNECTIONS) <= set(roots)
    events_args = {a["name"] for a in roots["events"]["args"]}
    assert {"first", "last", "after", "before", "is_deleted", "presenter_id", "pk"} <= events_args
    assert "modified_gte" in events_args
    assert "modified_gte" in {a["name"] for a in roots["users"]["args"]}
    assert "modified_gte" in {a["name"] for a in roots["enrollments"]["args"]}
    for name in ("event_types", "locations", "assignments", "tracks"):
        assert "modified_gte" not in {a["name"] for a in roots[name]["args"]}
    assert roots["events"]["type"]["name"] == "EventTypeConnection"


def test_introspection_shows_the_deprecated_field_with_its_reason(sandbox):
    fields = type_fields(introspect(sandbox), "EventType")
    assert fields["duration"]["isDeprecated"] is True
    assert fields["duration"]["deprecationReason"] == "Use duration_minutes."
    assert fields["name"]["isDeprecated"] is False
    assert "capacity_note" not in fields


def test_every_node_type_has_pk_and_is_deleted(sandbox):
    schema = introspect(sandbox)
    for type_name in ("EventType", "UserType", "EventTypeType", "LocationType", "EnrollmentType",
                      "AssignmentType", "TrackType", "TagType", "ContentItemType"):  # fmt: skip
        assert {"pk", "id", "is_deleted", "created", "modified"} <= set(
            type_fields(schema, type_name)
        ), type_name


# -- paging and truth


def test_paging_events_with_after_returns_every_truth_row_exactly_once(sandbox):
    truth = sandbox.truth(API, "events")
    nodes = page_all(sandbox, "events", selection(truth))
    assert [n["pk"] for n in nodes] == [r["pk"] for r in truth]
    assert len({n["pk"] for n in nodes}) == len(nodes) > 600  # several pages
    assert nodes == truth


@pytest.mark.parametrize("connection", [c for c in CONNECTIONS if c != "events"])
def test_every_connection_pages_to_its_truth(sandbox, connection):
    truth = sandbox.truth(API, connection)
    assert page_all(sandbox, connection, selection(truth)) == truth


def test_truth_reduces_nested_objects_to_pk_and_keeps_deprecated_fields(sandbox):
    row = next(r for r in sandbox.truth(API, "events") if r["presenters"] and r["location"])
    assert set(row["event_type"]) == {"pk"}
    assert all(set(p) == {"pk"} for p in row["presenters"])
    assert "duration" in row
    assert row["cover_url"] is None or "Expires=" in row["cover_url"]


def test_unfiltered_lists_include_deleted_rows_and_is_deleted_false_removes_them(sandbox):
    truth = sandbox.truth(API, "events")
    deleted = {r["pk"] for r in truth if r["is_deleted"]}
    assert 0.02 * len(truth) < len(deleted) < 0.1 * len(truth)
    live = page_all(sandbox, "events", "pk is_deleted", ", is_deleted: false")
    assert [n["pk"] for n in live] == [r["pk"] for r in truth if not r["is_deleted"]]
    only_deleted = page_all(sandbox, "events", "pk", ", is_deleted: true")
    assert {n["pk"] for n in only_deleted} == deleted


def test_list_filter_returns_rows_matching_any_of_its_values(sandbox):
    truth = sandbox.truth(API, "events")

    def presented_by(*users: int) -> set[int]:
        return {r["pk"] for r in truth if any(p["pk"] in users for p in r["presenters"])}

    a = next(r for r in truth if r["presenters"])["presenters"][0]["pk"]
    b = next(p["pk"] for r in truth for p in r["presenters"] if r["pk"] not in presented_by(a))
    query = "{ events(first: 300, presenter_id: %s) { totalCount edges { node { pk } } } }"
    found = data(sandbox, query % [a, b])["events"]
    assert {e["node"]["pk"] for e in found["edges"]} == presented_by(a, b)
    assert found["totalCount"] == len(presented_by(a, b)) > len(presented_by(a))


def test_incremental_connections_are_ordered_by_modified_then_pk(sandbox):
    for connection in ("events", "users", "enrollments"):
        truth = sandbox.truth(API, connection)
        keys = [(parse_iso(r["modified"]), r["pk"]) for r in truth]
        assert keys == sorted(keys), connection
    pks = [r["pk"] for r in sandbox.truth(API, "assignments")]
    assert pks == sorted(pks)


def test_datetimes_carry_offsets_in_several_timezones(sandbox):
    stamps = [r["modified"] for r in sandbox.truth(API, "users")]
    offsets = {s[-6:] for s in stamps}
    assert len(offsets) >= 3
    assert all(parse_iso(s).tzinfo is not None for s in stamps)


def test_last_and_before_page_backwards(sandbox):
    truth = [r["pk"] for r in sandbox.truth(API, "tracks")]
    query = "{ tracks(last: 5, before: %s) { pageInfo { hasPreviousPage hasNextPage startCursor } edges { node { pk } } } }"  # noqa: E501
    first = data(sandbox, "{ tracks(first: 20) { edges { cursor } } }")["tracks"]["edges"]
    page = data(sandbox, query % f'"{first[19]["cursor"]}"')["tracks"]
    assert [e["node"]["pk"] for e in page["edges"]] == truth[14:19]
    assert page["pageInfo"]["hasPreviousPage"] is True
    assert page["pageInfo"]["hasNextPage"] is False


def test_fragments_and_plain_selections_answer_the_same(sandbox):
    fields = "pk id name event_type { pk name } presenters { pk email } tags cover_url modified"
    plain = f"{{ events(first: 40, is_deleted: false) {{ totalCount pageInfo {{ endCursor }} edges {{ cursor node {{ {fields} }} }} }} }}"  # noqa: E501
    with_fragment = (
        "{ events(first: 40, is_deleted: false) { totalCount pageInfo { endCursor } "
        "edges { cursor node { ...F } } } } fragment F on EventType { " + fields + " }"
    )
    assert data(sandbox, plain) == data(sandbox, with_fragment)


EQUIVALENCE_QUERIES = [
    (
        "{ __typename a: events(first: 5, is_deleted: false) { __typename totalCount "
        "pageInfo { __typename startCursor endCursor hasNextPage hasPreviousPage } "
        "edges { __typename c: cursor node { __typename pk id x: name presenters { pk name "
        "manager { pk email } } location { pk name } tags custom_fields duration cover_url } } } }",
        {},
    ),
    (
        "query($b: String) { events(last: 4, before: $b) { pageInfo { startCursor endCursor "
        "hasNextPage hasPreviousPage } edges { cursor node { pk } } } }",
        {"b": "YXJyYXljb25uZWN0aW9uOjEw"},
    ),
    (
        "query($d: DateTime, $p: [Int]) { events(first: 300, modified_gte: $d, presenter_id: $p) "
        "{ totalCount pageInfo { endCursor hasNextPage } edges { node { pk modified } } } }",
        {"d": "2024-06-01T00:00:00+02:00", "p": [12, 13, 14, 15, 16]},
    ),
    (
        "{ enrollments(first: 50, user_id: [20, 21, 22, 23]) { totalCount edges { node { pk "
        "user { pk } event { pk event_type { name } } status rating enrolled_at } } } "
        "users(first: 2) { edges { node { pk avatar_url role last_login username } } } }",
        {},
    ),
    (
        "{ assignments(first: 30) { edges { node { pk content_item { pk name content_type } "
        'due_date progress state completed_at } } } tracks(first: 3, after: "bm9uc2Vuc2U=") '
        "{ totalCount } locations(first: 3) { edges { node { pk latitude capacity } } } }",
        {},
    ),
]


@pytest.mark.parametrize("query, variables", EQUIVALENCE_QUERIES)
def test_compiled_plans_answer_exactly_as_graphql_core(query, variables):
    api = PlusPlusGraphqlApi(rows=2000, seed=3)
    log: dict[str, Any] = {}
    compiled = api.execute(query, variables, log=log)
    assert log["executor"] == "compiled"
    assert compiled == api.execute(query, variables, fast=False)
    assert b'"errors"' not in compiled


def test_request_log_records_root_fields_and_arguments(sandbox):
    sandbox.clear_requests()
    data(sandbox, '{ events(first: 7, is_deleted: false) { totalCount } users(last: 2) { totalCount } }')  # fmt: skip
    [entry] = [e for e in sandbox.requests(API) if e["extra"].get("root_fields")]
    assert entry["extra"]["root_fields"] == ["events", "users"]
    assert entry["extra"]["args"]["events"]["first"] == 7
    assert entry["extra"]["args"]["events"]["is_deleted"] is False
    assert entry["extra"]["args"]["users"]["last"] == 2
    assert entry["extra"]["executor"] == "compiled"


# -- mutations and schema drift


def test_modified_gte_returns_only_rows_changed_after_a_mutation(fresh_sandbox):
    before = fresh_sandbox.truth(API, "events")
    since = max(parse_iso(r["modified"]) for r in before)
    changed = fresh_sandbox.mutate(api=API, entity="events", insert=2, update=3, delete=1)
    assert len(changed["inserted"]) == 2 and len(changed["updated"]) == 3
    changed_pks = set(changed["inserted"]) | set(changed["updated"]) | set(changed["deleted"])
    at_bound = {r["pk"] for r in before if parse_iso(r["modified"]) == since}  # inclusive
    expected = changed_pks | at_bound
    query = "query($d: DateTime) { events(first: 300, modified_gte: $d) { totalCount edges { node { pk name is_deleted modified } } } }"  # noqa: E501
    newer = data(fresh_sandbox, query, {"d": since.isoformat()})["events"]
    assert {e["node"]["pk"] for e in newer["edges"]} == expected
    assert newer["totalCount"] == len(expected)
    nodes = {e["node"]["pk"]: e["node"] for e in newer["edges"]}
    assert nodes[changed["deleted"][0]]["is_deleted"] is True
    old_names = {r["pk"]: r["name"] for r in before}
    assert all(nodes[pk]["name"] != old_names[pk] for pk in changed["updated"])
    last = parse_iso(newer["edges"][-1]["node"]["modified"])
    again = data(fresh_sandbox, query, {"d": last.isoformat()})["events"]
    at_last = [pk for pk, node in nodes.items() if parse_iso(node["modified"]) == last]
    assert [e["node"]["pk"] for e in again["edges"]] == at_last


def test_hard_delete_removes_the_row_and_soft_delete_keeps_it(fresh_sandbox):
    pks = [r["pk"] for r in fresh_sandbox.truth(API, "locations")][:2]
    fresh_sandbox.mutate(api=API, entity="locations", hard_delete=[pks[0]], delete=[pks[1]])
    truth = {r["pk"]: r for r in fresh_sandbox.truth(API, "locations")}
    assert pks[0] not in truth
    assert truth[pks[1]]["is_deleted"] is True
    served = {n["pk"] for n in page_all(fresh_sandbox, "locations", "pk")}
    assert served == set(truth)


def test_schema_drift_adds_a_field_visible_in_introspection_and_queries(fresh_sandbox):
    result = fresh_sandbox.configure(api=API, schema_drift=True)
    assert result["schema_drift"] is True
    fields = type_fields(introspect(fresh_sandbox), "EventType")
    assert "capacity_note" in fields
    truth = fresh_sandbox.truth(API, "events")
    assert all("capacity_note" in r for r in truth)
    values = [r["capacity_note"] for r in truth]
    assert any(v is None for v in values) and any(v is not None for v in values)
    nodes = page_all(fresh_sandbox, "events", "pk capacity_note")
    assert nodes == [{"pk": r["pk"], "capacity_note": r["capacity_note"]} for r in truth]

    fresh_sandbox.configure(api=API, schema_drift=False)
    assert "capacity_note" not in type_fields(introspect(fresh_sandbox), "EventType")
    [error] = errors(fresh_sandbox, "{ events(first: 1) { edges { node { capacity_note } } } }")
    assert "capacity_note" in error["message"]
