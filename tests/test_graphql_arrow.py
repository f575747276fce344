"""PlusPlus GraphQL and Pluvo hand dlt Arrow tables where the table is the same either way.

A table without lists, nested connections, JSON or Decimal fields goes to dlt as Arrow tables
(README: "Arrow"); the others keep dlt's row path. Both paths must give the same tables: the
same columns with the same types and NULL-ability, the same values, `_dlt_id` and
`_dlt_load_id` on every row. A warehouse loaded by the row path (an earlier version, or
`arrow = false`) goes on under Arrow, and back, without a schema error, a lost or a doubled row.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.sources.core.arrow import batched_arrow, with_row_ids
from lxp_sync.sources.core.timestamps import parse_datetimes
from lxp_sync_sandbox.server import SandboxProcess
from tests import test_plusplus_graphql as plusplus_graphql
from tests import test_pluvo as pluvo
from tests.helpers import arrow_tables, sync, sync_to
from tests.support.warehouse import Warehouse
from tests.test_destinations import assert_no_duplicate_keys, reader

# the tables each source loads from Arrow (the sandbox's others have lists or JSON)
ARROW = {
    "plusplus_graphql": {
        *("assignments", "badges", "enrollments", "locations", "tags"),
        *("event_types", "event_types__tags", "tracks", "tracks__tags", "users", "users__tags"),
    },
    "pluvo": {"events", "groups", "users", "users__roles"},
}
# Arrow tables and row tables (with child tables and JSON) of each source, for the runs below
RESOURCES = {
    "plusplus_graphql": ["assignments", "enrollments", "events", "event_types"],
    "pluvo": ["events", "groups", "users", "trainings"],
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


def values(destination: Warehouse, pipeline: Pipeline, table: str) -> list[str]:
    """A table's rows without dlt's columns (its ids are drawn anew by every load)."""
    return sorted(repr(sorted(row.items())) for row in destination.rows(pipeline, table))


def equals_truth(source: str, sandbox: SandboxProcess, read: Any) -> None:
    if source == "pluvo":
        pluvo.assert_warehouse_equals_truth(sandbox, read, RESOURCES[source])
        return
    for connection in RESOURCES[source]:
        plusplus_graphql.assert_connection_equals_truth(sandbox, read, connection)


def change(source: str, sandbox: SandboxProcess) -> None:
    for resource in RESOURCES[source]:
        entity = pluvo.CONNECTIONS[resource] if source == "pluvo" else resource
        sandbox.mutate(api=source, entity=entity, update=3)
        # Pluvo has no deletions feed (a deleted row stays): inserts only there
        deletes = {} if source == "pluvo" else {"delete": 1}
        sandbox.mutate(api=source, entity=entity, insert=2, **deletes)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize("source", list(ARROW))
def test_arrow_and_rows_load_the_same_tables(
    destination: Warehouse, sandbox: SandboxProcess, source: str
) -> None:
    rows = sync_to(destination, source, sandbox, arrow=False)
    assert not arrow_tables(rows), "arrow = false hands dlt rows only"
    # the same source into a dataset beside it, by a pipeline (and state) of its own
    dataset = f"{destination.dataset_name}_arrow"
    workdir = destination.workdir / "arrow"
    arrow = sync(source, sandbox, workdir, dataset=dataset, destination=destination.make(dataset))

    assert arrow_tables(arrow) == ARROW[source]
    tables = rows.default_schema.data_table_names()
    assert sorted(arrow.default_schema.data_table_names()) == sorted(tables)
    for table in tables:
        assert columns(arrow, table) == columns(rows, table), f"{table}: columns differ"
        assert values(destination, arrow, table) == values(destination, rows, table), table
        hints = rows.default_schema.get_table_columns(table)
        assert arrow.default_schema.get_table_columns(table).keys() == hints.keys(), table
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
