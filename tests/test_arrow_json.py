"""Free-form (JSON) fields load from Arrow exactly as from rows (`sources/core/arrow_json.py`).

The same pages go to dlt as rows (`free_form_values`, as a GraphQL table on the row path) and as
Arrow tables (`batched_arrow` with `FreeFormColumns`), into DuckDB and PostgreSQL: the same
columns (name, type, NULL-able, order), variant columns included, and the same values (JSON
equal as JSON). Generated values mix objects, lists, null, texts (some that look like
timestamps), integers up to and past 64 bits, floats, booleans and unicode within one column,
across rows and pages, decoded as the GraphQL client decodes an answer (orjson: an integer past
64 bits arrives as a float).
"""

from __future__ import annotations

import copy
import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import orjson
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.pipeline.pipeline import Pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lxp_sync.pipelines.errors import explain
from lxp_sync.sources.core.arrow import batched_arrow, with_row_ids
from lxp_sync.sources.core.arrow_json import FreeFormColumns
from lxp_sync.sources.core.connections import free_form_values
from lxp_sync.sources.core.run_options import loader_file_format
from lxp_sync.sources.core.timestamps import parse_datetimes
from tests.helpers import arrow_tables
from tests.support.warehouse import Warehouse
from tests.test_graphql_arrow import assert_same_warehouse

HINTS = {
    "pk": {"data_type": "bigint", "nullable": True},
    "at": {"data_type": "timestamp", "nullable": True, "timezone": True},
    "data": {"data_type": "json", "nullable": True},
    "meta": {"data_type": "json", "nullable": True},
}
FREE_FORM = {"data": False, "meta": True}  # `meta` is JSON text (a JSONString)
_runs = itertools.count()


def load(
    destination: Warehouse, runs: list[list[list[dict[str, Any]]]], *, arrow: list[bool]
) -> Pipeline:
    """`runs` (each a list of pages) into a dataset of their own, run `i` from Arrow if
    `arrow[i]`: the table `things` keyed by `pk`."""
    dataset = f"{destination.dataset_name}_{next(_runs)}"
    pipeline = dlt.pipeline(
        f"json_{dataset}",
        destination=destination.make(dataset),
        dataset_name=dataset,
        pipelines_dir=str(destination.workdir / "pipelines"),
    )
    for pages, from_arrow in zip(runs, arrow, strict=True):
        resource = things_resource(pages, from_arrow)
        pipeline.run(resource, loader_file_format=loader_file_format(destination.name))
        assert arrow_tables(pipeline) == ({"things"} if from_arrow else set())
    return pipeline


def things_resource(pages: list[list[dict[str, Any]]], from_arrow: bool) -> Any:
    """The resource `things` over a copy of `pages`, as rows or as Arrow tables."""
    pages = copy.deepcopy(pages)
    for page in pages:  # what `node_shape` does on either path
        free_form_values(page, FREE_FORM)
        if not from_arrow:
            parse_datetimes(page, "at", strict=False)
    return dlt.resource(
        items(pages, from_arrow),
        name="things",
        primary_key="pk",
        write_disposition="merge",
        columns=with_row_ids(HINTS) if from_arrow else HINTS,
    )


def items(pages: list[list[dict[str, Any]]], from_arrow: bool) -> Iterator[Any]:
    if from_arrow:
        free_form = FreeFormColumns("things", list(FREE_FORM))
        yield from batched_arrow(pages, HINTS, rows=1, row_ids=True, free_form=free_form)
    else:
        yield from pages


def assert_same(destination: Warehouse, runs: list[Any], arrow: list[bool]) -> Pipeline:
    """The runs from rows, and as `arrow` says, give the same warehouse."""
    rows = load(destination, runs, arrow=[False] * len(runs))
    other = load(destination, runs, arrow=arrow)
    assert_same_warehouse(destination, rows, other)
    return other


def as_answer(value: Any) -> Any:
    """`value` as the GraphQL client decodes it from an answer's JSON text (orjson)."""
    return orjson.loads(json.dumps(value))


STAMPS = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS
    | STAMPS
    | st.dates().map(str)
    | st.sampled_from(["2024-03-15T10:20:30Z", "2024-03-15T12:20:30+02:00", "soon", ""])
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=6,
)
ATS = st.none() | STAMPS | st.sampled_from(["soon", "2024-03-15"])


