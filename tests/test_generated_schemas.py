"""Property-based: schemas and data nobody wrote by hand, synced and compared with the truth.

Hypothesis generates GraphQL schemas (field names that are SQL reserved words, differ only by
case or by what dlt's naming folds, exceed 63 bytes; scalars, enums, nullable and non-null,
nested objects, lists, connections inside nodes, deprecated fields) and their rows (unicode,
nulls wherever allowed, extreme numbers, every timestamp form), serves them from the sandbox's
`generated` API (`sandbox/generated.py`), syncs them with the PlusPlus GraphQL source (a
generic relay-connection reader: key `pk`, cursors only where a type has `modified`) and
compares every table with what was generated, on DuckDB and PostgreSQL.

GraphQL names are ASCII by the spec (graphql-core refuses others), so non-Latin text is in
the values. Profiles: `ci` (the default: 20 examples a destination, no deadline) and `long`
(`--hypothesis-profile=long`: 300), registered in `tests/conftest.py`.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.exceptions import PipelineStepFailed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lxp_sync.pipelines import recovery
from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.recovery import MAX_IDENTIFIER_BYTES
from lxp_sync.sources.core.connections import table_name
from lxp_sync.sources.core.names import response_keys
from lxp_sync.sources.plusplus import plusplus_graphql_source
from lxp_sync_sandbox.generated import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import arrow_tables, sync
from tests.support.warehouse import Warehouse

API = "generated"
RESERVED = ("select", "from", "where", "order", "group", "table", "user", "limit", "offset",
            "desc", "primary", "key", "default", "check", "column", "end", "case", "null",
            "true", "false", "index", "values", "time", "date", "timestamp", "window", "all",
            "union", "join", "value", "type", "count", "position", "natural")  # fmt: skip
SCALARS = ("Int", "Float", "String", "Boolean", "ID", "DateTime", "Decimal")
# names the generator keeps for itself or that dlt reserves
TAKEN = {"pk", "id", "_parent_pk"}


@dataclass
class Generated:
    """A spec for the sandbox and what each table should hold after a sync."""

    spec: dict[str, Any]
    # type -> pk -> field name -> the value as the warehouse should hold it
    expected: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


# -- strategies --------------------------------------------------------------------------------

plain_names = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
camel_names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,11}", fullmatch=True)
long_names = st.from_regex(r"[a-z][a-z_]{63,80}[a-z]", fullmatch=True)
names = st.one_of(st.sampled_from(RESERVED), plain_names, camel_names, long_names).filter(
    lambda n: n not in TAKEN and not n.startswith(("__", "_dlt")) and n.lower() not in TAKEN
)


@st.composite
def field_names(draw: st.DrawFn, count: int) -> list[str]:
    """`count` distinct names, some differing from another only by case or underscores."""
    out: list[str] = []
    while len(out) < count:
        if out and draw(st.integers(0, 4)) == 0:
            base = draw(st.sampled_from(out))
            name = draw(st.sampled_from([base.upper(), base.capitalize(), base.replace("_", "__")]))
        else:
            name = draw(names)
        if name not in out and name.lower() not in TAKEN:
            out.append(name)
    return out


texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(
    ["", " ", "名前 テスト", "مرحبا", "🙂👍🏽", "e\u0301", "a\nb\tc", "'; DROP TABLE x; --"]
)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 2.0**53 + 2]
)
int32 = st.integers(-(2**31), 2**31 - 1) | st.sampled_from([-(2**31), 2**31 - 1, 0])
# graphene's Decimal: `str(Decimal)`, exponents included; what `decimal(38,9)` holds
BIGGEST = "99999999999999999999999999999.999999999"
decimal_texts = st.integers(0, 9).flatmap(
    lambda places: st.decimals(-(10**29) + 1, 10**29 - 1, places=places)
).map(str) | st.sampled_from(["1E+3", "-0", "0E-9", "123.4500", "-0.000000001", BIGGEST])
moments = st.datetimes(min_value=datetime(1901, 1, 2), max_value=datetime(2199, 12, 30)).map(
    lambda d: d.replace(tzinfo=UTC)
)
offsets = st.sampled_from([0, 60, -300, 330, 345, -570, 840, -720]).map(
    lambda m: timezone(timedelta(minutes=m))
)


@st.composite
def timestamp(draw: st.DrawFn) -> tuple[str, datetime]:
    """(the text the API sends, the instant the warehouse should hold), in one of many forms."""
    form = draw(
        st.sampled_from(["z", "offset", "naive", "nanos", "date", "space", "basic", "milli"])
    )
    moment = draw(moments)
    if form == "date":
        moment = datetime.combine(moment.date(), time(), UTC)
        return moment.date().isoformat(), moment
    if form == "offset":
        return moment.astimezone(draw(offsets)).isoformat(), moment
    if form == "naive":
        return moment.replace(tzinfo=None).isoformat(), moment
    if form == "nanos":
        text = moment.replace(tzinfo=None).isoformat(timespec="microseconds")
        return f"{text}{draw(st.integers(0, 999)):03d}+00:00", moment
    if form == "space":
        return moment.isoformat(sep=" "), moment
    if form == "basic":
        return moment.strftime("%Y%m%dT%H%M%S.%fZ"), moment
    if form == "milli":
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), moment
    return moment.isoformat().replace("+00:00", "Z"), moment


def scalar_value(draw: st.DrawFn, scalar: str, enums: dict[str, list[str]]) -> tuple[Any, Any]:
    """(as sent, as loaded) for one value of a scalar or enum type."""
    if scalar == "Int":
        value = draw(int32)
        return value, value
    if scalar == "Float":
        value = draw(floats)
        return value, value
    if scalar == "Boolean":
        value = draw(st.booleans())
        return value, value
    if scalar == "DateTime":
        return draw(timestamp())
    if scalar == "Decimal":
        text = draw(decimal_texts)
        return text, Decimal(text)
    if scalar in enums:
        value = draw(st.sampled_from(enums[scalar]))
        return value, value
    value = draw(texts)
    return value, value


@st.composite
def generated(draw: st.DrawFn) -> Generated:
    enum_values = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), min_size=1,
                                max_size=4, unique=True))  # fmt: skip
    enums = {"Kind": enum_values}
    type_names = [f"T{i}" for i in range(draw(st.integers(1, 3)))]
    types: dict[str, list[dict[str, Any]]] = {}
    for type_name in type_names:
        fields = []
        for name in draw(field_names(draw(st.integers(1, 7)))):
            kind = draw(st.sampled_from(["scalar"] * 5 + ["list", "object", "connection"]))
            entry: dict[str, Any] = {"name": name, "kind": "scalar" if kind == "list" else kind}
            if kind in ("scalar", "list"):
                entry["type"] = draw(st.sampled_from([*SCALARS, "Kind"]))
                entry["list"] = kind == "list"
                entry["non_null"] = draw(st.booleans())
            else:
                entry["target"] = draw(st.sampled_from(type_names))
            entry["deprecated"] = draw(st.integers(0, 9)) == 0
            fields.append(entry)
        types[type_name] = fields
    roots = {f"{draw(names)}_{i}": type_name for i, type_name in enumerate(type_names)}
    counts = {t: draw(st.integers(0, 9)) for t in type_names}
    rows: dict[str, list[dict[str, Any]]] = {}
    expected: dict[str, dict[int, dict[str, Any]]] = {}
    for type_name in type_names:
        rows[type_name], expected[type_name] = [], {}
        for pk in draw(st.lists(st.integers(1, 2**31 - 1), min_size=counts[type_name],
                                max_size=counts[type_name], unique=True)):  # fmt: skip
            sent: dict[str, Any] = {"pk": pk}
            loaded: dict[str, Any] = {"pk": pk}
            for entry in types[type_name]:
                name = entry["name"]
                if entry["kind"] in ("object", "connection"):
                    targets = [row["pk"] for row in rows.get(entry["target"], [])]
                    if entry["kind"] == "object":
                        value = draw(st.sampled_from([None, *targets])) if targets else None
                    else:
                        value = draw(st.lists(st.sampled_from(targets), unique=True, max_size=12)) if targets else []  # fmt: skip
                    sent[name] = loaded[name] = value
                    continue
                if not entry["non_null"] and draw(st.integers(0, 3)) == 0:
                    sent[name] = loaded[name] = None
                    continue
                if entry["list"]:
                    pairs = [
                        scalar_value(draw, entry["type"], enums)
                        for _ in range(draw(st.integers(0, 4)))
                    ]
                    sent[name] = [p[0] for p in pairs]
                    loaded[name] = [p[1] for p in pairs]
                else:
                    sent[name], loaded[name] = scalar_value(draw, entry["type"], enums)
            rows[type_name].append(sent)
            expected[type_name][pk] = loaded
    # objects and connections point at rows generated before them: fill the rest now
    for type_name in type_names:
        for entry in types[type_name]:
            if entry["kind"] not in ("object", "connection"):
                continue
            targets = [row["pk"] for row in rows[entry["target"]]]
            for row in rows[type_name]:
                if entry["kind"] == "object" and row[entry["name"]] is None and targets:
                    row[entry["name"]] = draw(st.sampled_from([None, *targets]))
                elif entry["kind"] == "connection" and not row[entry["name"]] and targets:
                    row[entry["name"]] = draw(st.lists(st.sampled_from(targets), unique=True, max_size=12))  # fmt: skip
                expected[type_name][row["pk"]][entry["name"]] = row[entry["name"]]
    spec = {
        "types": types,
        "enums": enums,
        "roots": roots,
        "rows": rows,
        "node": draw(st.booleans()),
        "page_limit": draw(st.sampled_from([3, 5, 100])),
    }
    return Generated(spec, expected)


# -- the comparison ----------------------------------------------------------------------------


def same(expected: Any, loaded: Any) -> bool:
    """Exactly the generated value: a float to the bit, an instant as the same UTC moment."""
    if expected is None or loaded is None:
        return expected is None and loaded is None
    if isinstance(expected, bool) or isinstance(loaded, bool):
        return expected is loaded
    if isinstance(expected, datetime):
        return isinstance(loaded, datetime) and expected == loaded.astimezone(UTC)
    if isinstance(expected, float):
        return isinstance(loaded, float | int) and float(loaded) == expected
    return type(expected) is type(loaded) and expected == loaded


def assert_loaded_equals_generated(
    warehouse: Warehouse, pipeline: Any, generated: Generated
) -> None:
    spec = generated.spec
    naming = pipeline.default_schema.naming
    tables = set(pipeline.default_schema.tables)
    for root, type_name in spec["roots"].items():
        table = naming.normalize_tables_path(table_name(root))
        want = generated.expected[type_name]
        loaded = read_or_none(warehouse, pipeline, table) if table in tables else []
        assert sorted(row["pk"] for row in loaded) == sorted(want), table
        fields = spec["types"][type_name]
        keys = keys_of(spec, type_name)
        by_pk = {row["pk"]: row for row in loaded}
        columns = set().union(*(row.keys() for row in loaded)) if loaded else set()
        live = {naming.normalize_path(keys[f["name"]]) for f in fields if not f.get("deprecated")}
        for entry in fields:
            column = naming.normalize_path(keys[entry["name"]])
            if entry.get("deprecated") and column in live:
                continue  # a live field's column (the deprecated field is not selected)
            if entry.get("deprecated"):
                if entry["kind"] == "object":
                    column = naming.shorten_fragments(column, "pk")
                if entry["kind"] in ("scalar", "object") and not entry.get("list"):
                    assert column not in columns, f"{table}.{column}: deprecated, loaded"
                else:
                    child = naming.shorten_fragments(table, column)
                    assert child not in pipeline.default_schema.tables, f"{child}: deprecated"
                continue
            if entry["kind"] == "object" and not entry.get("list"):
                column = naming.shorten_fragments(column, "pk")
                for pk, row in want.items():
                    assert by_pk[pk].get(column) == row[entry["name"]], (table, column, pk)
            elif entry["kind"] == "scalar" and not entry.get("list"):
                for pk, row in want.items():
                    got = by_pk[pk].get(column)
                    assert same(row[entry["name"]], got), (
                        table,
                        column,
                        pk,
                        row[entry["name"]],
                        got,
                    )
            else:
                assert_child_table(
                    warehouse, pipeline, generated, table, type_name, entry, column, by_pk
                )


def assert_child_table(
    warehouse: Warehouse,
    pipeline: Any,
    generated: Generated,
    table: str,
    type_name: str,
    entry: dict[str, Any],
    column: str,
    parents: dict[int, dict[str, Any]],
) -> None:
    naming = pipeline.default_schema.naming
    child = naming.shorten_fragments(table, column)
    want = {pk: row[entry["name"]] or [] for pk, row in generated.expected[type_name].items()}  # fmt: skip
    rows = read_or_none(warehouse, pipeline, child)
    by_dlt_id = {row["_dlt_id"]: pk for pk, row in parents.items()}
    got: dict[int, list[tuple[int, Any]]] = {}
    for row in rows:
        parent = by_dlt_id[row["_dlt_parent_id"]]
        if entry["kind"] == "connection":
            assert row["_parent_pk"] == parent, (child, row)
        if entry["kind"] in ("connection", "object"):  # a list of objects: their `pk`s
            got.setdefault(parent, []).append((row["_dlt_list_idx"], row["pk"]))
        else:
            got.setdefault(parent, []).append((row["_dlt_list_idx"], row["value"]))
    for pk, items in want.items():
        loaded = [value for _, value in sorted(got.get(pk, []), key=lambda pair: pair[0])]
        assert len(loaded) == len(items), (child, pk, items, loaded)
        for expected, value in zip(items, loaded, strict=True):
            assert same(expected, value), (child, pk, expected, value)
    if entry["kind"] == "connection":
        assert_nested_scalars(warehouse, pipeline, generated, entry, rows)


def assert_nested_scalars(
    warehouse: Warehouse, pipeline: Any, generated: Generated, entry: dict[str, Any], rows: list
) -> None:
    """The nested nodes' own scalars, as the target type's rows hold them."""
    naming = pipeline.default_schema.naming
    target = entry["target"]
    fields = generated.spec["types"][target]
    keys = keys_of(generated.spec, target)
    for row in rows:
        truth = generated.expected[target][row["pk"]]
        for item in fields:
            if item["kind"] != "scalar" or item.get("list") or item.get("deprecated"):
                continue
            column = naming.normalize_path(keys[item["name"]])
            assert same(truth[item["name"]], row.get(column)), (target, column, row["pk"])


def read_or_none(warehouse: Warehouse, pipeline: Any, table: str) -> list[dict[str, Any]]:
    """A table's rows; none where dlt never made it (a child table no row reached)."""
    try:
        return warehouse.rows(pipeline, table, dlt_columns=True)
    except DatabaseUndefinedRelation:
        return []


