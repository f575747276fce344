"""PlusPlus GraphQL, Pluvo and PlusPlus REST hand dlt Arrow tables where the table is the same
either way.

A table without custom scalar fields (`Decimal` aside) goes to dlt as Arrow tables, its child
tables (lists, connections inside its nodes) and JSON fields included (README: "Arrow"); the
others keep dlt's row path. Both paths must give the same tables: the
same columns with the same types and NULL-ability, the same values, `_dlt_id` and
`_dlt_load_id` on every row. A warehouse loaded by the row path (an earlier version, or
`arrow = false`) goes on under Arrow, and back, without a schema error, a lost or a doubled row.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import httpx
import pytest
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.schema.utils import get_root_table
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, run_source
from lxp_sync.sources.core import arrow as arrow_module
from lxp_sync.sources.core import arrow_children, arrow_json
from lxp_sync.sources.core.arrow import batched_arrow, with_row_ids
from lxp_sync.sources.core.timestamps import parse_datetimes
from lxp_sync.sources.plusplus import plusplus_graphql_source
from lxp_sync_sandbox.generated import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests import test_plusplus_graphql as plusplus_graphql
from tests import test_plusplus_rest as plusplus_rest
from tests import test_pluvo as pluvo
from tests.helpers import arrow_tables, sync, sync_to
from tests.support.warehouse import Warehouse
from tests.test_destinations import assert_no_duplicate_keys, reader
from tests.test_generated_schemas import Generated, assert_loaded_equals_generated

# the tables each source loads from Arrow: every table of the sandbox's, JSON fields included
ARROW = {
    "plusplus_graphql": {
        *("assignments", "badges", "enrollments", "locations", "tags"),
        *("event_types", "event_types__tags", "tracks", "tracks__tags", "users", "users__tags"),
        *("events", "events__presenters", "events__tags"),
    },
    "pluvo": {"events", "groups", "users", "users__roles", "trainings", "trainings__tags"},
    "plusplus_rest": {"content_items", "content_items__groups"},
}
# PlusPlus REST's tables without lists have always loaded from Arrow, without dlt's `_dlt_id`
# (`with_load_id`), which its row path would add: only the table with a list is compared
ONLY = {"plusplus_rest": {"resources": ["content_items"]}}
# Arrow tables and row tables (with child tables and JSON) of each source, for the runs below
RESOURCES = {
    "plusplus_graphql": ["assignments", "enrollments", "events", "event_types"],
    "pluvo": ["events", "groups", "users", "trainings"],
    "plusplus_rest": ["content_items"],
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """A small sandbox that this module only reads."""
    with SandboxProcess(rows=400, seed=53) as process:
        yield process


def columns(pipeline: Pipeline, table: str) -> list[tuple[Any, ...]]:
    """A loaded table's columns as the warehouse has them: name, type, NULL-able, in order."""
    with pipeline.sql_client() as client:
        return [
            tuple(row)
            for row in client.execute_sql(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE table_schema = '{client.dataset_name}' AND table_name = '{table}' "
                "ORDER BY ordinal_position"
            )
        ]


def assert_dlt_columns_filled(destination: Warehouse, pipeline: Pipeline) -> None:
    """Every row of every table has `_dlt_load_id` and a `_dlt_id` of its own."""
    for table in pipeline.default_schema.data_table_names():
        rows = destination.rows(pipeline, table, dlt_columns=True)
        assert rows, table
        ids = [row["_dlt_id"] for row in rows]
        assert None not in ids and len(set(ids)) == len(ids), f"{table}: _dlt_id"
        if "__" not in table:
            assert all(row["_dlt_load_id"] for row in rows), f"{table}: _dlt_load_id"


