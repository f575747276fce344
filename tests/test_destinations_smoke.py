"""The same merge loads on every destination (DuckDB, PostgreSQL, the BigQuery emulator).

These tests check the test harness as much as the warehouses: that `destination.rows()` reads the
same values back from each, and that dlt's merge, child tables and schema evolution behave alike.
Each destination loads from the file format it takes best (`destination.file_format`): parquet
into DuckDB; csv into Postgres (dlt loads parquet there only through an ADBC driver); jsonl into
BigQuery (dlt cannot load JSON columns into BigQuery from parquet).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import dlt

UTC = dt.UTC


def at(*args: int, hours: float = 0) -> dt.datetime:
    """A timestamp in a fixed UTC offset."""
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(hours=hours)))


FIRST_RUN = [
    {
        "id": 1,
        "updated_at": at(2025, 1, 2, 3, 4, 5, hours=2),
        "active": True,
        "score": 1.5,
        "price": Decimal("12.34"),
        "title": "Ünïcode ✓ 'quoted'",
        "owner": {"name": "Ann", "level": 2},
        "tags": ["a", "b"],
        "extra": {"k": [1, 2], "s": "x"},
    },
    {
        "id": 2,
        "updated_at": at(2025, 6, 30, 23, 59, 59, 123456, hours=-5),
        "active": False,
        "score": -0.25,
        "price": Decimal("0.10"),
        "title": "two",
        "owner": {"name": "Bob", "level": 1},
        "tags": ["c"],
        "extra": [1, "two", None],
    },
    {
        "id": 3,
        "updated_at": at(2024, 12, 31, 23, 0, 0, hours=5.5),
        "active": True,
        "score": 3.0,
        "price": Decimal("-7"),
        "title": None,
        "owner": {"name": "Cy", "level": 3},
        "tags": [],
        "extra": None,
    },
]
# Row 2 changes (its tags too), row 4 is new.
SECOND_RUN = [
    {**FIRST_RUN[1], "active": True, "title": "two, edited", "tags": ["x", "y"]},
    {
        "id": 4,
        "updated_at": at(2026, 1, 1, 0, 0, 0),
        "active": False,
        "score": 4.75,
        "price": Decimal("1000.5"),
        "title": "four",
        "owner": {"name": "Di", "level": 4},
        "tags": ["d"],
        "extra": {"nested": {"deep": True}},
    },
]


@dlt.resource(
    name="things",
    write_disposition="merge",
    primary_key="id",
    columns={
        "updated_at": {"data_type": "timestamp", "timezone": True},
        "price": {"data_type": "decimal"},
        "extra": {"data_type": "json"},
    },
)
def things(rows: list[dict[str, Any]]):
    yield rows


def expected_root(row: dict[str, Any]) -> dict[str, Any]:
    """How a source row reads back from the root table: nested dict flattened, list removed."""
    return {
        "id": row["id"],
        "updated_at": row["updated_at"].astimezone(UTC),
        "active": row["active"],
        "score": row["score"],
        "price": row["price"],
        "title": row["title"],
        "owner__name": row["owner"]["name"],
        "owner__level": row["owner"]["level"],
        "extra": row["extra"],
    }


def load(destination, pipeline: dlt.Pipeline, rows: list[dict[str, Any]]) -> None:
    info = pipeline.run(things(rows), loader_file_format=destination.file_format)
    assert not info.has_failed_jobs


def test_second_merge_run_updates_one_row_and_adds_one(destination):
    pipeline = destination.pipeline("merge")
    load(destination, pipeline, FIRST_RUN)
    assert destination.rows(pipeline, "things") == [expected_root(r) for r in FIRST_RUN]

    load(destination, pipeline, SECOND_RUN)

    rows = destination.rows(pipeline, "things")
    expected = [FIRST_RUN[0], SECOND_RUN[0], FIRST_RUN[2], SECOND_RUN[1]]
    assert rows == [expected_root(r) for r in expected]
    assert len({row["id"] for row in rows}) == len(rows)


def test_list_of_scalars_is_a_child_table_that_merge_keeps_in_step(destination):
    pipeline = destination.pipeline("children")
    load(destination, pipeline, FIRST_RUN)
    load(destination, pipeline, SECOND_RUN)

    parents = {
        row["_dlt_id"]: row["id"] for row in destination.rows(pipeline, "things", dlt_columns=True)
    }
    children = destination.rows(pipeline, "things__tags", dlt_columns=True)
    assert sorted(
        (parents[c["_dlt_parent_id"]], c["_dlt_list_idx"], c["value"]) for c in children
    ) == [
        (1, 0, "a"),
        (1, 1, "b"),
        (2, 0, "x"),
        (2, 1, "y"),
        (4, 0, "d"),
    ]


def test_column_added_in_a_later_run_is_null_for_earlier_rows(destination):
    pipeline = destination.pipeline("evolution")
    load(destination, pipeline, FIRST_RUN)
    load(destination, pipeline, [{**row, "note": f"note {row['id']}"} for row in SECOND_RUN])

    rows = destination.rows(pipeline, "things")
    assert [(row["id"], row["note"]) for row in rows] == [
        (1, None),
        (2, "note 2"),
        (3, None),
        (4, "note 4"),
    ]


EXPECTED_TYPES = {
    "duckdb": {
        "id": "BIGINT",
        "updated_at": "TIMESTAMP WITH TIME ZONE",
        "active": "BOOLEAN",
        "score": "DOUBLE",
        "price": "DECIMAL(38,9)",
        "title": "VARCHAR",
        "owner__name": "VARCHAR",
        "owner__level": "BIGINT",
        "extra": "JSON",
    },
    "postgres": {
        "id": "bigint",
        "updated_at": "timestamp with time zone",
        "active": "boolean",
        "score": "double precision",
        "price": "numeric",
        "title": "character varying",
        "owner__name": "character varying",
        "owner__level": "bigint",
        "extra": "jsonb",
    },
    "bigquery": {
        "id": "INT64",
        "updated_at": "TIMESTAMP",
        "active": "BOOL",
        "score": "FLOAT64",
        "price": "NUMERIC",
        "title": "STRING",
        "owner__name": "STRING",
        "owner__level": "INT64",
        # BigQuery itself says JSON; the emulator's INFORMATION_SCHEMA says STRING.
        "extra": "STRING",
    },
}


def test_columns_get_the_destination_types(destination):
    pipeline = destination.pipeline("types")
    load(destination, pipeline, FIRST_RUN)

    types = destination.column_types(pipeline, "things")
    data_columns = {name: kind for name, kind in types.items() if not name.startswith("_dlt_")}
    assert data_columns == EXPECTED_TYPES[destination.name]
    assert set(types) >= {"_dlt_load_id", "_dlt_id"}
