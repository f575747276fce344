"""The split of a load into inserted, updated, unchanged and deleted keys (`merge_counts`), on every
warehouse: a merge with nested lists, a JSON column and dlt's `hard_delete`, and a replace."""

from __future__ import annotations

from typing import Any

import dlt
import pytest

from lxp_sync.pipelines.merge_counts import TableCounts, counting_merges
from tests.support.warehouse import Warehouse

HINTS = {"gone": {"data_type": "bool", "hard_delete": True}, "doc": {"data_type": "json"}}


def row(key: int, value: str = "v", tags: list[str] | None = None, doc: Any = 1) -> dict[str, Any]:
    return {
        "id": key,
        "value": value,
        "tags": ["a", "b"] if tags is None else tags,
        "doc": {"n": doc},
    }


def load(pipeline: dlt.Pipeline, warehouse: Warehouse, rows: list[dict[str, Any]], how: str) -> Any:
    resource = dlt.resource(
        rows,
        name=how,
        primary_key="id",
        write_disposition=how,
        columns=HINTS if how == "merge" else None,
    )
    with counting_merges(pipeline.sql_client) as counter:
        pipeline.run(resource, loader_file_format=warehouse.file_format)
    return counter.tables[how]


def test_merge_counts_every_kind_of_change_exactly(destination: Warehouse) -> None:
    pipeline = destination.pipeline("merge_counts")
    first = load(pipeline, destination, [row(k) for k in range(8)], "merge")
    assert first == TableCounts(inserted=8, updated=0, unchanged=0, deleted=0, rewritten=0)

    second = load(
        pipeline,
        destination,
        [
            row(0),  # the same again
            row(1, value="changed"),  # a column
            row(2, tags=["a", "c"]),  # an element of a nested list
            row(3, tags=["a"]),  # a nested list shorter
            row(4, doc=2),  # a JSON value
            {**row(5), "gone": True},  # deleted at the source (dlt's hard_delete)
            row(20),  # new
            {**row(21), "gone": True},  # new and deleted: never in the table
        ],
        "merge",
    )

    assert second == TableCounts(inserted=1, updated=4, unchanged=1, deleted=1, rewritten=5)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_a_replace_counts_what_it_drops_and_what_it_keeps(destination: Warehouse) -> None:
    pipeline = dlt.pipeline(
        "replace_counts",
        destination=destination.make(
            destination.dataset_name, replace_strategy="insert-from-staging"
        ),
        dataset_name=destination.dataset_name,
        pipelines_dir=str(destination.workdir / "pipelines"),
    )
    load(pipeline, destination, [row(k) for k in range(5)], "replace")

    again = load(
        pipeline, destination, [row(0), row(1, value="x"), row(2, tags=[]), row(9)], "replace"
    )

    assert again == TableCounts(inserted=1, updated=2, unchanged=1, deleted=2, rewritten=3)