def linked(destination: Warehouse, pipeline: Pipeline) -> dict[str, list[str]]:
    """Every table's rows without dlt's columns (its ids are drawn anew by every load), a root
    row under its key, a child row under its parent's and its list index (`_dlt_list_idx`).

    On the way, each child row's links are checked as dlt's row normalizer makes them: its
    `_dlt_root_id` its root row's `_dlt_id`, its `_dlt_id` derived from its parent's, its
    table and its index (`get_nested_row_hash`), no orphan."""
    schema = pipeline.default_schema
    names = sorted(schema.data_table_names(), key=lambda t: t.count("__"))
    where: dict[str, tuple[Any, ...]] = {}
    roots: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for table in names:
        rows = destination.rows(pipeline, table, dlt_columns=True)
        root = get_root_table(schema.tables, table)
        key = next(c for c, h in root["columns"].items() if h.get("primary_key"))
        found = []
        for row in rows:
            if table == root["name"]:
                address: tuple[Any, ...] = (row[key],)
                roots[row["_dlt_id"]] = row["_dlt_id"]
            else:
                parent = row["_dlt_parent_id"]
                assert parent in where, f"{table}: a row of no parent"
                assert row["_dlt_root_id"] == roots[parent], f"{table}: _dlt_root_id"
                index = row["_dlt_list_idx"]
                assert row["_dlt_id"] == get_nested_row_hash(parent, table, index), table
                address = (*where[parent], index)
                roots[row["_dlt_id"]] = roots[parent]
            where[row["_dlt_id"]] = address
            data = sorted((k, v) for k, v in row.items() if not k.startswith("_dlt"))
            found.append(repr((address, data)))
        out[table] = sorted(found)
    return out


def assert_same_warehouse(destination: Warehouse, rows: Pipeline, arrow: Pipeline) -> None:
    """The same tables, columns (type, NULL-able, order), column hints and rows either way."""
    tables = rows.default_schema.data_table_names()
    assert sorted(arrow.default_schema.data_table_names()) == sorted(tables)
    for table in tables:
        assert columns(arrow, table) == columns(rows, table), f"{table}: columns differ"
        hints = rows.default_schema.get_table_columns(table)
        assert arrow.default_schema.get_table_columns(table).keys() == hints.keys(), table
        for name, hint in hints.items():
            got = arrow.default_schema.get_table_columns(table)[name]
            for prop in ("data_type", "nullable", "primary_key", "parent_key", "root_key"):
                assert got.get(prop) == hint.get(prop), (table, name, prop)
        parent = rows.default_schema.tables[table].get("parent")
        assert arrow.default_schema.tables[table].get("parent") == parent, table
    assert linked(destination, arrow) == linked(destination, rows)


def equals_truth(source: str, sandbox: SandboxProcess, read: Any) -> None:
    if source == "pluvo":
        pluvo.assert_warehouse_equals_truth(sandbox, read, RESOURCES[source])
        return
    if source == "plusplus_rest":
        plusplus_rest.assert_warehouse_equals_truth(sandbox, read, resources=RESOURCES[source])
        return
    for connection in RESOURCES[source]:
        plusplus_graphql.assert_connection_equals_truth(sandbox, read, connection)


def change(source: str, sandbox: SandboxProcess) -> None:
    if source == "plusplus_rest":
        regroup(sandbox)
    for resource in RESOURCES[source]:
        entity = pluvo.CONNECTIONS[resource] if source == "pluvo" else resource
        sandbox.mutate(api=source, entity=entity, update=3)
        # Pluvo has no deletions feed, PlusPlus REST's deletes wait for the sweep: inserts only
        deletes = {} if source in ("pluvo", "plusplus_rest") else {"delete": 1}
        sandbox.mutate(api=source, entity=entity, insert=2, **deletes)


def regroup(sandbox: SandboxProcess) -> None:
    """Through PlusPlus REST's own API: a content item's `groups` grows, one's shrinks, one's
    empties (a merge must replace the reloaded rows' child rows)."""
    groups = [row["public_id"] for row in sandbox.truth("plusplus_rest", "groups")[:3]]
    items = sorted(sandbox.truth("plusplus_rest", "content_items"), key=lambda r: -len(r["groups"]))
    api = SOURCES["plusplus_rest"].sandbox_args(sandbox.url)
    auth = {"Authorization": f"Bearer {api['api_token']}"}
    for item, now in zip(items, [groups[:1], [], groups], strict=False):
        url = f"{api['base_url']}/content_items/{item['public_id']}/"
        httpx.patch(url, json={"groups": now}, headers=auth, timeout=30).raise_for_status()


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize("source", list(ARROW))
def test_arrow_and_rows_load_the_same_tables(
    destination: Warehouse, sandbox: SandboxProcess, source: str
) -> None:
    only = ONLY.get(source, {})
    rows = sync_to(destination, source, sandbox, arrow=False, **only)
    assert not arrow_tables(rows), "arrow = false hands dlt rows only"
    # the same source into a dataset beside it, by a pipeline (and state) of its own
    dataset = f"{destination.dataset_name}_arrow"
    workdir = destination.workdir / "arrow"
    made = destination.make(dataset)
    arrow = sync(source, sandbox, workdir, dataset=dataset, destination=made, **only)

    assert arrow_tables(arrow) == ARROW[source]
    assert_same_warehouse(destination, rows, arrow)
    assert_dlt_columns_filled(destination, arrow)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize("source", list(ARROW))
