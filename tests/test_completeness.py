"""Completeness under faults, for every source: a page that cannot be right fails the resource in
one line with the numbers and the request id, nothing of it is committed, the next clean run
equals the truth; and a list that changes while it is paged loses no row and loads none twice."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from hypothesis import example, given
from hypothesis import strategies as st

from lxp_sync.pipelines.errors import explain
from lxp_sync.sources.core.completeness import KeySet
from lxp_sync.sources.core.errors import DataMismatchError
from lxp_sync.sources.core.graphql import offset_cursor, relay_pages
from lxp_sync.sources.plusplus.graphql import graphql_client
from lxp_sync_sandbox.plusplus_graphql import API_TOKEN as GRAPHQL_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import error_line, lxp_sync, sync
from tests.test_cli import rest_env
from tests.test_pitchly import assert_table_equals_truth
from tests.test_plusplus_graphql import assert_connection_equals_truth
from tests.test_plusplus_rest import assert_warehouse_equals_truth as rest_equals_truth
from tests.test_pluvo import assert_warehouse_equals_truth as pluvo_equals_truth

ROWS = 1500


@pytest.fixture(scope="module")
def faulty() -> Iterator[SandboxProcess]:
    """A sandbox of this module's own for fault tests: faults are used up, rows never change."""
    with SandboxProcess(rows=ROWS, seed=23) as process:
        yield process


@dataclass(frozen=True)
class Target:
    """One resource of a source, read in several pages, and how to aim a fault at its page 2."""

    source: str
    resource: str
    page_size: int
    count: str  # the count's name, as error lines say it

    def args(self, **extra: Any) -> dict[str, Any]:
        return {"resources": [self.resource], "page_size": self.page_size, **extra}

    def page_two(self, sandbox: SandboxProcess) -> dict[str, Any]:
        """Fault fields that match the second page request of the resource's first read."""
        if self.source == "plusplus_rest":
            return {"path_contains": f"{self.resource}/?page_size={self.page_size}&page=2"}
        if self.source == "plusplus_graphql":
            # offset cursors: the pages after the first are requested at once, in no set order
            return {"body_contains": page_cursor(2, self.page_size)}
        return {"body_contains": self.marker(sandbox), "skip": 1}

    def marker(self, sandbox: SandboxProcess) -> str:
        """Text only the resource's page requests carry."""
        if self.source == "pitchly":
            return pitchly_table_id(sandbox, "Matters")
        return {"plusplus_graphql": "{ users(", "pluvo": "paginatedUsers("}[self.source]

    def truth(self, sandbox: SandboxProcess) -> list[dict[str, Any]]:
        entity = {
            "plusplus_rest": self.resource,
            "plusplus_graphql": self.resource,
            "pluvo": "paginatedUsers",
        }.get(self.source) or f"records:{pitchly_table_id(sandbox, 'Matters')}"
        return sandbox.truth(self.source, entity)

    @property
    def key(self) -> str:
        return {"plusplus_rest": "public_id", "plusplus_graphql": "pk"}.get(self.source, "id")

    def assert_equals_truth(self, sandbox: SandboxProcess, workdir: Path, pipeline: Any) -> None:
        if self.source == "plusplus_rest":
            rest_equals_truth(sandbox, workdir, resources=[self.resource])
        elif self.source == "plusplus_graphql":
            assert_connection_equals_truth(sandbox, workdir, self.resource)
        elif self.source == "pluvo":
            pluvo_equals_truth(sandbox, workdir, resources=[self.resource])
        else:
            table_id = pitchly_table_id(sandbox, "Matters")
            assert_table_equals_truth(sandbox, pipeline, workdir, table_id, self.resource)


REST = Target("plusplus_rest", "assignments", 100, "total_count")
PLUSPLUS_GRAPHQL = Target("plusplus_graphql", "users", 50, "totalCount")
PLUVO = Target("pluvo", "users", 50, "count")
PITCHLY = Target("pitchly", "legal__matters", 100, "totalCount")  # no Updated At: replaced
GRAPHQL_TARGETS = [PLUSPLUS_GRAPHQL, PLUVO, PITCHLY]
CONNECTIONS = {
    "plusplus_graphql": "users",
    "pluvo": "paginatedUsers",
    "pitchly": "recordsConnection",
}


def page_cursor(page: int, page_size: int) -> str:
    """What only the request of `page` of an offset-cursor connection carries: its `after`."""
    return f'"after":"{offset_cursor((page - 1) * page_size - 1)}"'