def keys_of(spec: dict[str, Any], type_name: str) -> dict[str, str]:
    """Each field's response key, by the source's rule (`response_keys`), from the spec."""
    fields = [{"name": "pk", "kind": "scalar"}, *(
        [{"name": "id", "kind": "scalar"}] if spec["node"] else []), *spec["types"][type_name]]  # fmt: skip
    columns = [
        None if f.get("deprecated") else f"{f['name']}__pk" if f["kind"] == "object" else f["name"]
        for f in fields
    ]
    tables = [f["name"] for f in fields if f["kind"] == "connection" or f.get("list")]
    return response_keys([f["name"] for f in fields], columns, tables)


# -- the test ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator_sandbox() -> Any:
    with SandboxProcess(rows=100, seed=3) as process:
        yield process


_runs = itertools.count()


def sync_into(
    sandbox: SandboxProcess,
    warehouse: Warehouse,
    spec: dict[str, Any],
    *,
    workdir: Path | None = None,
    dataset: str | None = None,
    **source_args: Any,
) -> Any:
    """One run of `spec` into the test's own dataset and pipeline state (reruns continue it),
    or into `workdir` and `dataset`."""
    sandbox.configure(api=API, spec=spec)
    source = plusplus_graphql_source(
        base_url=f"{sandbox.url}/{API}/graphql", api_token=API_TOKEN, **source_args
    )
    dataset = dataset or warehouse.dataset_name
    return sync(
        "plusplus_graphql",
        sandbox,
        workdir or warehouse.workdir,
        dataset=dataset,
        destination=warehouse.make(dataset),
        source=source,
    )