def test_a_warehouse_loaded_from_rows_goes_on_from_arrow_and_back(
    destination: Warehouse, fresh_sandbox: SandboxProcess, source: str
) -> None:
    resources = RESOURCES[source]
    pipeline = sync_to(destination, source, fresh_sandbox, resources=resources, arrow=False)
    tables = pipeline.default_schema.data_table_names()
    before = {table: columns(pipeline, table) for table in tables}
    change(source, fresh_sandbox)

    pipeline = sync_to(destination, source, fresh_sandbox, resources=resources)

    assert arrow_tables(pipeline) == {t for t in ARROW[source] if t.split("__")[0] in resources}
    assert {table: columns(pipeline, table) for table in tables} == before, "a column changed"
    read = reader(destination, pipeline)
    equals_truth(source, fresh_sandbox, read)
    assert_no_duplicate_keys(pipeline, read)
    assert_dlt_columns_filled(destination, pipeline)

    change(source, fresh_sandbox)
    pipeline = sync_to(destination, source, fresh_sandbox, resources=resources, arrow=False)

    assert not arrow_tables(pipeline)
    read = reader(destination, pipeline)
    equals_truth(source, fresh_sandbox, read)
    assert_no_duplicate_keys(pipeline, read)


# values at the edges, as a GraphQL answer has them (before shaping)
EDGE_HINTS = {
    "pk": {"data_type": "bigint", "nullable": True},
    "big": {"data_type": "bigint", "nullable": True},
    "ratio": {"data_type": "double", "nullable": True},
    "name": {"data_type": "text", "nullable": True},
    "ok": {"data_type": "bool", "nullable": True},
    "due": {"data_type": "date", "nullable": True},
    "at": {"data_type": "timestamp", "nullable": True, "timezone": True},
    "owner__pk": {"data_type": "bigint", "nullable": True},
}
EDGE_ROWS = [
    {"pk": 1, "big": 2**63 - 1, "ratio": 0.1 + 0.2, "name": "ümlaut ✓ 漢字", "ok": True,
     "due": "2024-02-29", "at": "2024-03-15T10:20:30.123456789Z", "owner": {"pk": 7}},
    {"pk": 2, "big": -(2**63), "ratio": 5, "name": "", "ok": False, "due": None,
     "at": "2024-03-15T10:20:30", "owner": None},
    {"pk": 3, "big": None, "ratio": 1.7976931348623157e308, "name": None, "ok": None,
     "due": "1901-01-02", "at": "2024-03-15T12:20:30.5+02:00"},
    {"pk": 4, "big": 0, "ratio": -0.0, "name": "x", "ok": True, "due": "2199-12-30",
     "at": "2024-03-15", "owner": {"pk": None}},
    {"pk": 5, "big": 1, "ratio": None, "name": "y", "ok": None, "due": None, "at": "soon"},
]  # fmt: skip