def pitchly_table_id(sandbox: SandboxProcess, name: str) -> str:
    return next(t["id"] for t in sandbox.truth("pitchly", "tables") if t["name"] == name)


def table_keys(workdir: Path, dataset: str, table: str, key: str) -> list[Any] | None:
    """Every key of a loaded table (None: the table or the warehouse does not exist)."""
    path = workdir / "warehouse.duckdb"
    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            return [
                row[0]
                for row in con.execute(f'SELECT "{key}" FROM "{dataset}"."{table}"').fetchall()
            ]
        except duckdb.CatalogException:
            return None


def failed_line(target: Target, sandbox: SandboxProcess, workdir: Path, **args: Any) -> str:
    """A run of the target that must fail: the one line it ends with (exit code 1)."""
    with pytest.raises(PipelineStepFailed) as failure:
        sync(target.source, sandbox, workdir, **target.args(max_retries=1, **args))
    line, code = explain(failure.value, target.source)
    assert code == 1 and "\n" not in line, line
    return line


# --- a page that cannot be right ---------------------------------------------------------------

REST_FAULTS = {
    "short": "received 99 rows where 100 were expected (total_count {total}",
    "empty": "received 0 rows where 100 were expected (total_count {total}",
    "no_data": "the answer has no `data` list",
    "null_node": "the page has a null row",
    "no_count": "the answer has no `meta.total_count`",
}
GRAPHQL_FAULTS = {
    "short": "a short page: received {short} rows where {size} were expected (hasNextPage true)",
    "empty": "a short page: received 0 rows where {size} were expected (hasNextPage true)",
    "early_end": "hasNextPage is false after {two_pages} rows where {count} is {total}",
    "no_data": "the API answered with data without `{connection}`",
    "null_node": "the page has a null node",
    "null_edge": "the page has a null edge",
    "no_page_info": "has no `pageInfo {{ hasNextPage }}`",
    "no_count": "has no `{count}`",
}
CASES = [(REST, kind, text) for kind, text in REST_FAULTS.items()] + [
    (target, kind, text) for target in GRAPHQL_TARGETS for kind, text in GRAPHQL_FAULTS.items()
]


@pytest.mark.parametrize(
    ("target", "kind", "expected"), CASES, ids=[f"{t.source}-{k}" for t, k, _ in CASES]
)
def test_a_page_that_cannot_be_right_fails_in_one_line_and_the_next_run_equals_truth(
    faulty: SandboxProcess, workdir: Path, target: Target, kind: str, expected: str
) -> None:
    sandbox = faulty
    total = len(target.truth(sandbox))
    sandbox.fault(api=target.source, kind=kind, count=2, **target.page_two(sandbox))

    line = failed_line(target, sandbox, workdir)

    numbers = {
        "total": total,
        "size": target.page_size,
        "short": target.page_size - 1,
        "two_pages": 2 * target.page_size,
        "count": target.count,
        "connection": CONNECTIONS.get(target.source),
    }
    assert line.startswith(f"{target.source}.{target.resource} page 2: "), line
    assert expected.format(**numbers) in line, line
    assert "request_id req_" in line, line
    assert table_keys(workdir, target.source, target.resource, target.key) is None
    pipeline = sync(target.source, sandbox, workdir, **target.args())
    target.assert_equals_truth(sandbox, workdir, pipeline)


def test_an_empty_200_page_fails_the_command_with_exit_1_and_the_rerun_loads_every_row(
    faulty: SandboxProcess, workdir: Path
) -> None:
    """The issue's own reproduction, through the command."""
    sandbox = faulty
    body = {"data": [], "meta": {"total_count": 1000}}
    sandbox.fault(
        api="plusplus_rest",
        path_contains="assignments/?page_size=100&page=2",
        status=200,
        count=9,
        body=body,
    )
    env = rest_env(sandbox, workdir, SOURCES__PLUSPLUS_REST__MAX_RETRIES="1")

    failed = lxp_sync("run", "plusplus_rest", "--resources", "assignments", env=env, cwd=workdir)
    sandbox.clear_requests()  # and the remaining faults
    rerun = lxp_sync("run", "plusplus_rest", "--resources", "assignments", env=env, cwd=workdir)

    assert failed.returncode == 1, failed.stderr
    line = error_line(failed.stderr)
    assert "plusplus_rest.assignments page 2: received 0 rows where 100 were expected" in line
    assert "(total_count 1000, 100 a page), also after 1 retries" in line
    assert rerun.returncode == 0, rerun.stderr
    with duckdb.connect(str(workdir / "lxp_sync.duckdb"), read_only=True) as con:
        count = con.execute("SELECT COUNT(*) FROM plusplus_rest.assignments").fetchone()[0]
    assert count == len(sandbox.truth("plusplus_rest", "assignments"))