def sync_generated(
    sandbox: SandboxProcess, warehouse: Warehouse, generated: Generated, page_size: int
) -> Any:
    """One run of `generated` into a dataset and pipeline state of its own."""
    run = next(_runs)
    workdir = Path(warehouse.workdir) / f"run{run}"
    workdir.mkdir()
    return sync_into(
        sandbox,
        warehouse,
        generated.spec,
        workdir=workdir,
        dataset=f"{warehouse.dataset_name}_{run}",
        page_size=page_size,
    )


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])  # fmt: skip
@given(generated=generated(), page_size=st.sampled_from([2, 4, 100]))
def test_generated_schemas_and_data_sync_to_what_was_generated(
    generator_sandbox: SandboxProcess, destination: Warehouse, generated: Generated, page_size: int
) -> None:
    pipeline = sync_generated(generator_sandbox, destination, generated, page_size)
    try:
        assert_loaded_equals_generated(destination, pipeline, generated)
    except AssertionError:
        Path("/tmp/lxp_generated_failure.json").write_text(json.dumps(generated.spec, indent=1))
        raise


def test_the_generated_api_serves_its_spec(generator_sandbox: SandboxProcess) -> None:
    import httpx

    spec = {
        "types": {"T0": [{"name": "select", "kind": "scalar", "type": "String"}]},
        "roots": {"things": "T0"},
        "rows": {"T0": [{"pk": 1, "select": "名前"}, {"pk": 2, "select": None}]},
        "page_limit": 1,
    }
    generator_sandbox.configure(api=API, spec=spec)
    url = f"{generator_sandbox.url}/{API}/graphql"
    headers = {"Authorization": f"Token {API_TOKEN}"}
    body = httpx.post(url, json={"query": "{ things(first: 1) { edges { node { pk select } } totalCount } }"}, headers=headers).json()  # fmt: skip
    assert body["data"]["things"] == {
        "edges": [{"node": {"pk": 1, "select": "名前"}}],
        "totalCount": 2,
    }
    refused = httpx.post(url, json={"query": "{ things(first: 2) { totalCount } }"}, headers=headers).json()  # fmt: skip
    assert "exceeds the `first` limit of 1 records" in refused["errors"][0]["message"]


