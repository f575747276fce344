"""The sandbox's PlusPlus Public REST API behaves as its OpenAPI document (seed 002) says."""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any

import httpx
import pytest

from lxp_sync_sandbox.base import now, parse_iso
from lxp_sync_sandbox.plusplus_rest import API_TOKEN, ENTITIES
from lxp_sync_sandbox.server import SandboxProcess

API = "plusplus_rest"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def client(sandbox: SandboxProcess) -> httpx.Client:
    return httpx.Client(base_url=f"{sandbox.url}/{API}/api/v1", headers=AUTH, timeout=30)


def all_pages(http: httpx.Client, entity: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        response = http.get(f"/{entity}/", params={**params, "page": page, "page_size": 100})
        response.raise_for_status()
        body = response.json()
        rows.extend(body["data"])
        if page * 100 >= body["meta"]["total_count"]:
            return rows
        page += 1


def test_request_without_a_valid_token_is_401_with_the_error_envelope(sandbox):
    for headers in ({}, {"Authorization": "Bearer pp_wrong"}, {"Authorization": API_TOKEN}):
        response = httpx.get(f"{sandbox.url}/{API}/api/v1/users/", headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert error["message"] == "Invalid or missing API token."
        assert re.fullmatch(r"req_[0-9a-f]+", error["request_id"])
        assert response.headers["X-Request-Id"] == error["request_id"]


def test_every_response_carries_a_fresh_request_id(sandbox):
    with client(sandbox) as http:
        ids = {http.get("/groups/").headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("req_") for i in ids)


@pytest.mark.parametrize("page_size", ["101", "0", "ten"])
def test_page_size_outside_1_to_100_is_a_validation_error(sandbox, page_size):
    with client(sandbox) as http:
        response = http.get("/users/", params={"page_size": page_size})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["field_errors"]) == ["page_size"]
    assert error["request_id"] == response.headers["X-Request-Id"]


def test_page_size_defaults_to_25_and_trailing_slash_is_optional(sandbox):
    with client(sandbox) as http:
        with_slash = http.get("/articles/")
        without = http.get("/articles")
    assert without.status_code == with_slash.status_code == 200  # no redirect
    assert without.json() == with_slash.json()
    assert len(with_slash.json()["data"]) == 25
    assert with_slash.json()["meta"]["page"] == 1
    assert with_slash.json()["meta"]["page_size"] == 25


@pytest.mark.parametrize("entity", ENTITIES)
def test_pages_cover_the_truth_exactly_once_in_order(sandbox, entity):
    truth = sandbox.truth(API, entity)
    with client(sandbox) as http:
        rows = all_pages(http, entity)
        past_end = http.get(f"/{entity}/", params={"page": 10_000, "page_size": 100}).json()
    assert rows == truth
    assert len({r["public_id"] for r in rows}) == len(rows) >= 5
    assert past_end == {
        "data": [],
        "meta": {"page": 10_000, "page_size": 100, "total_count": len(truth)},
    }


def test_articles_are_the_content_items_of_type_article_without_groups(sandbox):
    articles = sandbox.truth(API, "articles")
    items = {r["public_id"]: r for r in sandbox.truth(API, "content_items")}
    for article in articles:
        item = dict(items[article["public_id"]])
        assert isinstance(item.pop("groups"), list)
        assert item == article
    assert sum(r["content_type"] == "article" for r in items.values()) == len(articles)


def test_created_gte_is_inclusive_and_accepts_any_offset(sandbox):
    truth = sandbox.truth(API, "assignments")
    pivot = truth[len(truth) // 2]
    moment = parse_iso(pivot["created"])
    # The same instant written in another offset than the row's own.
    as_text = moment.astimezone(timezone(timedelta(hours=-7))).isoformat()
    expected = [r for r in truth if parse_iso(r["created"]) >= moment]
    with client(sandbox) as http:
        body = http.get("/assignments/", params={"created_gte": as_text, "page_size": 100}).json()
    assert body["meta"]["total_count"] == len(expected)
    assert body["data"][0] == pivot
    assert body["data"] == expected[:100]


def test_created_lte_with_a_plain_date_means_midnight_utc(sandbox):
    truth = sandbox.truth(API, "enrollments")
    day = parse_iso(truth[len(truth) // 3]["created"]).date().isoformat()
    limit = parse_iso(f"{day}T00:00:00Z")
    with client(sandbox) as http:
        rows = all_pages(http, "enrollments", created_lte=day)
    assert rows == [r for r in truth if parse_iso(r["created"]) <= limit]


def test_an_unparseable_datetime_filter_is_a_validation_error_naming_the_field(sandbox):
    with client(sandbox) as http:
        response = http.get("/content_items/", params={"modified_gte": "last tuesday"})
    assert response.status_code == 400
    assert list(response.json()["error"]["field_errors"]) == ["modified_gte"]


def test_content_type_filter_accepts_a_comma_separated_list(sandbox):
    truth = sandbox.truth(API, "content_items")
    with client(sandbox) as http:
        rows = all_pages(http, "content_items", content_type="video,course")
        single = http.get("/content_items/", params={"content_type": "video"}).json()
    assert rows == [r for r in truth if r["content_type"] in ("video", "course")]
    assert {r["content_type"] for r in rows} == {"video", "course"}
    assert single["meta"]["total_count"] == sum(r["content_type"] == "video" for r in truth)


def test_user_filter_returns_exactly_that_users_assignments(sandbox):
    truth = sandbox.truth(API, "assignments")
    user = max(
        {r["user"]["public_id"] for r in truth},
        key=lambda u: sum(r["user"]["public_id"] == u for r in truth),
    )
    with client(sandbox) as http:
        rows = all_pages(http, "assignments", user=user)
    assert rows == [r for r in truth if r["user"]["public_id"] == user]
    assert len(rows) >= 2


def test_users_filter_by_manager_and_active_status(sandbox):
    truth = sandbox.truth(API, "users")
    manager = next(r["manager"]["public_id"] for r in truth if r["manager"])
    with client(sandbox) as http:
        rows = all_pages(http, "users", manager=manager, is_active="true")
    expected = [
        r for r in truth if r["manager"] and r["manager"]["public_id"] == manager and r["is_active"]
    ]
    assert rows == expected


def test_assigning_returns_201_then_200_for_the_same_user_and_item(fresh_sandbox):
    user = fresh_sandbox.truth(API, "users")[0]["public_id"]
    assigned = {
        (r["user"]["public_id"], r["content_item"]["public_id"])
        for r in fresh_sandbox.truth(API, "assignments")
    }
    item = next(
        r["public_id"]
        for r in fresh_sandbox.truth(API, "content_items")
        if (user, r["public_id"]) not in assigned
    )
    body = {"user_id": user, "content_item_id": item, "due_date": "2026-03-01"}
    with client(fresh_sandbox) as http:
        first = http.post("/assignments/", json=body)
        second = http.post("/assignments/", json=body)
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["state"] == "not_started"
    assert first.json()["due_date"] == "2026-03-01"
    assert first.json() in fresh_sandbox.truth(API, "assignments")


def test_completing_twice_is_a_409_conflict(fresh_sandbox):
    outstanding = next(
        r for r in fresh_sandbox.truth(API, "assignments") if r["state"] == "in_progress"
    )
    with client(fresh_sandbox) as http:
        done = http.post(f"/assignments/{outstanding['public_id']}/complete/")
        again = http.post(f"/assignments/{outstanding['public_id']}/complete/")
        fetched = http.get(f"/assignments/{outstanding['public_id']}/")
    assert done.status_code == 200
    assert done.json()["state"] == "completed"
    assert done.json()["completed_datetime"] is not None
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert fetched.json() == done.json()


def test_unknown_public_id_is_404_not_found(sandbox):
    with client(sandbox) as http:
        response = http.post("/assignments/00000000-0000-4000-8000-000000000000/drop/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_creating_a_user_with_an_existing_email_is_a_validation_error(sandbox):
    existing = sandbox.truth(API, "users")[3]["email"]
    with client(sandbox) as http:
        response = http.post("/users/", json={"email": existing, "name": "Zoë Ångström"})
    assert response.status_code == 400
    assert list(response.json()["error"]["field_errors"]) == ["email"]


def test_bulk_archive_with_an_unknown_id_is_207_with_per_item_results(fresh_sandbox):
    item = next(r for r in fresh_sandbox.truth(API, "content_items") if not r["is_archived"])
    items = [
        {"public_id": item["public_id"]},
        {"public_id": "00000000-0000-4000-8000-000000000000"},
    ]
    with client(fresh_sandbox) as http:
        response = http.post("/content_items/bulk_archive/", json={"items": items})
        too_many = http.post("/content_items/bulk_archive/", json={"items": items * 51})
    assert response.status_code == 207
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["succeeded", "failed"]
    archived = next(
        r for r in fresh_sandbox.truth(API, "content_items") if r["public_id"] == item["public_id"]
    )
    assert archived["is_archived"] is True
    assert parse_iso(archived["modified"]) > parse_iso(item["modified"])
    assert too_many.status_code == 400


def test_mutations_show_in_truth_and_in_modified_gte(fresh_sandbox):
    before = {r["public_id"]: r for r in fresh_sandbox.truth(API, "content_items")}
    since = now()  # the sandbox runs on this machine's clock
    changed = fresh_sandbox.mutate(api=API, entity="content_items", insert=2, update=3, delete=1)
    after = {r["public_id"]: r for r in fresh_sandbox.truth(API, "content_items")}
    assert set(after) == set(before) - set(changed["deleted"]) | set(changed["inserted"])
    for public_id in changed["updated"]:
        assert after[public_id]["name"] != before[public_id]["name"]
    with client(fresh_sandbox) as http:
        recent = all_pages(http, "content_items", modified_gte=since.isoformat())
    assert {r["public_id"] for r in recent} == set(changed["inserted"]) | set(changed["updated"])
    assert list(after)[-2:] == changed["inserted"]  # inserted rows come last


def test_assignment_updates_within_a_window_change_state_but_not_created(fresh_sandbox):
    before = {r["public_id"]: r for r in fresh_sandbox.truth(API, "assignments")}
    newest = max(parse_iso(r["created"]) for r in before.values())
    changed = fresh_sandbox.mutate(api=API, entity="assignments", update=5, created_within_days=90)
    after = {r["public_id"]: r for r in fresh_sandbox.truth(API, "assignments")}
    assert len(changed["updated"]) == 5
    for public_id in changed["updated"]:
        assert after[public_id] != before[public_id]
        assert after[public_id]["created"] == before[public_id]["created"]
        assert parse_iso(before[public_id]["created"]) >= newest - timedelta(days=90)


def test_renaming_a_user_shows_in_every_row_that_embeds_them(fresh_sandbox):
    assignments = fresh_sandbox.truth(API, "assignments")
    user = assignments[0]["user"]["public_id"]
    with client(fresh_sandbox) as http:
        before = all_pages(http, "assignments", user=user)  # caches the rows' bytes
        renamed = http.patch(f"/users/{user}/", json={"name": "Zoë Ångström 🚀"})
        after = all_pages(http, "assignments", user=user)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Zoë Ångström 🚀"
    assert len(after) == len(before) >= 1
    assert {r["user"]["name"] for r in after} == {"Zoë Ångström 🚀"}
    assert after == [
        r for r in fresh_sandbox.truth(API, "assignments") if r["user"]["public_id"] == user
    ]
