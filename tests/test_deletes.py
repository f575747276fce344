"""The deletes sweep: rows deleted at the source are marked (`_lxp_deleted_at`) or removed, for
every source, on DuckDB, PostgreSQL and BigQuery; a short listing or a sudden drop deletes nothing;
rows the same run loaded are never touched; the schedule and the command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.reconcile import DELETED_AT, SweepRefusedError, reconcile
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.sources.core.errors import DataMismatchError
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import Rows, diff_table, duckdb_rows
from tests.helpers import error_line, lxp_sync, sync, sync_to
from tests.support.warehouse import Warehouse
from tests.test_cli import rest_env
from tests.test_pitchly import expected_rows, tables_by_name
from tests.test_plusplus_graphql import assert_connection_equals_truth
from tests.test_plusplus_rest import assert_warehouse_equals_truth as rest_equals_truth
from tests.test_pluvo import assert_warehouse_equals_truth as pluvo_equals_truth

ROWS = 600


@pytest.fixture(scope="module")
def changing() -> Iterator[SandboxProcess]:
    """A sandbox whose rows the tests delete; each compares with the truth after its own runs."""
    with SandboxProcess(rows=ROWS, seed=31) as process:
        yield process


def source_of(name: str, sandbox: SandboxProcess, **args: Any) -> Any:
    """A source object as a run builds it (the sweep reads its key listings)."""
    spec = SOURCES[name]
    return spec.factory(**{**spec.sandbox_args(sandbox.url), **args})


def employees_id(sandbox: SandboxProcess) -> str:
    return tables_by_name(sandbox)["Employees"]["id"]


@dataclass(frozen=True)
class DeleteCase:
    """Resources of a source, how rows are deleted at the source, and the truth comparison."""

    resources: list[str]
    key: str
    # deletes rows at the source; table -> keys gone from it
    delete: Callable[[SandboxProcess], dict[str, set[Any]]]
    equals_truth: Callable[[SandboxProcess, Rows], None]
    # a run between the deletes and the sweep reads what the deletes changed in other rows (a
    # manager set to null); Pitchly's own count check would see the deletes, so none there
    run_between: bool = True
    # source arguments of every run and sweep
    args: dict[str, Any] = field(default_factory=dict)


def _rest_delete(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    return {
        entity: set(sandbox.mutate(api="plusplus_rest", entity=entity, delete=count)["deleted"])
        for entity, count in (("users", 3), ("content_items", 2))
    }


def _graphql_delete(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    events = [row["pk"] for row in sandbox.truth("plusplus_graphql", "events") if row["presenters"]]
    api = "plusplus_graphql"
    gone = sandbox.mutate(api=api, entity="events", hard_delete=events[:2])["hard_deleted"]
    # a soft delete on a type without `modified`: no cursor sees it, the sweep does
    sandbox.mutate(api=api, entity="badges", delete=2)
    return {"events": set(gone), "badges": set()}


def _pluvo_delete(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    return {"users": set(sandbox.mutate(api="pluvo", entity="users", delete=3)["deleted"])}


def _pitchly_delete(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    entity = f"records:{employees_id(sandbox)}"
    return {
        "archive__employees": set(sandbox.mutate(api="pitchly", entity=entity, delete=2)["deleted"])
    }


def _pitchly_equals_truth(sandbox: SandboxProcess, rows: Rows) -> None:
    truth, types = expected_rows(sandbox, employees_id(sandbox))
    json_columns = [column for column, kind in types.items() if kind == "json"]
    loaded = [  # JSON values as the canonical text the truth has
        {
            **row,
            **{c: orjson.dumps(row[c]).decode() for c in json_columns if row.get(c) is not None},
        }
        for row in rows("archive__employees")
    ]
    problems = diff_table(truth, loaded, "id")
    assert not problems, problems


CASES = {
    "plusplus_rest": DeleteCase(
        ["users", "content_items"],
        "public_id",
        _rest_delete,
        lambda sandbox, rows: rest_equals_truth(
            sandbox, rows, resources=["users", "content_items"]
        ),
    ),
    "plusplus_graphql": DeleteCase(
        ["events", "badges"],
        "pk",
        _graphql_delete,
        lambda sandbox, rows: [
            assert_connection_equals_truth(sandbox, rows, connection)
            for connection in ("events", "badges")
        ],
        # badges by `created`: their soft deletes are the sweep's (read in full, a run sees them)
        args={"incremental_by_created": True},
    ),
    "pluvo": DeleteCase(
        ["users"],
        "id",
        _pluvo_delete,
        lambda sandbox, rows: pluvo_equals_truth(sandbox, rows, ["users"]),
    ),
    "pitchly": DeleteCase(
        ["archive__employees"], "id", _pitchly_delete, _pitchly_equals_truth, run_between=False
    ),
}


def reader(destination: Warehouse, pipeline: Pipeline, *, live: bool) -> Rows:
    """Rows of a loaded table (dlt's columns included); `live`: without rows marked deleted,
    nor the child rows of those."""

    def rows(table: str) -> list[dict[str, Any]]:
        found = destination.rows(pipeline, table, dlt_columns=True)
        if not live:
            return found
        schema = pipeline.default_schema.tables
        root = table
        while schema[root].get("parent"):
            root = schema[root]["parent"]
        if root == table:
            return [row for row in found if row.get(DELETED_AT) is None]
        marked = {
            row["_dlt_id"]
            for row in destination.rows(pipeline, root, dlt_columns=True)
            if row.get(DELETED_AT) is not None
        }
        return [row for row in found if row["_dlt_root_id"] not in marked]

    return rows


@pytest.mark.parametrize("source", CASES)
def test_rows_deleted_at_the_source_are_marked_then_removed_with_their_child_rows(
    destination: Warehouse, changing: SandboxProcess, source: str
) -> None:
    case = CASES[source]
    pipeline = sync_to(destination, source, changing, resources=case.resources, **case.args)
    gone = case.delete(changing)
    if case.run_between:
        pipeline = sync_to(destination, source, changing, resources=case.resources, **case.args)

    marked_lines = reconcile(
        pipeline, source_of(source, changing, resources=case.resources, **case.args)
    )

    case.equals_truth(changing, reader(destination, pipeline, live=True))
    everything = reader(destination, pipeline, live=False)
    for table, keys in gone.items():
        marked = {row[case.key] for row in everything(table) if row.get(DELETED_AT) is not None}
        assert marked == keys, table
    assert len(marked_lines) == len(case.resources), marked_lines

    removed_lines = reconcile(
        pipeline,
        source_of(source, changing, resources=case.resources, **case.args),
        deletes="delete",
    )

    case.equals_truth(changing, reader(destination, pipeline, live=False))
    assert len(removed_lines) == sum(1 for keys in gone.values() if keys), removed_lines
    schema = pipeline.default_schema
    for table in schema.data_table_names():
        root = table
        while schema.tables[root].get("parent"):
            root = schema.tables[root]["parent"]
        if root != table:  # no child row outlives its parent row
            parents = {row["_dlt_id"] for row in everything(root)}
            orphans = [row for row in everything(table) if row["_dlt_root_id"] not in parents]
            assert not orphans, table


# --- what no cursor shows -----------------------------------------------------------------------


@pytest.mark.parametrize("hard_delete", [False, True], ids=["flagged", "hard_delete"])
def test_a_soft_delete_that_moves_no_cursor_reaches_the_warehouse_through_the_sweep(
    fresh_sandbox: SandboxProcess, workdir: Path, hard_delete: bool
) -> None:
    changing = fresh_sandbox
    # by `created` (the sweep's case): read in full, the run alone would see it
    args = {"resources": ["badges"], "hard_delete": hard_delete, "incremental_by_created": True}
    sync("plusplus_graphql", changing, workdir, **args)
    deleted = set(changing.mutate(api="plusplus_graphql", entity="badges", delete=2)["deleted"])
    pipeline = sync("plusplus_graphql", changing, workdir, **args)
    loaded = {row["pk"]: row for row in badge_rows(workdir)}
    assert not any(loaded[pk]["is_deleted"] for pk in deleted), "the run alone sees it"

    lines = reconcile(pipeline, source_of("plusplus_graphql", changing, **args))

    truth = {row["pk"]: row for row in changing.truth("plusplus_graphql", "badges")}
    loaded = {row["pk"]: row for row in badge_rows(workdir)}
    if hard_delete:
        assert not deleted & loaded.keys()
        assert loaded.keys() == {pk for pk, row in truth.items() if not row["is_deleted"]}
        assert "plusplus_graphql.badges: 2 rows the source flags deleted removed" in lines[0]
    else:
        assert {pk: row["is_deleted"] for pk, row in loaded.items()} == {
            pk: row["is_deleted"] for pk, row in truth.items()
        }
        assert "2 rows the source flags deleted set is_deleted" in lines[0]


def badge_rows(workdir: Path) -> list[dict[str, Any]]:
    return duckdb_rows(str(workdir / "warehouse.duckdb"), "plusplus_graphql", "badges")


# --- when not to delete -------------------------------------------------------------------------


def warehouse_snapshot(workdir: Path, dataset: str, table: str) -> list[tuple]:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.execute(f'SELECT * FROM "{dataset}"."{table}"').fetchall(), key=str)


@pytest.mark.parametrize(
    ("source", "resource", "fault"),
    [
        (
            "plusplus_rest",
            "content_items",
            {"path_contains": "content_items/?page_size=100&page=2", "kind": "empty"},
        ),
        (
            "plusplus_graphql",
            "events",
            {"body_contains": "node { pk is_deleted }", "kind": "short"},
        ),
    ],
    ids=["plusplus_rest", "plusplus_graphql"],
)
def test_a_short_key_listing_fails_in_one_line_and_deletes_nothing(
    changing: SandboxProcess, workdir: Path, source: str, resource: str, fault: dict[str, Any]
) -> None:
    pipeline = sync(source, changing, workdir, resources=[resource])
    before = warehouse_snapshot(workdir, source, resource)
    changing.fault(api=source, count=10, **fault)
    try:
        with pytest.raises(DataMismatchError) as failure:
            reconcile(
                pipeline,
                source_of(source, changing, resources=[resource], max_retries=1),
            )
    finally:
        changing.clear_requests()  # and what is left of the fault
    line, code = explain(failure.value, source)
    assert code == 1
    assert line.startswith(f"{source}.{resource} keys page "), line
    assert "request_id req_" in line
    assert warehouse_snapshot(workdir, source, resource) == before


def test_a_sweep_that_would_remove_more_than_the_allowed_share_changes_nothing(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    changing = fresh_sandbox
    pipeline = sync("plusplus_rest", changing, workdir, resources=["groups"])
    before = warehouse_snapshot(workdir, "plusplus_rest", "groups")
    live = len(before)
    gone = changing.mutate(api="plusplus_rest", entity="groups", delete=live // 3)["deleted"]
    source = source_of("plusplus_rest", changing, resources=["groups"])

    with pytest.raises(SweepRefusedError) as failure:
        reconcile(pipeline, source)

    line, code = explain(failure.value, "plusplus_rest")
    assert code == 1
    assert f"would mark {len(gone)} of {live} rows of table groups" in line, line
    assert "max_delete_share = 0.2" in line and "[sources.plusplus_rest]" in line, line
    assert warehouse_snapshot(workdir, "plusplus_rest", "groups") == before
    lines = reconcile(pipeline, source, max_delete_share=0.5)
    assert lines and f"{len(gone)} rows deleted at the source marked" in lines[0]


def test_a_row_deleted_after_the_run_read_it_is_found_by_that_runs_sweep(
    changing: SandboxProcess, workdir: Path
) -> None:
    sync("plusplus_rest", changing, workdir, resources=["users"])
    run = source_of("plusplus_rest", changing, resources=["users"])
    pipeline = sync("plusplus_rest", changing, workdir, source=run)
    # deleted after the run read them, before its sweep lists the keys: the listing starts after
    # the load, so a key it lacks is gone, also when this very run loaded the row
    gone = set(changing.mutate(api="plusplus_rest", entity="users", delete=2)["deleted"])

    lines = reconcile(pipeline, run)

    assert lines and "2 rows deleted at the source marked" in lines[0], lines
    marked = {
        row[0]
        for row in warehouse_snapshot(workdir, "plusplus_rest", "users")
        if row[-1] is not None
    }
    assert gone == marked


def test_a_marked_row_the_source_lists_again_is_live_again(
    changing: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pluvo", changing, workdir, resources=["groups"])
    gone = changing.mutate(api="pluvo", entity="groups", delete=1)["deleted"]
    reconcile(pipeline, source_of("pluvo", changing, resources=["groups"]))
    keep = next(row["id"] for row in changing.truth("pluvo", "paginatedGroups"))
    with pipeline.sql_client() as client:  # as an earlier sweep that saw a short-lived outage would
        client.execute_sql(
            f"UPDATE {client.make_qualified_table_name('groups')} SET {DELETED_AT} = "
            f"CURRENT_TIMESTAMP WHERE id = '{keep}'"
        )

    lines = reconcile(pipeline, source_of("pluvo", changing, resources=["groups"]))

    assert lines == [
        f"pluvo.groups: 1 rows listed again unmarked (table groups, {len(changing.truth('pluvo', 'paginatedGroups')) - 1} live rows before)"
    ]
    rows = {
        row["id"]: row for row in duckdb_rows(str(workdir / "warehouse.duckdb"), "pluvo", "groups")
    }
    assert rows[keep][DELETED_AT] is None and rows[gone[0]][DELETED_AT] is not None


# --- the schedule and the command ---------------------------------------------------------------


def test_runs_sweep_every_n_runs_and_the_command_sweeps_at_once(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    changing = fresh_sandbox
    env = rest_env(changing, workdir, SOURCES__PLUSPLUS_REST__RECONCILE_EVERY="2")
    run = ("run", "plusplus_rest", "--resources", "groups")
    first = lxp_sync(*run, env=env, cwd=workdir)
    gone = changing.mutate(api="plusplus_rest", entity="groups", delete=2)["deleted"]
    second = lxp_sync(*run, env=env, cwd=workdir)
    third = lxp_sync(*run, env=env, cwd=workdir)
    changing.mutate(api="plusplus_rest", entity="groups", delete=1)
    command = lxp_sync("reconcile", "plusplus_rest", "--resources", "groups", env=env, cwd=workdir)

    assert [r.returncode for r in (first, second, third, command)] == [0, 0, 0, 0]
    sweep = "rows deleted at the source marked (_lxp_deleted_at)"
    assert sweep not in first.stdout + second.stdout  # a first run is a full load; 1 run of 2
    assert f"plusplus_rest.groups: 2 {sweep}" in third.stdout, third.stdout
    assert f"plusplus_rest.groups: 1 {sweep}" in command.stdout, command.stdout
    assert "plusplus_rest: deletes sweep done in" in command.stdout
    with duckdb.connect(str(workdir / "lxp_sync.duckdb"), read_only=True) as con:
        marked = con.execute(
            f"SELECT public_id FROM plusplus_rest.groups WHERE {DELETED_AT} IS NOT NULL"
        ).fetchall()
    assert set(gone) < {row[0] for row in marked}


def test_a_bad_sweep_setting_fails_in_one_line_naming_it(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir, SOURCES__PLUSPLUS_REST__DELETES="purge")
    result = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env, cwd=workdir)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert (
        "deletes = 'purge' is not one of mark, delete" in line and "[sources.plusplus_rest]" in line
    )