# -- examples kept as regular tests: what the generator found, and its neighbours ------------------

COLLIDING = Generated(
    spec={
        "types": {
            "T0": [
                {"name": "Name", "kind": "scalar", "type": "String"},
                {"name": "name", "kind": "scalar", "type": "String"},
                {"name": "x_", "kind": "scalar", "type": "Int"},
                {"name": "xx", "kind": "scalar", "type": "Int"},
                {"name": "a__b", "kind": "scalar", "type": "Boolean"},
                {"name": "a_b", "kind": "scalar", "type": "Boolean"},
                {"name": "owner__pk", "kind": "scalar", "type": "Int"},
                {"name": "owner", "kind": "object", "target": "T0"},
                {"name": "PK", "kind": "scalar", "type": "String"},
                {"name": "select", "kind": "connection", "target": "T0"},
                {"name": "x" * 70, "kind": "scalar", "type": "String"},
                {"name": "x" * 69 + "y", "kind": "scalar", "type": "String"},
            ]
        },
        "enums": {},
        "roots": {"Things__all": "T0"},
        "rows": {
            "T0": [
                {
                    "pk": 1,
                    "Name": "A",
                    "name": "a",
                    "x_": 1,
                    "xx": 2,
                    "a__b": True,
                    "a_b": False,
                    "owner__pk": 7,
                    "owner": 2,
                    "PK": "p",
                    "select": [2, 1],
                    "x" * 70: "long",
                    "x" * 69 + "y": "longer",
                },
                {
                    "pk": 2,
                    "Name": None,
                    "name": "b",
                    "x_": None,
                    "xx": 0,
                    "a__b": None,
                    "a_b": True,
                    "owner__pk": None,
                    "owner": None,
                    "PK": None,
                    "select": [],
                    "x" * 70: None,
                    "x" * 69 + "y": "名前",
                },
            ]
        },  # fmt: skip
        "node": False,
        "page_limit": 1,
    }
)
COLLIDING.expected = {"T0": {row["pk"]: dict(row) for row in COLLIDING.spec["rows"]["T0"]}}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_fields_that_dlt_would_make_one_column_land_in_columns_of_their_own(
    generator_sandbox: SandboxProcess, destination: Warehouse
) -> None:
    # `Name`/`name`, `x_`/`xx`, a field `owner__pk` beside `owner { pk }`, 63-byte names, a
    # root name with `__`, a nested connection named `select`, one row a page (`page_limit`)
    pipeline = sync_generated(generator_sandbox, destination, COLLIDING, page_size=100)
    assert_loaded_equals_generated(destination, pipeline, COLLIDING)
    columns = pipeline.default_schema.get_table_columns(
        pipeline.default_schema.naming.normalize_tables_path(table_name("Things__all"))
    )
    aliased = {c for c in columns if c.startswith(("name_", "xx_", "x__", "owner__pk_", "pk_"))}
    # `Name`, `x_`, `owner__pk` and `PK` get aliases; `name`, `xx`, `owner { pk }`, `pk` stay
    assert len(aliased) == 4, sorted(columns)