def test_edge_values_load_from_arrow_as_from_rows(workdir: Path) -> None:
    """The builder against dlt's row path itself: 64-bit ints at both ends, doubles to the bit,
    an int in a Float column, unicode, dates, naive, offset, nanosecond and date-only timestamps,
    a text that is no timestamp (`at__v_text`), null and present nested objects."""

    def as_rows() -> Iterator[list[dict[str, Any]]]:
        rows = copy.deepcopy(EDGE_ROWS)
        for row in rows:  # what `node_shape` does on the row path
            if row.get("owner", 0) is None:
                del row["owner"]
        parse_datetimes(rows, "at", strict=False)
        yield rows

    def as_arrow() -> Iterator[Any]:
        rows = copy.deepcopy(EDGE_ROWS)
        for row in rows:
            if row.get("owner", 0) is None:
                del row["owner"]
        yield from batched_arrow([rows], EDGE_HINTS, rows=2, row_ids=True)

    loaded = {}
    for name, data, hints in (
        ("rows", as_rows, EDGE_HINTS),
        ("arrow", as_arrow, with_row_ids(EDGE_HINTS)),
    ):
        resource = dlt.resource(
            data, name="edges", primary_key="pk", write_disposition="merge", columns=hints
        )
        pipeline = dlt.pipeline(
            f"edges_{name}",
            destination=dlt.destinations.duckdb(str(workdir / "edges.duckdb")),
            dataset_name=name,
            pipelines_dir=str(workdir / "pipelines"),
        )
        pipeline.run(resource, loader_file_format="parquet").raise_on_failed_jobs()
        with pipeline.sql_client() as client:
            rows = client.execute_sql("SELECT * FROM edges ORDER BY pk")
            names = [c[0] for c in columns(pipeline, "edges")]
        loaded[name] = (
            columns(pipeline, "edges"),
            [dict(zip(names, r, strict=True)) for r in rows],
        )

    assert loaded["arrow"][0] == loaded["rows"][0]
    strip = [{k: v for k, v in r.items() if not k.startswith("_dlt")} for r in loaded["rows"][1]]
    got = [{k: v for k, v in r.items() if not k.startswith("_dlt")} for r in loaded["arrow"][1]]
    assert got == strip
    assert got[0]["big"] == 2**63 - 1 and got[1]["big"] == -(2**63)
    assert got[0]["ratio"] == 0.1 + 0.2 and got[4]["at__v_text"] == "soon"
    assert all(r["_dlt_id"] and r["_dlt_load_id"] for r in loaded["arrow"][1])


@pytest.mark.parametrize("convert_rows", [1000, 2], ids=["one-batch-an-item", "batches-joined"])
def test_child_rows_are_released_whatever_order_dlt_hands_the_batches_over(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, convert_rows: int
) -> None:
    """dlt hands a parallelized resource's items to its steps in the order their reads
    complete: items made A, B, C reach the incremental as C, A, B. The second run's A is
    dropped whole by the incremental (its rows are older than the cursor), B in part: the child
    rows of what loads are released with it, the rest never load, nothing is held after the
    run, and the tables equal those of dlt's row path fed the same items in the same order.
    With rows converted two at a time, an item joins two batches, and B keeps one row of each:
    as many rows as one batch has, yet neither batch's dropped row may bring its child rows.
    The table appends: dlt's merge inserts only the child rows of the root rows it loads, and
    would hide such orphans; a `--full-refresh` (replace) or an append would load them."""
    assert arrow_children.CHILD_TABLES  # this venv's dlt is a tested one
    monkeypatch.setattr(arrow_module, "CONVERT_ROWS", convert_rows)
    hints = {"pk": {"data_type": "bigint", "nullable": False}, "version": {"data_type": "bigint"}}
    lists = {"labels": {"columns": arrow_children.with_links({"value": {"data_type": "text"}})}}
    first = [{"pk": pk, "version": 5, "labels": list("abc")[: pk % 4]} for pk in range(1, 13)]
    # A (1-4) older than the cursor; B keeps 6 and 8; C (9-12) changed
    second = [
        {"pk": pk, "version": 7 if pk in (6, 8) or pk > 8 else 1, "labels": [f"{pk}"] * (pk % 3)}
        for pk in range(1, 13)
    ]
    order = [2, 0, 1]  # C, A, B
    loaded = {}
    for path in ("rows", "arrow"):
        held = []
        pipeline = dlt.pipeline(
            f"order_{path}",
            destination=dlt.destinations.duckdb(str(workdir / f"{path}.duckdb")),
            dataset_name="people",
            pipelines_dir=str(workdir / "pipelines"),
        )
        for rows in (first, second):
            children = arrow_children.ArrowChildren(arrow_children.child_tables("people", lists))

            def data(
                rows: list[dict[str, Any]], children: arrow_children.ArrowChildren, path: str
            ) -> Any:
                def read(
                    version: dlt.sources.incremental[int] = dlt.sources.incremental("version"),
                ) -> Iterator[Any]:
                    pages = [copy.deepcopy(rows[i : i + 2]) for i in range(0, len(rows), 2)]
                    items = [[*pages[i], *pages[i + 1]] for i in range(0, len(pages), 2)]
                    if path == "arrow":
                        made = batched_arrow(pages, hints, rows=4, row_ids=True, children=children)
                        items = list(made)
                    assert [len(item) for item in items] == [4, 4, 4]
                    for index in order:
                        yield items[index]

                return read

            resource = dlt.resource(
                data(rows, children, path),
                name="people",
                write_disposition="append",
                columns=with_row_ids(hints) if path == "arrow" else hints,
            )
            if path == "arrow":
                children.attach(resource, "people")
            pipeline.run(resource, loader_file_format="parquet").raise_on_failed_jobs()
            held.append(dict(children._held))
        with pipeline.sql_client() as client:
            loaded[path] = client.execute_sql(
                "SELECT p.pk, p.version, l._dlt_list_idx, l.value FROM people p"
                " FULL JOIN people__labels l ON l._dlt_parent_id = p._dlt_id"
                " ORDER BY 1 NULLS LAST, 2, 3, 4"
            )
        if path == "arrow":
            assert held == [{}, {}]  # every batch released or freed
            assert arrow_tables(pipeline) == {"people", "people__labels"}

    expected = []
    for row in sorted(first + [r for r in second if r["version"] > 5], key=lambda r: r["pk"]):
        labels = enumerate(row["labels"]) if row["labels"] else [(None, None)]
        expected.extend((row["pk"], row["version"], index, value) for index, value in labels)
    assert loaded["rows"] == expected
    assert loaded["arrow"] == expected


