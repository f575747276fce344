"""The PlusPlus REST source against the sandbox: full syncs, incremental runs, faults."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lxp_sync.sources.plusplus.settings import REST_ENDPOINTS
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import Rows, diff_child_table, diff_table, duckdb_rows, table_reader
from tests.helpers import loaded_rows, sync

PAGE_SIZE = 100
CURSOR_BACKED = ["content_items", "assignments", "enrollments"]


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Names and emails of users and content items embedded in assignments and enrollments: when a
# user is renamed, the API shows the new name inside every assignment, but no cursor marks those
# assignments as changed. They are copies as of each row's last load (the README says so); the
# ids beside them are exact and join to the current rows.
EMBEDDED_COPIES = frozenset(
    {"user__name", "user__email", "content_item__name", "content_item__content_type", "event__name"}
)


def assert_warehouse_equals_truth(
    sandbox: SandboxProcess,
    workdir: Path | Rows,
    ignore: frozenset[str] = frozenset(),
    resources: Collection[str] = REST_ENDPOINTS,
) -> None:
    rows = table_reader(workdir, "plusplus_rest")
    for resource in resources:
        truth = sandbox.truth("plusplus_rest", resource)
        loaded = rows(resource)
        assert len(truth) > 0, resource
        problems = diff_table(truth, loaded, "public_id", ignore=ignore)
        assert not problems, f"{resource}: {problems}"
    if "content_items" not in resources:
        return
    truth = sandbox.truth("plusplus_rest", "content_items")
    parents = rows("content_items")
    children = rows("content_items__groups")
    assert children, "content item groups should load as a child table"
    assert not diff_child_table(truth, parents, children, "public_id", "groups")


def expected_pages(matching: int) -> int:
    """Requests for `matching` rows: the pages, plus one to confirm a last page that was full."""
    pages = max(1, math.ceil(matching / PAGE_SIZE))
    return pages + (1 if matching and matching % PAGE_SIZE == 0 else 0)


def requests_per_resource(sandbox: SandboxProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in sandbox.requests("plusplus_rest"):
        resource = entry["path"].rstrip("/").rsplit("/", 1)[-1]
        counts[resource] = counts.get(resource, 0) + 1
    return counts


def test_full_sync_equals_truth_for_every_resource(sandbox: SandboxProcess, workdir: Path) -> None:
    pipeline = sync("plusplus_rest", sandbox, workdir)
    assert set(REST_ENDPOINTS) <= set(pipeline.default_schema.data_table_names())
    assert_warehouse_equals_truth(sandbox, workdir)


def test_nested_objects_become_columns_and_timestamps_are_typed(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["assignments", "users"])
    columns = pipeline.default_schema.get_table_columns("assignments")
    assert columns["user__public_id"]["data_type"] == "text"
    assert columns["content_item__content_type"]["data_type"] == "text"
    assert columns["created"]["data_type"] == "timestamp"
    assert columns["due_date"]["data_type"] == "date"
    assert columns["progress"]["data_type"] == "double"
    assert "assignments__user" not in pipeline.default_schema.tables
    users = pipeline.default_schema.get_table_columns("users")
    assert users["manager__email"]["data_type"] == "text"
    assert users["is_active"]["data_type"] == "bool"


def test_incremental_run_after_mutations_reads_only_new_pages_and_equals_truth(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("plusplus_rest", sandbox, workdir)
    before = {r: sandbox.truth("plusplus_rest", r) for r in CURSOR_BACKED}
    last_modified = max(_moment(row["modified"]) for row in before["content_items"])
    last_created = {r: max(_moment(row["created"]) for row in before[r]) for r in CURSOR_BACKED[1:]}

    # updates first, so that they touch rows of the first run, not the rows inserted here
    sandbox.mutate(api="plusplus_rest", entity="content_items", update=5)
    sandbox.mutate(api="plusplus_rest", entity="content_items", insert=7)
    sandbox.mutate(api="plusplus_rest", entity="users", update=4)
    sandbox.mutate(api="plusplus_rest", entity="users", insert=3)
    sandbox.mutate(api="plusplus_rest", entity="groups", update=2)
    # late state changes on old rows, inside the refresh window (no timestamp marks them)
    late = sandbox.mutate(
        api="plusplus_rest", entity="assignments", update=2, created_within_days=5
    )["updated"]
    sandbox.mutate(api="plusplus_rest", entity="assignments", insert=4)
    sandbox.mutate(api="plusplus_rest", entity="enrollments", update=1, created_within_days=5)
    sandbox.mutate(api="plusplus_rest", entity="enrollments", insert=2)
    sandbox.clear_requests()

    pipeline = sync("plusplus_rest", sandbox, workdir)

    assert_warehouse_equals_truth(sandbox, workdir, ignore=EMBEDDED_COPIES)
    counts = requests_per_resource(sandbox)
    truth_items = sandbox.truth("plusplus_rest", "content_items")
    changed = sum(_moment(row["modified"]) >= last_modified for row in truth_items)
    assert counts["content_items"] == expected_pages(changed)
    window = timedelta(days=14)
    for resource in CURSOR_BACKED[1:]:
        rows = sandbox.truth("plusplus_rest", resource)
        inside = sum(_moment(row["created"]) >= last_created[resource] - window for row in rows)
        assert counts[resource] == expected_pages(inside), resource
        assert counts[resource] < math.ceil(len(rows) / PAGE_SIZE) / 2, resource
    loaded = loaded_rows(pipeline)
    # only what changed was loaded: new and updated rows, not the refresh window's unchanged rows
    newer = sum(_moment(row["modified"]) > last_modified for row in truth_items)
    assert newer >= 12  # a renamed group also bumps the content items that list it
    assert loaded.get("content_items") == newer
    assert loaded.get("assignments") == 4 + len(late)
    assert loaded.get("enrollments") == 3


def test_second_run_without_changes_loads_nothing_new(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    sync("plusplus_rest", sandbox, workdir)
    warehouse = str(workdir / "warehouse.duckdb")
    first = {r: duckdb_rows(warehouse, "plusplus_rest", r) for r in REST_ENDPOINTS}

    pipeline = sync("plusplus_rest", sandbox, workdir)

    loaded = loaded_rows(pipeline)
    for resource in [*CURSOR_BACKED, "groups", "articles"]:
        assert loaded.get(resource, 0) == 0, resource
    for resource in REST_ENDPOINTS:
        second = duckdb_rows(warehouse, "plusplus_rest", resource)
        strip = lambda rows: sorted(  # noqa: E731
            ({k: v for k, v in row.items() if not k.startswith("_dlt")} for row in rows),
            key=lambda row: row["public_id"],
        )
        assert strip(second) == strip(first[resource]), resource


def test_sync_survives_429_with_retry_after_and_503s(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.fault(api="plusplus_rest", path_contains="content_items", status=429, retry_after=1)
    sandbox.fault(api="plusplus_rest", path_contains="assignments", status=503, count=2)
    sandbox.fault(api="plusplus_rest", path_contains="users", kind="drop")
    sandbox.fault(api="plusplus_rest", path_contains="groups", kind="malformed")

    sync("plusplus_rest", sandbox, workdir)

    statuses = [entry["status"] for entry in sandbox.requests("plusplus_rest")]
    assert statuses.count(429) == 1 and statuses.count(503) == 2
    assert_warehouse_equals_truth(sandbox, workdir)


def test_pacing_keeps_under_the_rate_limit(fresh_sandbox: SandboxProcess, workdir: Path) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(rate_limit=8, rate_window_s=1.0)
    sandbox.clear_requests()

    sync("plusplus_rest", sandbox, workdir, resources=["users", "content_items", "assignments"])

    statuses = [entry["status"] for entry in sandbox.requests("plusplus_rest")]
    assert len(statuses) > 16, "the test needs more requests than one window allows"
    assert 429 not in statuses


@pytest.mark.parametrize("page_size", [7, 250])
def test_page_size_is_clamped_to_the_maximum_and_any_size_pages_correctly(
    sandbox: SandboxProcess, workdir: Path, page_size: int
) -> None:
    sync("plusplus_rest", sandbox, workdir, resources=["groups"], page_size=page_size)
    truth = sandbox.truth("plusplus_rest", "groups")
    loaded = duckdb_rows(str(workdir / "warehouse.duckdb"), "plusplus_rest", "groups")
    assert not diff_table(truth, loaded, "public_id")
