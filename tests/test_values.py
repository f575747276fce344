"""The core's value rules: exact JSON numbers, decimal columns, and timestamps in every form."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lxp_sync.sources.core.arrow import to_arrow
from lxp_sync.sources.core.numbers import (
    DecimalColumn,
    ValueOutOfRangeError,
    has_long_number,
    loads_exact,
)
from lxp_sync.sources.core.timestamps import parse_iso, timestamp_array
from lxp_sync_sandbox.server import SandboxProcess
from tests import test_pitchly as pitchly
from tests import test_plusplus_graphql as plusplus_graphql
from tests import test_plusplus_rest as plusplus_rest
from tests import test_pluvo as pluvo
from tests.helpers import sync

# --- numbers --------------------------------------------------------------------------------------


def test_json_numbers_keep_the_digits_of_their_text() -> None:
    body = loads_exact(
        b'{"a": 9007199254740993, "b": 0.12345678901234567890, "c": 1.5, '
        b'"d": -18446744073709551617, "e": 12345678.123456789012}'
    )
    assert body["a"] == 9007199254740993 and isinstance(body["a"], int)
    assert body["b"] == Decimal("0.12345678901234567890")
    assert body["c"] == Decimal("1.5")
    assert body["d"] == -18446744073709551617
    assert body["e"] == Decimal("12345678.123456789012")
    # short numbers take orjson's path: a double prints back as its text
    assert loads_exact(b'{"x": 2304.5, "y": 7}') == {"x": 2304.5, "y": 7}


# JSON numbers as an API writes them: a sign, digits, maybe a fraction, maybe an exponent
_NUMBER_TEXTS = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,24}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][-+]?[1-9][0-9]?", fullmatch=True)),
)
# and at the edge of a double: 15 to 17 significant digits, a point among them
_EDGE_TEXTS = st.integers(15, 17).flatmap(
    lambda digits: st.builds(
        lambda first, rest, point: f"{first}{rest[:point]}.{rest[point:]}",
        st.sampled_from("123456789"),
        st.text("0123456789", min_size=digits - 1, max_size=digits - 1),
        st.integers(0, digits - 2),
    )
)


@settings(max_examples=300)
@given(
    numbers=st.lists(_NUMBER_TEXTS | _EDGE_TEXTS, min_size=1, max_size=5), text=st.text(max_size=30)
)
def test_every_json_number_keeps_the_value_of_its_text(numbers: list[str], text: str) -> None:
    # among strings, timestamps and other numbers, as in a page of records
    document = f'{{"s": {json.dumps(text)}, "at": "2025-12-31T23:59:59.123Z", "n": [{", ".join(numbers)}]}}'
    body = loads_exact(document.encode())
    for number, value in zip(numbers, body["n"], strict=True):
        exact = Decimal(number)
        if isinstance(value, float):
            # orjson's double: exact only where the text's digits fit in one
            assert Decimal(repr(value)) == exact, (number, value)
        else:
            assert Decimal(value) == exact, (number, value)


# a page's bytes: runs of digits (points among them) between bytes that are neither
_DIGIT_RUNS = st.lists(
    st.tuples(
        st.text("0123456789", min_size=1, max_size=20),
        st.lists(st.booleans(), max_size=20),  # a point after the digit at that place
        st.text(' "abT:-,{}eE+', min_size=1, max_size=3),
    ),
    max_size=6,
)


@settings(max_examples=300)
@given(runs=_DIGIT_RUNS)
def test_the_check_for_long_numbers_finds_exactly_the_runs_of_16_digits(
    runs: list[tuple[str, list[bool], str]],
) -> None:
    content, longest = "", 0
    for digits, points, separator in runs:
        run = "".join(
            d + ("." if i < len(points) and points[i] and i < len(digits) - 1 else "")
            for i, d in enumerate(digits)
        )
        content += run + separator
        longest = max(longest, len(digits))
    assert has_long_number(content.encode()) == (longest >= 16), content
    # what it replaced, a regular expression, never finds one it misses
    if re.search(rb"[0-9](?:\.?[0-9]){15}", content.encode()):
        assert has_long_number(content.encode())


def test_a_decimal_column_is_exact_rounds_past_18_places_and_refuses_overflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    column = DecimalColumn("growth", "pitchly.sales__companies")
    exact = [9007199254740993, 2304.5, Decimal("-73.786976294838206464"), None, True, "12"]
    assert column.array(exact).to_pylist() == [
        Decimal(9007199254740993),
        Decimal("2304.5"),
        Decimal("-73.786976294838206464"),
        None,
        None,  # a boolean is not a number
        None,  # nor is a text
    ]
    assert column.array([]).type == pa.decimal128(38, 18)

    with caplog.at_level(logging.WARNING, logger="lxp_sync"):
        rounded = column.array([3.3333333333333335e-05, Decimal("1.0000000000000000005")])
    assert rounded.to_pylist() == [Decimal("0.000033333333333333"), Decimal("1")]
    assert column.rounded == 2
    assert "growth: 2 value(s) had digits past the 18th decimal place" in caplog.text

    with pytest.raises(ValueOutOfRangeError) as error:
        column.array([1, Decimal("1e20")], keys=["wks|rec1", "wks|rec2"])
    line = str(error.value)
    assert line.startswith("pitchly.sales__companies: the number 1E+20 in column growth")
    assert "(record wks|rec2)" in line and "decimal(38,18)" in line
    assert column.array([Decimal("99999999999999999999.999999999999999999")]).to_pylist() == [
        Decimal("99999999999999999999.999999999999999999")
    ]


# --- timestamps -----------------------------------------------------------------------------------

NAIVE = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+")
NANOS = re.compile(r".*T\d\d:\d\d:\d\d\.\d{9}.*")
DATE = re.compile(r"\d{4}-\d\d-\d\d")


def odd_forms(rows: list[Any]) -> set[str]:
    """Which odd forms of instants a truth holds (anywhere in its values)."""
    found = set()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, str):
            for form, pattern in (("naive", NAIVE), ("nanos", NANOS), ("date", DATE)):
                if pattern.fullmatch(value):
                    found.add(form)

    visit(rows)
    return found


def test_the_core_parser_reads_every_form_as_a_utc_instant() -> None:
    texts = [
        "2024-03-15T10:20:30Z",  # the common case: one vectorized cast
        "2024-03-15T12:20:30+02:00",
        "2024-03-15T10:20:30",  # naive: UTC
        "2024-03-15T10:20:30.123456789Z",  # nanoseconds: truncated to microseconds
        "2024-03-15T15:50:30.1234567+05:30",
        "2024-03-15",  # a date alone: midnight UTC
        "2024-03-15 10:20:30",
        None,
        "",
        "not a time",
    ]
    array, bad = timestamp_array(texts)
    at = datetime(2024, 3, 15, 10, 20, 30, tzinfo=UTC)
    assert array.type == pa.timestamp("us", tz="UTC")
    assert array.to_pylist() == [
        at,
        at,
        at,
        at.replace(microsecond=123456),
        at.replace(microsecond=123456),
        datetime(2024, 3, 15, tzinfo=UTC),
        at,
        None,
        None,
        None,
    ]
    assert bad == [9]
    assert timestamp_array(texts[:2])[0].to_pylist() == [at, at]
    assert parse_iso("2024-03-15T10:20:30.123456789") == at.replace(microsecond=123456)


@pytest.mark.parametrize("nested", [False, True], ids=["fast", "row-by-row"])
def test_the_arrow_path_keeps_a_text_that_is_no_timestamp_beside_the_column(nested: bool) -> None:
    rows: list[dict[str, Any]] = [
        {"id": 1, "t": "2024-03-15T10:20:30"},
        {"id": 2, "t": "soon"},
        {"id": 3, "t": None},
    ]
    if nested:  # a field that is a number here and an object there: the row-by-row path
        rows[0]["x"], rows[1]["x"] = 1, {"a": 1}
    hints = {"t": {"data_type": "timestamp"}, "id": {"data_type": "bigint"}}

    table = to_arrow(rows, hints)

    assert table.column("t").to_pylist() == [
        datetime(2024, 3, 15, 10, 20, 30, tzinfo=UTC),
        None,
        None,
    ]
    assert table.column("t__v_text").to_pylist() == [None, "soon", None]


SOURCES_ODD = {
    # source: (api, resources)
    "plusplus_rest": ("plusplus_rest", ["users", "content_items", "assignments", "enrollments"]),
    "plusplus_graphql": ("plusplus_graphql", ["events", "enrollments", "assignments"]),
    "pluvo": ("pluvo", ["users", "trainings", "events"]),
    "pitchly": ("pitchly", ["sales__companies", "legal__matters"]),
}


def assert_source_equals_truth(
    source: str, sandbox: SandboxProcess, workdir: Path, pipeline: Any, resources: list[str]
) -> None:
    if source == "plusplus_rest":
        plusplus_rest.assert_warehouse_equals_truth(
            sandbox, workdir, ignore=plusplus_rest.EMBEDDED_COPIES, resources=resources
        )
    elif source == "plusplus_graphql":
        for connection in resources:
            plusplus_graphql.assert_connection_equals_truth(sandbox, workdir, connection)
    elif source == "pluvo":
        pluvo.assert_warehouse_equals_truth(sandbox, workdir, resources)
    else:
        tables = {loaded: name for name, loaded in pitchly.TABLES.items()}
        for table in resources:
            table_id = pitchly.tables_by_name(sandbox)[tables[table]]["id"]
            pitchly.assert_table_equals_truth(sandbox, pipeline, workdir, table_id, table)


def change(source: str, sandbox: SandboxProcess, resources: list[str]) -> None:
    if source == "pitchly":
        for table in resources:
            name = next(n for n, loaded in pitchly.TABLES.items() if loaded == table)
            table_id = pitchly.tables_by_name(sandbox)[name]["id"]
            sandbox.mutate(api="pitchly", entity=f"records:{table_id}", insert=3, update=3)
        return
    for resource in resources:
        entity = pluvo.CONNECTIONS[resource] if source == "pluvo" else resource
        sandbox.mutate(api=source, entity=entity, insert=3)
        # REST assignments and enrollments: state changes inside the refresh window (README)
        window = {"created_within_days": 5} if resource in ("assignments", "enrollments") else {}
        sandbox.mutate(api=source, entity=entity, update=3, **window)


@pytest.mark.parametrize("source", SOURCES_ODD)
def test_naive_nanosecond_and_date_only_timestamps_load_as_utc_instants(
    fresh_sandbox: SandboxProcess, workdir: Path, source: str
) -> None:
    sandbox = fresh_sandbox
    api, resources = SOURCES_ODD[source]
    sandbox.configure(api=api, odd_timestamps=True)
    if source == "pitchly":
        tables = pitchly.tables_by_name(sandbox)
        truth = [sandbox.truth(api, f"records:{t['id']}") for t in tables.values()]
    else:
        connections = pluvo.CONNECTIONS if source == "pluvo" else {}
        truth = [sandbox.truth(api, connections.get(r, r)) for r in resources]
    assert odd_forms(truth) == {"naive", "nanos", "date"}, "the sandbox serves every odd form"

    pipeline = sync(source, sandbox, workdir, resources=resources)

    assert_source_equals_truth(source, sandbox, workdir, pipeline, resources)
    change(source, sandbox, resources)  # the cursors were read from odd forms too
    pipeline = sync(source, sandbox, workdir, resources=resources)
    assert_source_equals_truth(source, sandbox, workdir, pipeline, resources)
