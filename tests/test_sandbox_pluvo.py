"""The sandbox's Pluvo API behaves as the vendor's document says (seeds/001), over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lxp_sync_sandbox.base import parse_iso
from lxp_sync_sandbox.pluvo import ALL_SCOPES, CLIENT_ID, CLIENT_SECRET, MAX_PAGE_SIZE, PluvoApi
from lxp_sync_sandbox.server import SandboxProcess

CONNECTIONS = {
    "paginatedUsers": "User",
    "paginatedGroups": "Group",
    "paginatedTrainings": "Training",
    "paginatedEvents": "Event",
}
TYPE_QUERY = """query T($name: String!) { __type(name: $name) { fields(includeDeprecated: true) {
  name isDeprecated deprecationReason
  type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }"""


# One pooled client: `httpx.post` would build a client (and its TLS context) per request.
HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def switched() -> Iterator[SandboxProcess]:
    """A sandbox of this module's own, for tests that flip switches or change data."""
    with SandboxProcess(rows=400, seed=11) as process:
        yield process


def request_token(sandbox: SandboxProcess, **form: str) -> httpx.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **form,
    }
    return HTTP.post(f"{sandbox.url}/pluvo/oauth/token/", data=body)


def token(sandbox: SandboxProcess, scope: str = ALL_SCOPES) -> str:
    response = request_token(sandbox, scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def post(
    sandbox: SandboxProcess,
    access_token: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return HTTP.post(f"{sandbox.url}/pluvo/graphql/", json=payload, headers=headers)


def gql(sandbox: SandboxProcess, access_token: str, query: str, **variables: Any) -> dict:
    response = post(sandbox, access_token, query, variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def node_selection(sandbox: SandboxProcess, access_token: str, type_name: str) -> str:
    """What a connector sends: every non-deprecated field, `{ id }` of nested objects."""
    fields = gql(sandbox, access_token, TYPE_QUERY, name=type_name)["__type"]["fields"]
    parts = []
    for f in fields:
        if f["isDeprecated"]:
            continue
        kind = f["type"]
        while kind["kind"] in ("NON_NULL", "LIST"):
            kind = kind["ofType"]
        parts.append(f"{f['name']} {{ id }}" if kind["kind"] == "OBJECT" else f["name"])
    return " ".join(parts)


def page_query(connection: str, selection: str) -> str:
    return (
        f"query Page($first: Int, $after: String) {{ {connection}(first: $first, after: $after) "
        f"{{ edges {{ cursor node {{ {selection} }} }} pageInfo {{ hasNextPage endCursor }} "
        f"count }} }}"
    )


def page_through(
    sandbox: SandboxProcess, access_token: str, connection: str, first: int = MAX_PAGE_SIZE
) -> tuple[list[dict], list[int]]:
    """Every node of a connection, following cursors; and the `count` of every page."""
    selection = node_selection(sandbox, access_token, CONNECTIONS[connection])
    query = page_query(connection, selection)
    nodes, counts, after, cursors = [], [], None, set()
    while True:
        page = gql(sandbox, access_token, query, first=first, after=after)[connection]
        nodes.extend(edge["node"] for edge in page["edges"])
        counts.append(page["count"])
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, counts
        after = page["pageInfo"]["endCursor"]
        assert after not in cursors, "a cursor came back twice"
        cursors.add(after)


# --- Tokens --------------------------------------------------------------------------------------


def test_token_endpoint_issues_a_random_bearer_token_echoing_the_granted_scopes(sandbox):
    first = request_token(sandbox, scope="events.read users.read")
    second = request_token(sandbox, scope="events.read users.read")

    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "users.read events.read"
    assert len(body["access_token"]) >= 32
    assert body["access_token"] != second.json()["access_token"]


def test_token_request_without_scope_gets_every_scope_of_the_client(sandbox):
    response = HTTP.post(
        f"{sandbox.url}/pluvo/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),  # HTTP Basic works as well as the form fields
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == ALL_SCOPES


def test_wrong_client_secret_is_401_invalid_client(sandbox):
    response = request_token(sandbox, client_secret="not-the-secret")

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }


def test_wrong_grant_type_and_unknown_scope_are_400(sandbox):
    grant = request_token(sandbox, grant_type="password")
    scope = request_token(sandbox, scope="users.read users.write")

    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    assert (scope.status_code, scope.json()["error"]) == (400, "invalid_scope")
    assert "users.write" in scope.json()["error_description"]


def test_refuse_client_switch_makes_the_token_endpoint_refuse_the_right_client(switched):
    switched.configure(api="pluvo", refuse_client=True)
    try:
        refused = request_token(switched)
    finally:
        switched.configure(api="pluvo", refuse_client=False)

    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert request_token(switched).status_code == 200


def test_token_dies_after_the_configured_lifetime(switched):
    switched.configure(api="pluvo", token_lifetime_s=1)
    try:
        response = request_token(switched)
    finally:
        switched.configure(api="pluvo", token_lifetime_s=86400)
    short_lived = response.json()["access_token"]
    assert response.json()["expires_in"] == 1
    assert post(switched, short_lived, "{ organisation { name } }").status_code == 200

    time.sleep(1.2)
    expired = post(switched, short_lived, "{ organisation { name } }")

    assert expired.status_code == 401
    assert expired.json() == {"detail": "Invalid or expired token."}


def test_revoke_tokens_kills_every_issued_token_but_not_new_ones(switched):
    old = token(switched)
    switched.configure(api="pluvo", revoke_tokens=True)

    assert post(switched, old, "{ organisation { name } }").status_code == 401
    assert post(switched, token(switched), "{ organisation { name } }").status_code == 200


# --- HTTP rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/pluvo/graphql", "/pluvo/oauth/token"])
def test_paths_without_trailing_slash_answer_301_to_the_slashed_url(sandbox, path):
    response = HTTP.post(f"{sandbox.url}{path}", json={"query": "{ me { name } }"})

    assert response.status_code == 301
    assert response.headers["location"] == f"{sandbox.url}{path}/"


def test_graphql_without_a_token_is_401_credentials_not_provided(sandbox):
    response = post(sandbox, None, "{ organisation { name } }")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_graphql_with_an_unknown_token_is_401_invalid_token(sandbox):
    response = post(sandbox, "made-up-token", "{ organisation { name } }")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or expired token."}


def test_query_needing_a_scope_the_token_lacks_is_403_naming_the_scope(sandbox):
    users_only = token(sandbox, "users.read")

    response = post(sandbox, users_only, "{ paginatedTrainings(first: 1) { count } }")

    assert response.status_code == 403
    body = response.json()
    assert body["detail"] == "Missing required scope: trainings.read"
    assert body["required_scope"] == "trainings.read"
    assert body["token_scopes"] == ["users.read"]
    assert post(sandbox, users_only, "{ paginatedUsers(first: 1) { count } }").status_code == 200


def test_scope_check_sees_root_fields_inside_fragments(sandbox):
    users_only = token(sandbox, "users.read")
    query = "query { ...R } fragment R on Query { paginatedEvents(first: 1) { count } }"

    response = post(sandbox, users_only, query)

    assert response.status_code == 403
    assert response.json()["required_scope"] == "events.read"


def test_graphql_errors_come_with_http_200(sandbox):
    access_token = token(sandbox)
    syntax = post(sandbox, access_token, "{ paginatedUsers(first: 1) { count ")
    unknown_field = post(sandbox, access_token, "{ paginatedUsers { nope } }")
    bad_cursor = post(sandbox, access_token, '{ paginatedUsers(after: "bm9wZQ==") { count } }')

    for response in (syntax, unknown_field, bad_cursor):
        assert response.status_code == 200
        assert response.json()["errors"][0]["message"]
    assert "Invalid cursor" in bad_cursor.json()["errors"][0]["message"]
    assert bad_cursor.json()["data"] == {"paginatedUsers": None}


def test_request_log_records_root_fields_and_arguments(switched):
    switched.clear_requests()
    access_token = token(switched)
    query = 'query($n: Int) { paginatedUsers(first: $n, ref: "EMP-000001") { count } }'

    gql(switched, access_token, query, n=7)

    graphql_requests = [r for r in switched.requests("pluvo") if r["path"] == "/pluvo/graphql/"]
    assert graphql_requests[-1]["extra"] == {
        "root_fields": ["paginatedUsers"],
        "args": {"first": 7, "ref": "EMP-000001"},
    }


# --- Pages ---------------------------------------------------------------------------------------


def test_first_over_50_is_capped_to_50_by_default(sandbox):
    data = gql(sandbox, token(sandbox), "{ paginatedEvents(first: 500) { edges { cursor } } }")

    assert len(data["paginatedEvents"]["edges"]) == MAX_PAGE_SIZE


def test_first_over_50_is_a_graphql_error_in_error_mode(switched):
    access_token = token(switched)
    switched.configure(api="pluvo", page_size_mode="error")
    try:
        over = post(switched, access_token, "{ paginatedEvents(first: 51) { count } }")
        at_limit = post(switched, access_token, "{ paginatedEvents(first: 50) { count } }")
    finally:
        switched.configure(api="pluvo", page_size_mode="cap")

    assert over.status_code == 200
    assert over.json()["data"] == {"paginatedEvents": None}
    assert over.json()["errors"][0]["message"] == "first must be <= 50"
    assert "errors" not in at_limit.json()


@pytest.mark.parametrize("connection", list(CONNECTIONS))
def test_paging_a_connection_returns_its_truth_exactly_once(sandbox, connection):
    truth = sandbox.truth("pluvo", connection)

    nodes, counts = page_through(sandbox, token(sandbox), connection)

    assert nodes == truth
    assert len({node["id"] for node in nodes}) == len(nodes)
    assert set(counts) == {len(truth)}
    assert len(counts) == -(-len(truth) // MAX_PAGE_SIZE)


def test_pages_are_ordered_by_updated_at_then_id(sandbox):
    truth = sandbox.truth("pluvo", "paginatedUsers")

    keys = [(parse_iso(row["updatedAt"]), row["id"]) for row in truth]

    assert keys == sorted(keys)
    assert len({row["updatedAt"][-6:] for row in truth}) > 1, "timestamps in several offsets"


def test_small_pages_follow_the_same_order(sandbox):
    nodes, counts = page_through(sandbox, token(sandbox), "paginatedGroups", first=7)

    assert nodes == sandbox.truth("pluvo", "paginatedGroups")


def test_filters_by_id_ref_and_email_narrow_rows_and_count(sandbox):
    access_token = token(sandbox)
    user = next(
        row for row in sandbox.truth("pluvo", "paginatedUsers") if row["ref"] and row["email"]
    )
    query = """query($id: ID, $ref: String, $email: String) {
      paginatedUsers(id: $id, ref: $ref, email: $email) { edges { node { id } } count } }"""

    for variables in (
        {"id": user["id"]},
        {"ref": user["ref"]},
        {"email": user["email"]},
        {"ref": user["ref"], "email": user["email"].upper()},
    ):
        page = gql(sandbox, access_token, query, **variables)["paginatedUsers"]
        assert page == {"edges": [{"node": {"id": user["id"]}}], "count": 1}, variables
    nothing = gql(sandbox, access_token, query, email="nobody@nowhere.test")["paginatedUsers"]
    assert nothing == {"edges": [], "count": 0}


def test_fragments_and_aliases_answer_like_the_plain_query(sandbox):
    access_token = token(sandbox)
    selection = node_selection(sandbox, access_token, "Training")
    plain = page_query("paginatedTrainings", selection)
    with_fragments = (
        "query Page($first: Int, $after: String) { paginatedTrainings(first: $first, "
        "after: $after) { ...Conn } } fragment Conn on TrainingConnection { edges { cursor "
        "node { ...Node } } pageInfo { hasNextPage endCursor } count } "
        f"fragment Node on Training {{ {selection} }}"
    )
    aliased = "{ t: paginatedTrainings(first: 2) { n: count e: edges { c: cursor } } }"

    fast = gql(sandbox, access_token, plain, first=5)["paginatedTrainings"]
    slow = gql(sandbox, access_token, with_fragments, first=5)["paginatedTrainings"]
    renamed = gql(sandbox, access_token, aliased)["t"]

    assert slow == fast
    assert renamed["n"] == fast["count"]
    assert [e["c"] for e in renamed["e"]] == [e["cursor"] for e in fast["edges"][:2]]


def test_nested_objects_resolve_to_the_referenced_row(sandbox):
    names = {row["id"]: row["name"] for row in sandbox.truth("pluvo", "paginatedUsers")}
    query = "{ paginatedTrainings(first: 20) { edges { node { owner { id name } } } } }"

    edges = gql(sandbox, token(sandbox), query)["paginatedTrainings"]["edges"]

    owners = [edge["node"]["owner"] for edge in edges if edge["node"]["owner"]]
    assert owners
    assert all(owner["name"] == names[owner["id"]] for owner in owners)


def test_plain_root_fields_are_not_connections_and_need_no_scope(sandbox):
    events_only = token(sandbox, "events.read")

    data = gql(sandbox, events_only, "{ me { clientId scopes } organisation { name slug } }")

    assert data["me"] == {"clientId": CLIENT_ID, "scopes": ["events.read"]}
    assert data["organisation"]["name"]


# --- Schema --------------------------------------------------------------------------------------


def test_deprecated_fields_are_marked_in_introspection_and_left_out_of_truth(sandbox):
    fields = gql(sandbox, token(sandbox), TYPE_QUERY, name="Training")["__type"]["fields"]
    by_name = {f["name"]: f for f in fields}

    assert by_name["name"]["isDeprecated"] is True
    assert "title" in by_name["name"]["deprecationReason"]
    assert by_name["title"]["isDeprecated"] is False
    row = sandbox.truth("pluvo", "paginatedTrainings")[0]
    assert "name" not in row and "title" in row
    assert set(row) == {f["name"] for f in fields if not f["isDeprecated"]}


def test_schema_has_realistic_field_types(sandbox):
    fields = gql(sandbox, token(sandbox), TYPE_QUERY, name="Training")["__type"]["fields"]
    kinds = {f["name"]: f["type"] for f in fields}

    assert kinds["id"]["kind"] == "NON_NULL" and kinds["id"]["ofType"]["name"] == "ID"
    assert kinds["owner"] == {"kind": "OBJECT", "name": "User", "ofType": None}
    assert kinds["status"]["ofType"]["kind"] == "ENUM"
    assert kinds["tags"]["ofType"]["kind"] == "LIST"
    assert kinds["updatedAt"]["ofType"]["name"] == "DateTime"
    assert kinds["description"]["kind"] == "SCALAR"  # nullable


def test_schema_drift_adds_a_field_to_introspection_and_truth(switched):
    access_token = token(switched)
    switched.configure(api="pluvo", schema_drift=True)
    try:
        fields = gql(switched, access_token, TYPE_QUERY, name="User")["__type"]["fields"]
        truth = switched.truth("pluvo", "paginatedUsers")
        nodes, _ = page_through(switched, access_token, "paginatedUsers")
    finally:
        switched.configure(api="pluvo", schema_drift=False)

    assert "department" in {f["name"] for f in fields}
    assert "department" in truth[0]
    assert nodes == truth
    assert "department" not in switched.truth("pluvo", "paginatedUsers")[0]


def test_same_seed_gives_the_same_data_and_another_seed_other_data():
    first, again, other = (
        PluvoApi(rows=200, seed=5),
        PluvoApi(rows=200, seed=5),
        PluvoApi(rows=200, seed=6),
    )

    assert first.truth("paginatedEvents") == again.truth("paginatedEvents")
    assert first.truth("paginatedEvents") != other.truth("paginatedEvents")
    assert len(first.truth("users")) + len(first.truth("events")) > 100


# --- Mutations -----------------------------------------------------------------------------------


def test_mutations_show_up_in_pages_and_updated_rows_move_to_the_end(switched):
    access_token = token(switched)
    before = switched.truth("pluvo", "paginatedTrainings")
    newest = max(parse_iso(row["updatedAt"]) for row in before)

    result = switched.mutate(
        api="pluvo",
        entity="paginatedTrainings",
        insert=2,
        update=[before[0]["id"]],
        delete=[before[1]["id"]],
    )

    after = switched.truth("pluvo", "paginatedTrainings")
    assert len(after) == len(before) + 2 - 1
    assert before[1]["id"] not in {row["id"] for row in after}
    assert {row["id"] for row in after[-3:]} == {before[0]["id"], *result["inserted"]}
    assert all(parse_iso(row["updatedAt"]) > newest for row in after[-3:])
    nodes, counts = page_through(switched, access_token, "paginatedTrainings")
    assert nodes == after
    assert set(counts) == {len(after)}


def test_deleting_a_user_nulls_references_and_bumps_the_referring_rows(switched):
    events = switched.truth("pluvo", "paginatedEvents")
    user_id = next(row["user"]["id"] for row in events if row["user"])

    result = switched.mutate(api="pluvo", entity="users", delete=[user_id])

    assert result["deleted"] == [user_id]
    events_after = {row["id"]: row for row in switched.truth("pluvo", "paginatedEvents")}
    referring = [row["id"] for row in events if row["user"] and row["user"]["id"] == user_id]
    assert sorted(referring) == result["cascaded"]["events"]
    for row_id in referring:
        assert events_after[row_id]["user"] is None
        assert parse_iso(events_after[row_id]["updatedAt"]) > parse_iso(events[0]["updatedAt"])


def test_cursor_from_before_an_update_still_pages_forward(switched):
    access_token = token(switched)
    query = page_query("paginatedGroups", "id updatedAt")
    first_page = gql(switched, access_token, query, first=10)["paginatedGroups"]
    moved = first_page["edges"][2]["node"]["id"]

    switched.mutate(api="pluvo", entity="groups", update=[moved])
    rest, after = [], first_page["pageInfo"]["endCursor"]
    while after:
        page = gql(switched, access_token, query, first=50, after=after)["paginatedGroups"]
        rest.extend(edge["node"]["id"] for edge in page["edges"])
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None

    assert rest[-1] == moved
    seen = [edge["node"]["id"] for edge in first_page["edges"]] + rest
    assert sorted(set(seen)) == sorted(row["id"] for row in switched.truth("pluvo", "groups"))