# -- child tables, JSON, on a schema of our own (the sandbox's generated API) -------------------

PEOPLE = [
    {"pk": 1, "name": "Ada", "labels": ["a", "b"]},
    {"pk": 2, "name": "Bo", "labels": []},
    {"pk": 3, "name": None, "labels": None},
    {"pk": 4, "name": "Di", "labels": ["d"]},
]
THING_FIELDS = [
    {"name": "modified", "kind": "scalar", "type": "DateTime"},
    {"name": "is_deleted", "kind": "scalar", "type": "Boolean"},
    {"name": "title", "kind": "scalar", "type": "String"},
    {"name": "tags", "kind": "scalar", "type": "String", "list": True},
    {"name": "scores", "kind": "scalar", "type": "Float", "list": True},
    {"name": "owners", "kind": "object", "target": "T1", "list": True},
    {"name": "members", "kind": "connection", "target": "T1"},
    {"name": "best", "kind": "object", "target": "T1"},
]
PERSON_FIELDS = [
    {"name": "name", "kind": "scalar", "type": "String"},
    {"name": "labels", "kind": "scalar", "type": "String", "list": True},
]


def thing(pk: int, modified: str, lists: list[int], **values: Any) -> dict[str, Any]:
    """A row of `things`: `lists` the pks of its owners and members, a tag and a score each."""
    row = {"pk": pk, "modified": modified, "is_deleted": False, "title": f"t{pk}"}
    row |= {"tags": [f"tag{n}" for n in lists], "scores": [n + 0.5 for n in lists]}
    row |= {"owners": list(lists), "members": list(lists), "best": lists[0] if lists else None}
    return row | values


def without_deleted(spec: Generated) -> Generated:
    """`spec` as a warehouse holds it with `hard_delete`: no row with `is_deleted`."""
    rows = spec.expected["T0"]
    spec.expected["T0"] = {pk: row for pk, row in rows.items() if not row["is_deleted"]}
    return spec


def generated(things: list[dict[str, Any]], blobs: list[dict[str, Any]] | None = None) -> Generated:
    """A spec with `things` (lists of scalars and of objects, a connection inside its nodes
    whose nodes have a list of their own) and, with `blobs`, a table with a JSON field."""
    types = {"T0": THING_FIELDS, "T1": PERSON_FIELDS}
    roots = {"things": "T0"}
    rows: dict[str, Any] = {"T0": things, "T1": PEOPLE}
    if blobs is not None:
        types["T2"] = [
            {"name": "data", "kind": "scalar", "type": "GenericScalar"},
            {"name": "tags", "kind": "scalar", "type": "String", "list": True},
        ]
        roots["blobs"] = "T2"
        rows["T2"] = blobs
    spec = {"types": types, "enums": {}, "roots": roots, "rows": rows, "node": True}
    out = Generated(spec={**spec, "page_limit": 100})
    when = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    out.expected = {
        "T0": {r["pk"]: {**r, "modified": when(r["modified"])} for r in things},
        "T1": {r["pk"]: dict(r) for r in PEOPLE},
    }
    return out