# found by the long profile: a deprecated object beside a live scalar of the same name (it took
# the name and the scalar got an alias), and a list of DateTime whose texts were loaded as text
# (a date alone) or as timestamps (dlt's own detection), depending on the first values
FOUND = Generated(
    spec={
        "types": {
            "T0": [
                {"name": "l_mm", "kind": "scalar", "type": "Int"},
                {"name": "L_mm", "kind": "object", "target": "T0", "deprecated": True},
                {"name": "L__mm", "kind": "connection", "target": "T0"},
                {"name": "window", "kind": "scalar", "type": "DateTime", "list": True},
            ]
        },
        "enums": {},
        "roots": {"things": "T0"},
        "rows": {
            "T0": [
                {
                    "pk": 1,
                    "l_mm": -(2**31),
                    "L_mm": 1,
                    "L__mm": [1],
                    "window": ["2185-01-18", "2024-02-29T23:59:59.123456789+05:30"],
                },
                {
                    "pk": 2,
                    "l_mm": 2**31 - 1,
                    "L_mm": None,
                    "L__mm": [],
                    "window": ["1901-12-13T20:45:52", "2024-01-02 03:04:05Z"],
                },
            ]
        },  # fmt: skip
        "node": True,
        "page_limit": 100,
    }
)
FOUND.expected = {
    "T0": {
        1: {"pk": 1, "l_mm": -(2**31), "L_mm": 1, "L__mm": [1], "window": [
            datetime(2185, 1, 18, tzinfo=UTC),
            datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=UTC)]},
        2: {"pk": 2, "l_mm": 2**31 - 1, "L_mm": None, "L__mm": [], "window": [
            datetime(1901, 12, 13, 20, 45, 52, tzinfo=UTC),
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)]},
    }
}  # fmt: skip


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_examples_the_long_profile_found(
    generator_sandbox: SandboxProcess, destination: Warehouse
) -> None:
    pipeline = sync_generated(generator_sandbox, destination, FOUND, page_size=100)
    assert_loaded_equals_generated(destination, pipeline, FOUND)
    columns = pipeline.default_schema.get_table_columns("things")
    assert "l_mm" in columns and not any(c.startswith("l_mm__pk") for c in columns)
    window = pipeline.default_schema.get_table_columns("things__window")["value"]
    assert window["data_type"] == "timestamp"