def test_a_page_wrong_once_is_fetched_again_and_the_run_succeeds(
    faulty: SandboxProcess, workdir: Path
) -> None:
    for target in (REST, PLUVO):
        faulty.fault(api=target.source, kind="short", count=1, **target.page_two(faulty))
        pipeline = sync(target.source, faulty, workdir, **target.args(max_retries=1))
        target.assert_equals_truth(faulty, workdir, pipeline)


@pytest.mark.parametrize("target", GRAPHQL_TARGETS, ids=lambda t: t.source)
def test_a_page_asked_for_ahead_with_a_body_cut_short_is_asked_for_again_and_the_run_is_exact(
    faulty: SandboxProcess, workdir: Path, target: Target
) -> None:
    """A page asked for ahead waits as its bytes and is decoded in its turn: a body that is not
    JSON then is asked for again (one request more than a clean run), never a page lost."""
    (workdir / "clean").mkdir()
    faulty.clear_requests()
    sync(target.source, faulty, workdir / "clean", **target.args())
    clean = len(faulty.requests(target.source))
    faulty.clear_requests()
    faulty.fault(api=target.source, kind="malformed", count=1, **target.page_two(faulty))

    pipeline = sync(target.source, faulty, workdir, **target.args(max_retries=1))

    assert len(faulty.requests(target.source)) == clean + 1
    target.assert_equals_truth(faulty, workdir, pipeline)