def sync_spec(
    sandbox: SandboxProcess, destination: Warehouse, spec: Generated, *, arrow: bool, **args: Any
) -> Pipeline:
    """One run of the generated API into the test's dataset (its own pipeline and state)."""
    sandbox.configure(api="generated", spec=spec.spec)
    source = plusplus_graphql_source(
        base_url=f"{sandbox.url}/generated/graphql", api_token=API_TOKEN, arrow=arrow, **args
    )
    return sync_to(destination, "plusplus_graphql", sandbox, source=source)


def rows_and_arrow(
    sandbox: SandboxProcess, destination: Warehouse, spec: Generated
) -> tuple[Pipeline, Pipeline]:
    """The generated API loaded twice: from rows into the test's dataset, and with the
    defaults (Arrow) into a dataset beside it, by a pipeline (and state) of its own."""
    rows = sync_spec(sandbox, destination, spec, arrow=False)
    assert not arrow_tables(rows)
    sandbox.configure(api="generated", spec=spec.spec)
    dataset = f"{destination.dataset_name}_arrow"
    source = plusplus_graphql_source(
        base_url=f"{sandbox.url}/generated/graphql", api_token=API_TOKEN
    )
    arrow = sync(
        "plusplus_graphql",
        sandbox,
        destination.workdir / "arrow",
        dataset=dataset,
        destination=destination.make(dataset),
        source=source,
    )
    return rows, arrow


OLD, T1, T2 = "2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z"
FIRST = [thing(1, OLD, [1, 2, 3]), thing(2, OLD, [1]), thing(3, OLD, [2, 4]),
         thing(4, OLD, [3]), thing(5, "2019-12-01T00:00:00+02:00", [4, 1])]  # fmt: skip
# 1 shrinks, 2 grows, 3 empties, 4 is deleted, 5 stays as it was (the incremental drops it), 6 new
SECOND = [thing(1, T1, [3]), thing(2, T1, [1, 2, 3]), thing(3, T1, []),
          thing(4, T1, [3], is_deleted=True), FIRST[4], thing(6, T1, [2])]  # fmt: skip
# 1 grows again, 2 and 5 stay as they were (2 at the cursor: dlt's incremental drops it too)
THIRD = [thing(1, T2, [4, 1, 2, 3]), SECOND[1], thing(3, T2, [1], title=None), FIRST[4],
         thing(6, T2, [])]  # fmt: skip