# found in CI by the default profile: a nested object whose name is longer than PostgreSQL's 63
# bytes. dlt's row normalizer shortens the name before `__pk` joins it, Arrow's only the whole
# column name: the table stays on rows (`ARROW_NAME_BYTES`), so both ways name it alike
LONG = "Eoucahcaibvngdekkxkmpwspzvhnuluhcoepxbex_rqbcldoxfm_tyh_gdtusznge_zqhpocnbfbi_h_ur"
FOUND_LONG = Generated(
    spec={
        "types": {
            "T0": [
                {"name": "i0", "kind": "scalar", "type": "Int"},
                {"name": LONG, "kind": "object", "target": "T0"},
            ]
        },
        "enums": {},
        "roots": {"things": "T0"},
        "rows": {"T0": [{"pk": 1, "i0": 5, LONG: 2}, {"pk": 2, "i0": None, LONG: None}]},
        "node": False,
        "page_limit": 100,
    }
)
FOUND_LONG.expected = {"T0": {1: {"pk": 1, "i0": 5, LONG: 2}, 2: {"pk": 2, "i0": None, LONG: None}}}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_a_nested_object_with_a_name_longer_than_63_bytes(
    generator_sandbox: SandboxProcess, destination: Warehouse
) -> None:
    pipeline = sync_generated(generator_sandbox, destination, FOUND_LONG, page_size=100)
    assert_loaded_equals_generated(destination, pipeline, FOUND_LONG)


# -- GraphQL Decimal: exact, from Arrow as from rows, or a failure in one line -----------------


def decimal_spec(amounts: list[Any]) -> dict[str, Any]:
    """`things` with a Decimal (from Arrow), `lists` with a list of them (a child table: rows)."""
    return {
        "types": {
            "T0": [{"name": "amount", "kind": "scalar", "type": "Decimal"}],
            "T1": [{"name": "amounts", "kind": "scalar", "type": "Decimal", "list": True}],
        },
        "enums": {},
        "roots": {"things": "T0", "lists": "T1"},
        "rows": {
            "T0": [{"pk": pk, "amount": a} for pk, a in enumerate(amounts, start=1)],
            "T1": [
                {"pk": pk, "amounts": [a] if a is not None else []}
                for pk, a in enumerate(amounts, start=1)
            ],
        },
        "page_limit": 100,
    }


def sync_decimals(
    sandbox: SandboxProcess, workdir: Path, amounts: list[Any], *, arrow: bool
) -> Any:
    sandbox.configure(api=API, spec=decimal_spec(amounts))
    source = plusplus_graphql_source(
        base_url=f"{sandbox.url}/{API}/graphql", api_token=API_TOKEN, page_size=3, arrow=arrow
    )
    return sync("plusplus_graphql", sandbox, workdir / f"arrow-{arrow}", source=source)


EDGE_DECIMALS = [BIGGEST, f"-{BIGGEST}", "-0.000000001", "1E+3", "0E-9", "12.50", None, 7]


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
def test_decimals_load_exactly_as_decimal_38_9_from_arrow_as_from_rows(
    generator_sandbox: SandboxProcess, workdir: Path, arrow: bool
) -> None:
    pipeline = sync_decimals(generator_sandbox, workdir, EDGE_DECIMALS, arrow=arrow)

    assert ("things" in arrow_tables(pipeline)) is arrow
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT pk, amount, typeof(amount) FROM things ORDER BY pk")
        values = client.execute_sql("SELECT value FROM lists__amounts")
    expected = [None if a is None else Decimal(str(a)) for a in EDGE_DECIMALS]
    assert [r[1] for r in rows] == expected
    assert {r[2] for r in rows} == {"DECIMAL(38,9)"}
    assert sorted(v[0] for v in values) == sorted(e for e in expected if e is not None)
    column = pipeline.default_schema.get_table_columns("things")["amount"]
    assert (column["data_type"], column.get("precision"), column.get("scale")) == (
        "decimal",
        38,
        9,
    )


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
@pytest.mark.parametrize(
    ("amount", "says"),
    [
        ("0.1234567891", "has more than 9 decimal places"),
        ("1" + "0" * 29, "has more than 29 digits before the decimal point"),
        ("NaN", "is not a finite number"),
        ("twelve", "is not a decimal number"),
    ],
)
def test_a_decimal_the_column_cannot_hold_fails_in_one_line_and_loads_nothing(
    generator_sandbox: SandboxProcess, workdir: Path, arrow: bool, amount: str, says: str
) -> None:
    with pytest.raises(PipelineStepFailed) as failure:
        sync_decimals(generator_sandbox, workdir, ["1.5", amount, "2"], arrow=arrow)
    line, code = explain(failure.value, "plusplus_graphql")
    assert code == 1 and "\n" not in line, line
    # whichever table's read met it first: the Decimal (Arrow or rows) or the list (rows)
    assert line.startswith(("plusplus_graphql.things: ", "plusplus_graphql.lists: ")), line
    assert says in line and re.search(r"column amounts? \(record 2\)", line), line


