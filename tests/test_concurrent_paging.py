"""Pages requested ahead (offset cursors: several of one connection at once) are checked as
strictly as pages read one at a time: a short page in the middle fails the read in one line, and
rows deleted while the connection is paged miss no other row."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lxp_sync.sources.core.errors import DataMismatchError
from lxp_sync.sources.core.graphql import GraphQLClient, cursor_offset, offset_cursor, relay_pages
from lxp_sync.sources.plusplus.graphql import graphql_client
from lxp_sync_sandbox.plusplus_graphql import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import sync
from tests.test_completeness import (
    PLUSPLUS_GRAPHQL,
    assert_no_row_missed_or_loaded_twice,
    failed_line,
    mutated,
    page_cursor,
    table_keys,
)

USERS = dataclasses.replace(PLUSPLUS_GRAPHQL, page_size=20)
SIZE = USERS.page_size
MIDDLE = 5  # of the users' 9 pages at 1500 rows


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=1500, seed=29) as process:
        yield process


class InFlight:
    """The most requests of a client on their way at once (the requests are real)."""

    def __init__(self, gql: GraphQLClient) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()
        send = gql.api.request_json

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return send(*args, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        gql.api.request_json = counted  # type: ignore[method-assign]


def read_users(sandbox: SandboxProcess) -> tuple[list[Any], InFlight]:
    gql = graphql_client(f"{sandbox.url}/plusplus_graphql/graphql/", API_TOKEN, max_retries=1)
    users = gql.schema().connections()["users"]
    flight = InFlight(gql)
    pages = relay_pages(
        gql, users, "pk", resource="plusplus_graphql.users", key="pk", page_size=SIZE
    )
    return [node["pk"] for page in pages for node in page.nodes], flight


def test_offset_cursors_are_recognised_exactly() -> None:
    assert cursor_offset(offset_cursor(49)) == 49
    assert offset_cursor(49) == "YXJyYXljb25uZWN0aW9uOjQ5"  # graphene's own
    for other in (None, "", "cGx1dm86MTox", "YXJyYXljb25uZWN0aW9uOi0x", "not base64!"):
        assert cursor_offset(other) is None, other  # keys, negative offsets, garbage


def test_a_concurrent_read_fails_in_one_line_on_a_short_page_in_the_middle(
    faulty: SandboxProcess, workdir: Path
) -> None:
    truth = sorted(row["pk"] for row in faulty.truth("plusplus_graphql", "users"))
    assert len(truth) > (MIDDLE + 1) * SIZE
    faulty.configure(latency_ms=30)  # pages overlap only if they take a while
    try:
        keys, flight = read_users(faulty)
        assert sorted(keys) == truth
        assert flight.most >= 2, "no page was requested ahead"

        faulty.fault(
            api="plusplus_graphql", kind="short", count=2, body_contains=page_cursor(MIDDLE, SIZE)
        )
        with pytest.raises(DataMismatchError) as failure:
            read_users(faulty)
        assert str(failure.value).startswith(
            f"plusplus_graphql.users page {MIDDLE}: a short page: received {SIZE - 1} rows "
            f"where {SIZE} were expected (hasNextPage true), also after 1 retries"
        ), failure.value

        faulty.fault(
            api="plusplus_graphql", kind="short", count=2, body_contains=page_cursor(MIDDLE, SIZE)
        )
        line = failed_line(USERS, faulty, workdir)
    finally:
        faulty.configure(latency_ms=0)
    assert line.startswith(f"plusplus_graphql.users page {MIDDLE}: a short page: "), line
    assert "request_id req_" in line, line
    assert table_keys(workdir, "plusplus_graphql", "users", "pk") is None  # nothing committed
    pipeline = sync("plusplus_graphql", faulty, workdir, **USERS.args())
    USERS.assert_equals_truth(faulty, workdir, pipeline)


@pytest.mark.parametrize("at_page", [2, MIDDLE])
def test_rows_deleted_while_pages_are_read_ahead_miss_no_other_row(
    fresh_sandbox: SandboxProcess, workdir: Path, at_page: int
) -> None:
    sandbox = fresh_sandbox
    first_page = [row["pk"] for row in sandbox.truth("plusplus_graphql", "users")[:3]]
    sandbox.configure(latency_ms=20)
    sandbox.fault(
        api="plusplus_graphql",
        kind="mutate",
        body_contains=page_cursor(at_page, SIZE),
        mutation={"entity": "users", "hard_delete": first_page},
    )
    try:
        sync("plusplus_graphql", sandbox, workdir, **USERS.args())
    finally:
        sandbox.configure(latency_ms=0)

    changed = mutated(sandbox, "plusplus_graphql")
    assert set(first_page) <= set(changed.get("hard_deleted", []))
    assert_no_row_missed_or_loaded_twice(USERS, sandbox, workdir, changed)
    loaded = set(table_keys(workdir, "plusplus_graphql", "users", "pk") or [])
    truth = {row["pk"] for row in sandbox.truth("plusplus_graphql", "users")}
    assert truth <= loaded  # every row there now is loaded (the deleted ones were read before)