ARROW_THINGS = {"things", *(f"things__{t}" for t in ("tags", "scores", "owners", "members"))}
ARROW_THINGS.add("things__members__labels")


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_child_tables_and_json_load_from_arrow_as_from_rows(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    """Lists of scalars (`value`), of objects (their `pk`), a connection inside the nodes (with
    `_parent_pk`) and its nodes' own list: the same child tables from Arrow as from rows, rows
    linked alike; a table with a JSON field (objects, lists, a lone text, a timestamp-looking
    text, numbers) and its list load from Arrow too."""
    blobs = [{"pk": 1, "data": {"a": [1, 2**62], "b": None}, "tags": ["x"]},
             {"pk": 2, "data": [1.5, "two"], "tags": []}, {"pk": 3, "data": "lone", "tags": None},
             {"pk": 4, "data": None, "tags": ["y", "z"]}, {"pk": 5, "data": 2**62, "tags": []},
             {"pk": 6, "data": "2024-03-15T10:20:30Z", "tags": None},
             {"pk": 7, "data": 0.5, "tags": None}, {"pk": 8, "data": False, "tags": ["w"]}]  # fmt: skip
    rows, arrow = rows_and_arrow(sandbox, destination, generated(FIRST, blobs))

    assert arrow_tables(arrow) == ARROW_THINGS | {"blobs", "blobs__tags"}
    assert_same_warehouse(destination, rows, arrow)
    assert_dlt_columns_filled(destination, arrow)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize(
    "paths",
    [(True, True, True), (False, False, False), (False, True, False)],
    ids=["arrow", "rows", "rows-arrow-rows"],
)
def test_merge_replaces_a_reloaded_parents_child_rows(
    destination: Warehouse, sandbox: SandboxProcess, paths: tuple[bool, bool, bool]
) -> None:
    """A parent whose lists shrank, grew or emptied has exactly its new child rows; a deleted
    parent none (`hard_delete`); a parent this run did not load (the incremental dropped it)
    keeps its own: from Arrow, from rows, and from rows, then Arrow, then rows again."""
    for things, arrow in zip((FIRST, SECOND, THIRD), paths, strict=True):
        spec = generated(things)
        pipeline = sync_spec(sandbox, destination, spec, arrow=arrow, hard_delete=True)
        assert arrow_tables(pipeline) == (ARROW_THINGS if arrow else set())
        assert_loaded_equals_generated(destination, pipeline, without_deleted(spec))
        linked(destination, pipeline)  # links as dlt's, no orphan
        read = reader(destination, pipeline)
        assert_no_duplicate_keys(pipeline, read)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
def test_a_full_refresh_loads_no_child_rows_of_a_row_it_drops(
    destination: Warehouse, sandbox: SandboxProcess, arrow: bool
) -> None:
    """`--full-refresh` with `hard_delete` drops a deleted row before dlt's replace (which
    copies its staged child tables whole): its child rows go with it."""
    sync_spec(sandbox, destination, generated(FIRST), arrow=arrow, hard_delete=True)
    spec = generated(SECOND)
    sandbox.configure(api="generated", spec=spec.spec)
    source = plusplus_graphql_source(
        base_url=f"{sandbox.url}/generated/graphql",
        api_token=API_TOKEN,
        arrow=arrow,
        hard_delete=True,
    )
    options = RunOptions(
        destination=destination.make(destination.dataset_name),
        dataset=destination.dataset_name,
        pipelines_dir=str(destination.workdir / "pipelines"),
        full_refresh=True,
    )
    pipeline = run_source(SOURCES["plusplus_graphql"], source, options)

    assert arrow_tables(pipeline) == (ARROW_THINGS if arrow else set())
    assert_loaded_equals_generated(destination, pipeline, without_deleted(spec))
    linked(destination, pipeline)  # no child row of the deleted row 4


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_with_a_dlt_release_the_child_tables_were_not_tested_on_lists_keep_the_row_path(
    destination: Warehouse, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child tables' Arrow path reaches into dlt's extract: under another dlt than the ones
    it was tested with, a table with lists loads from rows, equal to the truth all the same."""
    assert arrow_children.CHILD_TABLES  # this venv's dlt is a tested one
    assert arrow_children.dlt_release("1.31.0") in arrow_children.TESTED_DLT
    assert arrow_children.dlt_release("1.32.0a1") not in arrow_children.TESTED_DLT
    assert arrow_children.dlt_release("2.0.0") not in arrow_children.TESTED_DLT
    assert arrow_children.dlt_release("dev") is None
    monkeypatch.setattr(arrow_children, "CHILD_TABLES", False)
    spec = generated(FIRST)
    pipeline = sync_spec(sandbox, destination, spec, arrow=True, hard_delete=True)
    assert arrow_tables(pipeline) == set()  # `things` has lists: every table on rows
    assert_loaded_equals_generated(destination, pipeline, spec)


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_with_a_dlt_release_the_json_fields_were_not_tested_on_they_keep_the_row_path(
    destination: Warehouse, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A free-form field from Arrow leans on a patched dlt writer (BigQuery's jsonl): under
    another dlt, its table loads from rows; the others stay on Arrow."""
    monkeypatch.setattr(arrow_json, "FREE_FORM", False)
    spec = generated(FIRST, [{"pk": 1, "data": {"a": 1}, "tags": ["t"]}, {"pk": 2, "data": "x"}])
    pipeline = sync_spec(sandbox, destination, spec, arrow=True)
    assert arrow_tables(pipeline) == ARROW_THINGS  # not `blobs` nor `blobs__tags`
    blobs = {r["pk"]: (r["data"], r["data__v_text"]) for r in destination.rows(pipeline, "blobs")}
    assert blobs == {1: ({"a": 1}, None), 2: (None, "x")}


# found by the generated schemas (a replayed hypothesis example): a nested object whose name ends
# in `_`. dlt's row path normalizes `j8czuft_` alone (`j8czuftx`) and joins `pk` to it, Arrow
# normalizes the joined `j8czuft___pk`: the pk loaded NULL on PostgreSQL, with exit 0. A
# timestamp's text variant is joined the same way (`seen_` + `v_text`)
NAMED_APART = {
    "types": {
        "T0": [
            {"name": "j8czuft_", "kind": "object", "target": "T1"},
            {"name": "title", "kind": "scalar", "type": "String"},
        ],
        "T1": [{"name": "name", "kind": "scalar", "type": "String"}],
        "T2": [{"name": "seen_", "kind": "scalar", "type": "DateTime"}],
    },
    "enums": {},
    "roots": {"things": "T0", "people": "T1", "visits": "T2"},
    "rows": {
        "T0": [
            {"pk": 1, "j8czuft_": 2, "title": "a"},
            {"pk": 2, "j8czuft_": None, "title": "b"},
            {"pk": 3, "j8czuft_": 1, "title": None},
        ],
        "T1": [{"pk": 1, "name": "A"}, {"pk": 2, "name": "B"}],
        "T2": [
            {"pk": 1, "seen_": "2024-01-02T03:04:05Z"},
            {"pk": 2, "seen_": "soon"},
            {"pk": 3, "seen_": None},
        ],
    },  # fmt: skip
    "node": True,
    "page_limit": 100,
}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_names_that_dlt_joins_otherwise_from_arrow_keep_the_row_path(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    rows, arrow = rows_and_arrow(sandbox, destination, Generated(spec=NAMED_APART))

    assert_same_warehouse(destination, rows, arrow)
    things = {r["pk"]: r["j8czuftx__pk"] for r in destination.rows(arrow, "things")}
    assert things == {1: 2, 2: None, 3: 1}
    visits = {r["pk"]: r["seenx__v_text"] for r in destination.rows(arrow, "visits")}
    assert visits == {1: None, 2: "soon", 3: None}
    assert arrow_tables(arrow) == {"people"}  # `things` and `visits` keep the row path


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
@pytest.mark.parametrize("source", list(ARROW))
def test_rows_converted_a_few_at_a_time_load_the_same(
    destination: Warehouse, fresh_sandbox: SandboxProcess, source: str, monkeypatch: Any
) -> None:
    """Pages are converted to Arrow `CONVERT_ROWS` rows at a time and joined into one table
    per batch: with 7 at a time, every table is joined from many, child tables included."""
    monkeypatch.setattr(arrow_module, "CONVERT_ROWS", 7)
    resources = RESOURCES[source]
    pipeline = sync_to(destination, source, fresh_sandbox, resources=resources)
    assert arrow_tables(pipeline) == {t for t in ARROW[source] if t.split("__")[0] in resources}
    read = reader(destination, pipeline)
    equals_truth(source, fresh_sandbox, read)
    assert_no_duplicate_keys(pipeline, read)
    assert_dlt_columns_filled(destination, pipeline)
    linked(destination, pipeline)


def test_chunks_whose_undeclared_columns_disagree_go_to_dlt_one_by_one() -> None:
    hints = {"pk": {"data_type": "bigint", "nullable": True}}
    pages = [[{"pk": 1, "extra": 5}, {"pk": 2}], [{"pk": 3, "extra": "five"}], [{"pk": 4}]]
    agree = [[{"pk": 1, "extra": 5}, {"pk": 2}], [{"pk": 3}], [{"pk": 4, "extra": 6}]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arrow_module, "CONVERT_ROWS", 2)
        patch.setattr(arrow_module, "add_load_id", lambda table: table)
        apart = list(arrow_module.batched_arrow(pages, hints, rows=10))
        joined = list(arrow_module.batched_arrow(agree, hints, rows=10))
    assert [t.to_pylist() for t in apart] == [
        [{"pk": 1, "extra": 5}, {"pk": 2, "extra": None}],
        [{"pk": 3, "extra": "five"}, {"pk": 4, "extra": None}],
    ]
    (table,) = joined
    assert table.column("pk").num_chunks == 1
    assert table.to_pylist() == [
        {"pk": 1, "extra": 5}, {"pk": 2, "extra": None}, {"pk": 3, "extra": None},
        {"pk": 4, "extra": 6},
    ]  # fmt: skip