@st.composite
def pages(draw: Any) -> list[list[dict[str, Any]]]:
    """Pages of rows with a free-form `data`, a JSON-text `meta` and a timestamp `at`."""
    count = draw(st.integers(min_value=1, max_value=12))
    rows = []
    for pk in range(1, count + 1):
        meta = draw(st.none() | VALUES.map(json.dumps) | TEXTS)
        data = as_answer(draw(VALUES))
        if isinstance(data, int) and not -(2**63) <= data < 2**63:
            data = float(data)  # alone, it fails either path (below)
        row = {"pk": pk, "at": draw(ATS), "data": data, "meta": meta}
        rows.append(row)
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=count), max_size=3)))
    return [rows[a:b] for a, b in itertools.pairwise([0, *cuts, count]) if rows[a:b]]


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@settings(max_examples=8, suppress_health_check=list(HealthCheck), deadline=None)
@given(runs=pages())
def test_generated_json_loads_from_arrow_as_from_rows(
    destination: Warehouse, runs: list[list[dict[str, Any]]]
) -> None:
    assert_same(destination, [runs], [True])


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_a_lone_integer_past_64_bits_fails_either_path(destination: Warehouse) -> None:
    """orjson decodes an integer up to 2**64 - 1 as an integer: alone, no bigint column holds
    it, and the run fails from rows (the load) as from Arrow (the extract); in an object it
    stays in the JSON."""
    runs = [[things({"big": 2**64 - 1}, as_answer(2**64 - 1))]]
    for arrow in (False, True):
        with pytest.raises(PipelineStepFailed) as failure:
            load(destination, runs, arrow=[arrow])
        line, code = explain(failure.value, "plusplus_rest")
        assert code == 1 and "\n" not in line, line
        # from Arrow, the column; from rows, the table where the warehouse refused it
        # (PostgreSQL), else the source (dlt's normalize names one of its jobs, not the one)
        starts = ("things.data__v_bigint: ", "plusplus_rest.things: ", "plusplus_rest: ")
        assert line.startswith(starts) and "_dlt" not in line, line
        assert any(s in line for s in ("does not fit a bigint", "beyond 64 bits", "range")), line
        assert "credentials" not in line, line


def things(*values: Any, start: int = 1) -> list[dict[str, Any]]:
    return [{"pk": start + i, "at": None, "data": v, "meta": None} for i, v in enumerate(values)]


OBJECTS = [{"a": [1, 2**62, None], "b": "ü ✓"}, [1.5, "two", {}], {}, []]
SCALARS = ["2024-03-15T10:20:30Z", "plain", 7, 0.25, True, "2024-03-15"]


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@pytest.mark.parametrize(
    "first, then",
    [
        (SCALARS, OBJECTS),
        (OBJECTS, SCALARS),
        (SCALARS[::-1], SCALARS),
        ([SCALARS[0]], ["plain", {}]),
        (["plain"], [SCALARS[0]]),
    ],  # fmt: skip
    ids=[
        "scalars-then-objects",
        "objects-then-scalars",
        "mixed",
        "stamp-then-text",
        "text-then-stamp",
    ],
)
def test_variant_columns_appear_as_they_do_from_rows(
    destination: Warehouse, first: list[Any], then: list[Any]
) -> None:
    """A first page of lone scalars and a later one of objects, and the reverse: dlt's variant
    columns (`data__v_text`, a timestamp when its first text looks like one, and then
    `data__v_text__v_text`) appear in the same order and types; within one run and over two."""
    one = [things(*first), things(*then, start=len(first) + 1)]
    assert_same(destination, [one], [True])
    assert_same(destination, [[one[0]], [one[1]]], [False, True])
    assert_same(destination, [[one[0]], [one[1]]], [True, False])


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_a_lone_value_in_the_first_row_comes_before_dlt_columns_as_from_rows(
    destination: Warehouse,
) -> None:
    """dlt's row path creates a new table's columns in the order it meets them, the first row's
    before its `_dlt_load_id` and `_dlt_id`: a lone text and a bad timestamp in row one."""
    rows = things("2024-03-15T10:20:30Z", {"x": 1}, 5)
    rows[0]["at"] = "soon"
    rows[0]["meta"] = '"a lone JSON text"'
    pipeline = assert_same(destination, [[rows]], [True])
    with pipeline.sql_client() as client:
        names = [r[0] for r in client.execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{client.dataset_name}' AND table_name = 'things' ORDER BY ordinal_position")]  # fmt: skip
    assert names.index("data__v_text") < names.index("_dlt_id") < names.index("data__v_bigint")


def jsonl_rows(pipeline: Pipeline, load_id: str) -> dict[Any, dict[str, Any]]:
    """The rows of `things` in the jsonl files a load package holds for BigQuery, by `pk`."""
    out: dict[Any, dict[str, Any]] = {}
    jobs = pipeline.get_load_package_info(load_id).jobs["new_jobs"]
    for job in jobs:
        if job.job_file_info.table_name != "things":
            continue
        opener = gzip.open if job.file_path.endswith(".gz") else open
        with opener(job.file_path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                # a null is left out from rows and written from Arrow: both load NULL
                out[row["pk"]] = {
                    k: v for k, v in row.items() if not k.startswith("_dlt") and v is not None
                }
    return out


def test_bigquery_gets_json_values_from_arrow_as_from_rows(workdir: Path) -> None:
    """BigQuery loads jsonl: dlt writes an Arrow table's JSON column (JSON text) there as the
    object, list or value it is, as the row path writes it, not as a JSON string."""
    rows = things(*OBJECTS, *SCALARS)
    rows[0]["meta"] = '{"k": [1, "two"]}'
    found = {}
    for name in ("rows", "arrow"):
        pipeline = dlt.pipeline(
            f"bq_{name}",
            destination=dlt.destinations.bigquery(),
            dataset_name="bq",
            pipelines_dir=str(workdir / "pipelines"),
        )
        resource = things_resource([rows], from_arrow=name == "arrow")
        pipeline.extract(resource, loader_file_format="jsonl")
        info = pipeline.normalize()
        found[name] = jsonl_rows(pipeline, info.loads_ids[0])
    assert found["arrow"] == found["rows"]
    assert found["arrow"][1]["data"] == OBJECTS[0] and found["arrow"][1]["meta"] == {
        "k": [1, "two"]
    }
