"""The sandbox's PlusPlus GraphQL API behaves like PlusPlus's graphene-django endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
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


def test_strict_url_answers_404_on_the_slashed_path(fresh_sandbox):
    query = "{ events(first: 1) { totalCount } }"
    assert fresh_sandbox.configure(api=API, strict_url=True)["strict_url"] is True
    slashed = post(fresh_sandbox, query, path="/plusplus_graphql/graphql/")
    assert slashed.status_code == 404
    assert "Not Found" in slashed.text
    plain = post(fresh_sandbox, query, path="/plusplus_graphql/graphql")
    assert plain.status_code == 200 and plain.json()["data"]["events"]["totalCount"] > 0
    fresh_sandbox.configure(api=API, strict_url=False)
    assert post(fresh_sandbox, query).status_code == 200


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


# -- variants: the shapes the vendor's pages show and the documents do not


@pytest.mark.parametrize("arg", ["first", "last"])
def test_a_lower_page_limit_is_an_error_naming_it(fresh_sandbox, arg):
    assert fresh_sandbox.configure(api=API, page_limit=150)["page_limit"] == 150
    [error] = errors(fresh_sandbox, f"{{ events({arg}: 151) {{ edges {{ node {{ pk }} }} }} }}")
    assert error["message"] == (
        f"Requesting 151 records on the `events` connection exceeds the `{arg}` limit of 150 "
        "records."
    )
    page = data(fresh_sandbox, f"{{ events({arg}: 150) {{ edges {{ node {{ pk }} }} }} }}")
    assert len(page["events"]["edges"]) == 150


def test_a_lower_page_limit_as_a_silent_cap_serves_the_limit_and_pages_on(fresh_sandbox):
    fresh_sandbox.configure(api=API, page_limit=150, page_size_mode="cap")
    first = data(
        fresh_sandbox, "{ events(first: 300) { pageInfo { hasNextPage } edges { cursor } } }"
    )
    assert len(first["events"]["edges"]) == 150
    assert first["events"]["pageInfo"]["hasNextPage"] is True
    truth = fresh_sandbox.truth(API, "events")
    assert len(truth) > 300
    assert page_all(fresh_sandbox, "events", "pk", size=300) == [{"pk": r["pk"]} for r in truth]


def test_page_size_mode_must_be_cap_or_error(fresh_sandbox):
    response = httpx.post(
        f"{fresh_sandbox.url}/_sandbox/config", json={"api": API, "page_size_mode": "drop"}
    )
    assert response.status_code == 400


NESTED_PAGE = """query($pk: Int, $after: String) { events(first: 1, pk: [$pk]) { edges { node {
  pk presenters(first: 100, after: $after) { totalCount pageInfo { hasNextPage endCursor }
  edges { node { pk name } } } } } } }"""


def test_nested_connections_page_on_their_own_with_graphenes_rules(fresh_sandbox):
    result = fresh_sandbox.configure(api=API, nested_connections=True, long_lists=[163, 400])
    users = {r["pk"]: r for r in fresh_sandbox.truth(API, "users")}
    long_lists = {int(pk): n for pk, n in result["long_lists"].items()}
    assert sorted(long_lists.values()) == [163, min(400, len(users))]

    # introspection: a list of objects inside a node is a connection with paging arguments
    schema = data(
        fresh_sandbox,
        '{ __type(name: "EventType") { fields { name args { name } type { kind ofType { name } } } } }',  # noqa: E501
    )
    presenters = next(f for f in schema["__type"]["fields"] if f["name"] == "presenters")
    assert presenters["type"] == {"kind": "NON_NULL", "ofType": {"name": "UserTypeConnection"}}
    assert {a["name"] for a in presenters["args"]} == {"first", "last", "after", "before"}
    [error, *_] = errors_or_partial(fresh_sandbox, "{ events(first: 1) { edges { node { presenters { totalCount } } } } }")  # fmt: skip
    assert "provide a `first` or `last` value to properly paginate the `presenters`" in error

    # every presenter of the long lists, 100 at a time
    truth = {r["pk"]: r for r in fresh_sandbox.truth(API, "events")}
    for pk, count in long_lists.items():
        got, after = [], None
        while True:
            [edge] = data(fresh_sandbox, NESTED_PAGE, {"pk": pk, "after": after})["events"]["edges"]
            conn = edge["node"]["presenters"]
            assert conn["totalCount"] == count
            got.extend(e["node"]["pk"] for e in conn["edges"])
            assert all(e["node"]["name"] == users[e["node"]["pk"]]["name"] for e in conn["edges"])
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert got == [p["pk"] for p in truth[pk]["presenters"]]
        assert len(got) == count
    # the limit holds inside a node too
    over = errors_or_partial(
        fresh_sandbox,
        "{ events(first: 1) { edges { node { presenters(first: 301) { totalCount } } } } }",
    )
    assert "exceeds the `first` limit of 300 records" in over[0]


def errors_or_partial(sandbox: SandboxProcess, query: str) -> list[str]:
    """Error messages of a query that fails inside a node (HTTP 200, partial or null data)."""
    response = post(sandbox, query)
    assert response.status_code == 200, response.text
    return [e["message"] for e in response.json()["errors"]]


def test_filter_names_as_the_vendor_writes_them(fresh_sandbox):
    fresh_sandbox.configure(
        api=API, filter_names={"modified_gte": "modified_after"}, vendor_filters=True
    )
    roots = {f["name"]: f for f in introspect(fresh_sandbox)["queryType"]["fields"]}
    args = {a["name"] for a in roots["events"]["args"]}
    assert {"modified_after", "starts_at_after", "name", "presenter_id"} <= args
    assert "modified_gte" not in args
    assert "modified_after" in {a["name"] for a in roots["users"]["args"]}

    truth = fresh_sandbox.truth(API, "events")
    bound = sorted(parse_iso(r["modified"]) for r in truth)[len(truth) // 2]
    query = "query($d: DateTime) { events(first: 300, modified_after: $d) { totalCount edges { node { pk } } } }"  # noqa: E501
    found = data(fresh_sandbox, query, {"d": bound.isoformat()})["events"]
    assert found["totalCount"] == sum(parse_iso(r["modified"]) >= bound for r in truth)
    starts = sorted(parse_iso(r["starts_at"]) for r in truth)[len(truth) // 3]
    query = "query($d: DateTime) { events(first: 300, starts_at_after: $d) { totalCount } }"
    count = data(fresh_sandbox, query, {"d": starts.isoformat()})["events"]["totalCount"]
    assert count == sum(parse_iso(r["starts_at"]) >= starts for r in truth)
    named = data(fresh_sandbox, '{ events(first: 300, name: "PYTHON") { totalCount } }')
    assert named["events"]["totalCount"] == sum("python" in r["name"].lower() for r in truth) > 0
    [error] = errors(fresh_sandbox, '{ events(first: 1, modified_gte: "2025-01-01") { totalCount } }')  # fmt: skip
    assert "Unknown argument 'modified_gte'" in error["message"]


def test_a_type_with_only_created_changes_without_a_timestamp(fresh_sandbox):
    assert "comments" not in {f["name"] for f in introspect(fresh_sandbox)["queryType"]["fields"]}
    assert httpx.get(f"{fresh_sandbox.url}/_sandbox/truth/{API}/comments").status_code == 404
    fresh_sandbox.configure(api=API, created_only=True)
    fields = type_fields(introspect(fresh_sandbox), "CommentType")
    assert {"pk", "created", "is_deleted"} <= set(fields) and "modified" not in fields

    before = {r["pk"]: r for r in fresh_sandbox.truth(API, "comments")}
    changed = fresh_sandbox.mutate(api=API, entity="comments", update=2, delete=2)
    after = {r["pk"]: r for r in fresh_sandbox.truth(API, "comments")}
    for pk in changed["deleted"]:
        assert after[pk]["is_deleted"] is True and not before[pk]["is_deleted"]
    for pk in changed["updated"]:
        assert after[pk]["body"] != before[pk]["body"]
    assert all(after[pk]["created"] == before[pk]["created"] for pk in before)
    truth = fresh_sandbox.truth(API, "comments")
    assert page_all(fresh_sandbox, "comments", selection(truth)) == truth


def test_graphql_core_resolves_nested_objects_before_their_table_was_read():
    # a fragment sends the query to graphql-core; no truth or compiled plan has generated
    # `event_types` yet, and its rows must still be there
    api = PlusPlusGraphqlApi(rows=500, seed=5)
    query = "{ events(first: 5) { edges { node { ...E } } } } fragment E on EventType { event_type { pk } }"  # noqa: E501
    log: dict[str, Any] = {}
    edges = orjson.loads(api.execute(query, {}, log=log))["data"]["events"]["edges"]
    assert log["executor"] == "graphql-core"
    assert all(edge["node"]["event_type"] is not None for edge in edges)