# found in CI by the default profile: a list inside a nested connection whose child table's name
# (root, connection and list joined, 244 bytes) with dlt's suffix for its files
# (`.<file id>.<retry>.<format>`) is longer than a file name may be (255 bytes): dlt's extract
# failed with `File name too long` on DuckDB, which shortens no name. Table names are kept short
# enough for the file system on every warehouse (`MAX_IDENTIFIER_BYTES`)
ROOT, CONNECTION, LIST = "r" * 80, "c" * 80, "l" * 80
FOUND_FILE_NAME = Generated(
    spec={
        "types": {
            "T0": [{"name": CONNECTION, "kind": "connection", "target": "T1"}],
            "T1": [
                {"name": LIST, "kind": "scalar", "type": "String", "list": True},
                {"name": "i0", "kind": "scalar", "type": "Int"},
            ],
        },
        "enums": {},
        "roots": {ROOT: "T0", "ones": "T1"},
        "rows": {
            "T1": [{"pk": 1, LIST: ["a", "名前"], "i0": 1}, {"pk": 2, LIST: [], "i0": None}],
            "T0": [{"pk": 3, CONNECTION: [2, 1]}, {"pk": 4, CONNECTION: []}],
        },
        "node": False,
        "page_limit": 100,
    }
)
FOUND_FILE_NAME.expected = {
    "T0": {3: {"pk": 3, CONNECTION: [2, 1]}, 4: {"pk": 4, CONNECTION: []}},
    "T1": {1: {"pk": 1, LIST: ["a", "名前"], "i0": 1}, 2: {"pk": 2, LIST: [], "i0": None}},
}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_a_child_table_whose_name_is_longer_than_a_file_name_may_be(
    generator_sandbox: SandboxProcess, destination: Warehouse
) -> None:
    pipeline = sync_generated(generator_sandbox, destination, FOUND_FILE_NAME, page_size=100)
    assert_loaded_equals_generated(destination, pipeline, FOUND_FILE_NAME)
    # the root, its connection's child table and the list's inside it, each within the limit
    names = [n for n in pipeline.default_schema.tables if not n.startswith(("_dlt", "ones"))]
    assert len(names) == 3, names
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names), names


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_a_file_name_too_long_fails_in_one_line_and_the_next_run_loads_everything(
    generator_sandbox: SandboxProcess, destination: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as before the limit (or on a file system of shorter names): the run fails in one line
    # saying what to do, and the next run, within the limit, loads every row
    def run() -> Any:
        return sync_into(generator_sandbox, destination, FOUND_FILE_NAME.spec, page_size=100)

    monkeypatch.setattr(recovery, "MAX_IDENTIFIER_BYTES", 65536)
    with pytest.raises(PipelineStepFailed) as failure:
        run()
    line, code = explain(failure.value, "plusplus_graphql")
    assert code == 1 and "\n" not in line, line
    assert line.startswith("plusplus_graphql: ") and "file name" in line, line
    assert "pipelines_dir" in line and len(line) < 500, line
    monkeypatch.undo()

    pipeline = run()
    assert_loaded_equals_generated(destination, pipeline, FOUND_FILE_NAME)


# keys that Python's `hash` makes one (`hash(-1) == hash(-2)`, `hash(2**61) == hash(1)`): the
# read's key set must tell them apart, or the second is taken for a row read twice
COLLIDING_KEYS = Generated(
    spec={
        "types": {"T0": [{"name": "i0", "kind": "scalar", "type": "Int"}]},
        "enums": {},
        "roots": {"things": "T0"},
        "rows": {"T0": [{"pk": pk, "i0": i} for i, pk in enumerate([-1, -2, 1, 0, 7], 1)]},
        "node": False,
        "page_limit": 100,
    }
)
COLLIDING_KEYS.expected = {
    "T0": {row["pk"]: dict(row) for row in COLLIDING_KEYS.spec["rows"]["T0"]}
}


@pytest.mark.parametrize("page_size", [2, 100])
@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_keys_whose_python_hashes_are_equal_are_two_rows(
    generator_sandbox: SandboxProcess, destination: Warehouse, page_size: int
) -> None:
    pipeline = sync_generated(generator_sandbox, destination, COLLIDING_KEYS, page_size=page_size)
    assert_loaded_equals_generated(destination, pipeline, COLLIDING_KEYS)


# found by the long profile: lists and connections whose names have `__` inside. dlt puts the
# rows of a key `a__b` in `<parent>__a__b` and its nested hints' columns in `<parent>__a_b`,
# which the rows never reach (so a list of DateTime could load untyped); such a field comes back
# as `a_b` (`response_keys`), beside a deprecated connection `x_y` that takes no table
DOUBLE = Generated(
    spec={
        "types": {
            "T0": [
                # found next: a deprecated list `g__h` beside a live `g_h` (and a live list `i__j`
                # beside a deprecated `i_j`) came back under the other's key, and that one's
                # column or table loaded empty
                {"name": "g_h", "kind": "scalar", "type": "Float"},
                {"name": "g__h", "kind": "scalar", "type": "Int", "list": True, "deprecated": True},
                {"name": "i__j", "kind": "scalar", "type": "Int", "list": True},
                {"name": "i_j", "kind": "scalar", "type": "Int", "deprecated": True},
                {"name": "a__b", "kind": "scalar", "type": "DateTime", "list": True},
                {"name": "c__d", "kind": "connection", "target": "T0"},
                {"name": "x_y", "kind": "connection", "target": "T0", "deprecated": True},
                {"name": "x__y", "kind": "scalar", "type": "Int", "list": True},
                {"name": "e__f", "kind": "scalar", "type": "Int"},
            ]
        },
        "enums": {},
        "roots": {"things": "T0"},
        "rows": {
            "T0": [
                {
                    "pk": 1,
                    "a__b": ["2024-01-02", "2024-01-02T03:04:05Z"],
                    "c__d": [2],
                    "x_y": [2],
                    "x__y": [1, 2],
                    "e__f": 5,
                    "g_h": 4.5,
                    "g__h": [1],
                    "i__j": [3],
                    "i_j": 1,
                },
                {
                    "pk": 2,
                    "a__b": [],
                    "c__d": [1, 2],
                    "x_y": [],
                    "x__y": None,
                    "e__f": None,
                    "g_h": -1.25,
                    "g__h": [],
                    "i__j": [],
                    "i_j": None,
                },
            ]
        },  # fmt: skip
        "node": False,
        "page_limit": 100,
    }
)
DOUBLE.expected = {
    "T0": {
        1: {"pk": 1, "a__b": [datetime(2024, 1, 2, tzinfo=UTC),
                              datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)],
            "c__d": [2], "x_y": [2], "x__y": [1, 2], "e__f": 5, "g_h": 4.5, "g__h": [1],
            "i__j": [3], "i_j": 1},
        2: {"pk": 2, "a__b": [], "c__d": [1, 2], "x_y": [], "x__y": None, "e__f": None,
            "g_h": -1.25, "g__h": [], "i__j": [], "i_j": None},
    }
}  # fmt: skip