def test_a_server_that_silently_caps_the_page_size_is_paged_by_what_it_serves(
    faulty: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faulty.configure(api="pluvo", silent_cap=20)
    try:
        with caplog.at_level("INFO", logger="lxp_sync"):
            pipeline = sync("pluvo", faulty, workdir, **PLUVO.args())
    finally:
        faulty.configure(api="pluvo", silent_cap=None)
    PLUVO.assert_equals_truth(faulty, workdir, pipeline)
    assert "serves 20 rows a page where 50 were asked for" in caplog.text


# --- a failed resource commits nothing ---------------------------------------------------------


def pipeline_state(workdir: Path, source: str) -> dict[str, Any]:
    pipeline = dlt.attach(f"lxp_sync_{source}", pipelines_dir=str(workdir / "pipelines"))
    return pipeline.state["sources"][source]


def rows_of(workdir: Path, dataset: str, table: str) -> list[tuple]:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        return sorted(
            con.execute(f'SELECT * FROM "{dataset}"."{table}"').fetchall(),
            key=str,
        )


def test_a_failed_incremental_run_changes_no_row_and_no_cursor_and_the_rerun_reads_its_pages(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("plusplus_rest", sandbox, workdir, resources=["content_items"])
    before, state = (
        rows_of(workdir, "plusplus_rest", "content_items"),
        pipeline_state(workdir, "plusplus_rest"),
    )
    sandbox.mutate(api="plusplus_rest", entity="content_items", insert=150, update=5)
    sandbox.clear_requests()
    sandbox.fault(
        api="plusplus_rest",
        path_contains="content_items/?modified_gte",
        kind="empty",
        skip=1,
        count=20,
    )

    with pytest.raises(PipelineStepFailed):
        sync("plusplus_rest", sandbox, workdir, resources=["content_items"], max_retries=1)

    assert rows_of(workdir, "plusplus_rest", "content_items") == before
    assert pipeline_state(workdir, "plusplus_rest") == state
    failed_queries = {r["query"].split("&page_size")[0] for r in sandbox.requests("plusplus_rest")}
    sandbox.clear_requests()
    sync("plusplus_rest", sandbox, workdir, resources=["content_items"])
    queries = {r["query"].split("&page_size")[0] for r in sandbox.requests("plusplus_rest")}
    assert queries == failed_queries and len(queries) == 1  # the same `modified_gte` again
    assert_equals = rest_equals_truth
    assert_equals(sandbox, workdir, resources=["content_items"])


def test_a_replaced_table_keeps_its_rows_when_its_full_read_fails(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("pitchly", sandbox, workdir, **PITCHLY.args())
    before = rows_of(workdir, "pitchly", PITCHLY.resource)
    table_id = pitchly_table_id(sandbox, "Matters")
    sandbox.mutate(api="pitchly", entity=f"records:{table_id}", insert=5, delete=5)
    sandbox.fault(api="pitchly", kind="early_end", count=2, **PITCHLY.page_two(sandbox))

    failed_line(PITCHLY, sandbox, workdir)

    assert rows_of(workdir, "pitchly", PITCHLY.resource) == before
    pipeline = sync("pitchly", sandbox, workdir, **PITCHLY.args())
    PITCHLY.assert_equals_truth(sandbox, workdir, pipeline)


def test_a_failed_graphql_run_keeps_its_cursor_and_the_rerun_asks_for_the_same_rows(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("plusplus_graphql", sandbox, workdir, **PLUSPLUS_GRAPHQL.args())
    state = pipeline_state(workdir, "plusplus_graphql")
    sandbox.mutate(api="plusplus_graphql", entity="users", update=60, insert=3)
    sandbox.clear_requests()
    sandbox.fault(api="plusplus_graphql", kind="no_data", count=2, body_contains="{ users(")

    failed_line(PLUSPLUS_GRAPHQL, sandbox, workdir)

    assert pipeline_state(workdir, "plusplus_graphql") == state
    since = {
        r["extra"]["args"]["users"]["modified_gte"]
        for r in sandbox.requests("plusplus_graphql")
        if "users" in (r["extra"].get("args") or {})
    }
    sandbox.clear_requests()
    sync("plusplus_graphql", sandbox, workdir, **PLUSPLUS_GRAPHQL.args())
    again = {
        r["extra"]["args"]["users"]["modified_gte"]
        for r in sandbox.requests("plusplus_graphql")
        if "users" in (r["extra"].get("args") or {})
    }
    assert since == again and None not in since
    PLUSPLUS_GRAPHQL.assert_equals_truth(sandbox, workdir, None)


# --- a list that changes while it is paged ------------------------------------------------------


def assert_no_row_missed_or_loaded_twice(
    target: Target, sandbox: SandboxProcess, workdir: Path, changed: dict[str, Any]
) -> None:
    """Every row of the source is loaded once; only rows deleted during the read may remain
    (they were read before), only rows inserted during the read may be missing."""
    truth = {row[target.key] for row in target.truth(sandbox)}
    loaded = table_keys(workdir, target.source, target.resource, target.key)
    assert loaded is not None
    assert len(loaded) == len(set(loaded)), "a row was loaded twice"
    missed = truth - set(loaded) - set(changed.get("inserted", []))
    assert not missed, f"{len(missed)} rows missed, e.g. {sorted(map(str, missed))[:3]}"
    stale = set(loaded) - truth - {*changed.get("deleted", []), *changed.get("hard_deleted", [])}
    assert not stale, (
        f"{len(stale)} rows that are not in the source, e.g. {sorted(map(str, stale))[:3]}"
    )


def mutated(sandbox: SandboxProcess, api: str) -> dict[str, Any]:
    """What the `mutate` fault changed (it must have fired)."""
    found = [r["extra"]["mutated"] for r in sandbox.requests(api) if "mutated" in r["extra"]]
    assert len(found) == 1, "the mutation did not fire during the read"
    return found[0]


def test_rows_deleted_and_inserted_while_rest_pages_are_read_miss_no_other_row(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    first_page = [row["public_id"] for row in sandbox.truth("plusplus_rest", "users")[:3]]
    sandbox.fault(
        api="plusplus_rest",
        kind="mutate",
        path_contains="users/?page_size=100&page=3",
        mutation={"entity": "users", "delete": first_page, "insert": 2},
    )

    sync("plusplus_rest", sandbox, workdir, resources=["users"])

    target = Target("plusplus_rest", "users", 100, "total_count")
    assert_no_row_missed_or_loaded_twice(
        target, sandbox, workdir, mutated(sandbox, "plusplus_rest")
    )


def test_rows_moved_deleted_and_inserted_behind_offset_cursors_miss_no_other_row(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    first_page = [row["pk"] for row in sandbox.truth("plusplus_graphql", "users")[:3]]
    sandbox.fault(
        api="plusplus_graphql",
        kind="mutate",
        body_contains="{ users(",
        skip=2,
        mutation={"entity": "users", "hard_delete": first_page, "update": 2, "insert": 2},
    )

    sync("plusplus_graphql", sandbox, workdir, **PLUSPLUS_GRAPHQL.args())

    changed = mutated(sandbox, "plusplus_graphql")
    assert_no_row_missed_or_loaded_twice(PLUSPLUS_GRAPHQL, sandbox, workdir, changed)


@pytest.mark.parametrize("target", [PLUVO, PITCHLY], ids=["pluvo", "pitchly"])
def test_rows_deleted_before_an_offset_cursor_during_the_read_miss_no_other_row(
    fresh_sandbox: SandboxProcess, workdir: Path, target: Target
) -> None:
    sandbox = fresh_sandbox
    if target.source == "pluvo":
        sandbox.configure(api="pluvo", cursor_mode="offset")
        entity = "users"
    else:
        sandbox.configure(api="pitchly", offset_cursors=True)
        entity = f"records:{pitchly_table_id(sandbox, 'Matters')}"
    first_page = [row[target.key] for row in target.truth(sandbox)[:3]]
    sandbox.fault(
        api=target.source,
        kind="mutate",
        body_contains=target.marker(sandbox),
        skip=2,
        mutation={"entity": entity, "delete": first_page, "insert": 2},
    )

    sync(target.source, sandbox, workdir, **target.args())

    assert_no_row_missed_or_loaded_twice(target, sandbox, workdir, mutated(sandbox, target.source))


def test_a_list_that_keeps_changing_fails_after_a_few_passes_in_one_line(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.fault(
        api="plusplus_rest",
        kind="mutate",
        path_contains="users/?page_size=100&page=",
        count=1000,
        mutation={"entity": "users", "delete": 1},
    )
    target = Target("plusplus_rest", "users", 100, "total_count")

    line = failed_line(target, sandbox, workdir)

    assert line.startswith("plusplus_rest.users: the list changed while it was read 4 times"), line
    assert table_keys(workdir, "plusplus_rest", "users", "public_id") is None


def test_the_key_set_agrees_with_a_python_set_and_keeps_about_8_bytes_a_key() -> None:
    rng = random.Random(5)
    keys, reference = KeySet(), set()
    for _ in range(400):
        batch = [rng.randrange(200_000) for _ in range(rng.randrange(0, 1200))]
        expected = []
        for key in batch:
            expected.append(key not in reference)
            reference.add(key)
        assert keys.add(batch) == expected
    assert len(keys) == len(reference) > 100_000
    assert keys.nbytes <= 8 * len(reference) + 8 * KeySet.PENDING


# integers Python's `hash` makes one (-1 and -2; n and n + 2**61 - 1), around int64's ends, texts
KEYS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**65), 2**65),
    st.sampled_from([2**61, 2**61 - 1, 2**62 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 + 1]),
    st.text(max_size=3),
)


@example([[-1, -2], [1, 2**61, 2**61 - 1, 0], [2**64 + 1, 2**64 + 2**61]])
@given(st.lists(st.lists(KEYS, max_size=20), max_size=8))
def test_the_key_set_tells_apart_every_two_keys_a_python_set_does(batches: list[list[Any]]) -> None:
    keys, reference = KeySet(), set()
    for batch in batches:
        expected = []
        for key in batch:
            expected.append(key not in reference)
            reference.add(key)
        assert keys.add(batch) == expected, (batch, reference)
        assert keys.contains(batch) == [True] * len(batch)
    assert len(keys) == len(reference)


def test_a_connection_without_a_count_reads_every_row_and_still_fails_on_a_null_node(
    faulty: SandboxProcess,
) -> None:
    gql = graphql_client(f"{faulty.url}/plusplus_graphql/graphql/", GRAPHQL_TOKEN, max_retries=1)
    uncounted = dataclasses.replace(gql.schema().connections()["users"], count_field=None)

    def read() -> list[Any]:
        pages = relay_pages(
            gql, uncounted, "pk", resource="plusplus_graphql.users", key="pk", page_size=50
        )
        return [node["pk"] for page in pages for node in page.nodes]

    assert sorted(read()) == sorted(row["pk"] for row in faulty.truth("plusplus_graphql", "users"))
    faulty.fault(
        api="plusplus_graphql", kind="null_node", count=2, body_contains=page_cursor(2, 50)
    )
    with pytest.raises(DataMismatchError) as failure:
        read()
    assert str(failure.value).startswith("plusplus_graphql.users page 2: the page has a null node")