@pytest.mark.parametrize(("arrow", "page_size"), [(True, 1), (False, 100)], ids=["arrow", "rows"])
@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_lists_and_connections_with_double_underscores_in_their_names(
    generator_sandbox: SandboxProcess, destination: Warehouse, arrow: bool, page_size: int
) -> None:
    # one node a page from Arrow: the nested connection `c__d` is paged on its own
    pipeline = sync_into(
        generator_sandbox, destination, DOUBLE.spec, page_size=page_size, arrow=arrow
    )
    assert_loaded_equals_generated(destination, pipeline, DOUBLE)
    # the same tables from Arrow as from rows, none without rows, the list of DateTime typed
    tables = {t for t in pipeline.default_schema.tables if not t.startswith("_dlt")}
    # `x__y` and `i__j` as `x_y_<crc>` and `i_j_<crc>`: `x_y` and `i_j` are deprecated fields
    keys = keys_of(DOUBLE.spec, "T0")
    lists = [keys[name] for name in ("a__b", "x__y", "i__j")]
    assert lists[1].startswith("x_y_") and lists[2].startswith("i_j_"), lists
    nested = [f"things__c_d__{key}" for key in lists]
    assert tables == {"things", "things__c_d", *(f"things__{key}" for key in lists), *nested}
    assert ("things__a_b" in arrow_tables(pipeline)) is arrow
    column = pipeline.default_schema.get_table_columns("things__a_b")["value"]
    assert column["data_type"] == "timestamp", column
    assert "e__f" in pipeline.default_schema.get_table_columns("things")
