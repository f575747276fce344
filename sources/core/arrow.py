"""Rows to Arrow tables, so that dlt skips its row-by-row normalizer.

Nested objects become `parent__child` columns as dlt would make them; columns with a hint get
that type (timestamps by the core's one parser, `timestamps.py`); a field nobody declared still
arrives, typed by Arrow's inference, so a new API field becomes a new column without a code
change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.utils import dlt_id_column, dlt_load_id_column

from lxp_sync.sources.core.numbers import DECIMAL_PRECISION, GRAPHQL_DECIMAL_SCALE
from lxp_sync.sources.core.timestamps import timestamp_array

if TYPE_CHECKING:
    from lxp_sync.sources.core.arrow_children import ArrowChildren
    from lxp_sync.sources.core.arrow_json import FreeFormColumns

# the root table's private column naming its batch (`arrow_children`; dropped before dlt writes)
BATCH_COLUMN = "_lxp_batch"

# pyarrow checks on its first `pa.array` of Python objects whether pandas is installed, and
# imports it if so (BigQuery's extras bring it); two resources doing that at once in parallel
# threads hit "partially initialized module 'pandas'". The check is made once, now (the command
# has made it already, without pandas: `memory.pyarrow_without_pandas`).
pa.array([])

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "bool": pa.bool_(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    # a GraphQL Decimal's: the values come fitted to its scale (`connections.node_shape`)
    "decimal": pa.decimal128(DECIMAL_PRECISION, GRAPHQL_DECIMAL_SCALE),
}
# dates: parsed from their ISO-8601 text by Arrow, in one vectorized cast (timestamps: below)
_PARSED = {"date"}

# dlt gives Arrow tables a `_dlt_load_id` only with `add_dlt_load_id` (`.dlt/config.toml` sets
# it), typed NOT NULL, which a table that already holds rows cannot take: as a hint of the
# resource it is nullable, so a table loaded before the setting gains it (its older rows NULL).
LOAD_ID_HINT: dict[str, Any] = {"data_type": "text", "nullable": True}


def with_load_id(hints: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The column hints of a resource that hands dlt Arrow tables: `hints` and `_dlt_load_id`."""
    return {**hints, "_dlt_load_id": dict(LOAD_ID_HINT)}


def add_load_id(table: pa.Table) -> pa.Table:
    """`table` with the current load's id as `_dlt_load_id`, NULL-able as `with_load_id` hints
    it (dlt would add its own, NOT NULL, and warn on every table that the hint differs)."""
    load_id = dlt.current.load_package_state()["load_id"]
    return table.append_column(
        pa.field("_dlt_load_id", pa.string(), nullable=True),
        pa.repeat(pa.scalar(load_id, pa.string()), table.num_rows),
    )


def with_row_ids(hints: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The column hints of a resource whose Arrow tables carry `_dlt_load_id` and `_dlt_id` as
    dlt's row path gives them (NOT NULL, `_dlt_id` the row key): the same table either way."""
    return {**hints, "_dlt_load_id": dlt_load_id_column(), "_dlt_id": dlt_id_column()}


def add_row_ids(
    table: pa.Table,
    hints: dict[str, dict[str, Any]],
    ids: list[str] | None = None,
    extra: Iterable[tuple[pa.Field, pa.Array, tuple[int, ...]]] = (),
) -> pa.Table:
    """`table` with `extra` columns (`FreeFormColumns.take`), the current load's id and a
    random `_dlt_id` per row (`ids` when given), as dlt's row normalizer gives the rows of a
    root table written by merge (delete-insert), whatever the settings.

    The columns in the row path's order, which a new table is created in: the hinted ones, then
    the others (`x__v_text`) in the order dlt's row normalizer meets them, row by row, each row
    followed by dlt's two (so those come after the first row's own others)."""
    load_id = dlt.current.load_package_state()["load_id"]
    rows = table.num_rows
    hint_rank = {name: i for i, name in enumerate(hints)}
    found: dict[str, tuple[int, ...]] = {}
    for name in table.column_names:
        if name not in hints:  # a timestamp's text variant: where its field is in the row
            base = name.removesuffix("__v_text")
            found[name] = (_first_value(table.column(name)), 0, hint_rank.get(base, len(hints)))
    for column, array, where in extra:
        name = column.name
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(column, array)
        if name not in hints:
            found[name] = where
    table = table.append_column(
        pa.field("_dlt_load_id", pa.string(), nullable=False),
        pa.array([load_id] * rows, pa.string()),
    ).append_column(
        pa.field("_dlt_id", pa.string(), nullable=False),
        pa.array(generate_dlt_ids(rows) if ids is None else ids, pa.string()),
    )
    names = table.column_names
    hinted = [name for name in hints if name in names]
    others = sorted(found, key=found.__getitem__)
    first = [name for name in others if found[name][0] == 0]
    rest = [name for name in others if found[name][0] != 0]
    return table.select([*hinted, *first, "_dlt_load_id", "_dlt_id", *rest])


def _first_value(column: Any) -> int:
    """The index of the first non-null value of `column` (its length if none)."""
    valid = pc.index(column.is_valid(), True).as_py()
    return len(column) if valid is None or valid < 0 else valid


def _timestamps(name: str, values: Any) -> list[tuple[str, pa.Array]]:
    """A timestamp column, and `<name>__v_text` with any text that is no timestamp (where dlt
    puts such a value of a row: nothing is lost, and the column is the same either way)."""
    array, bad = timestamp_array(values)
    if not bad:
        return [(name, array)]
    texts = values if isinstance(values, list) else values.to_pylist()
    wrong = set(bad)
    variant = [str(v) if i in wrong else None for i, v in enumerate(texts)]
    return [(name, array), (f"{name}__v_text", pa.array(variant, pa.string()))]


def flatten(row: dict[str, Any], out: dict[str, Any], prefix: str = "") -> None:
    for key, value in row.items():
        if isinstance(value, dict):
            flatten(value, out, f"{prefix}{key}__")
        else:
            out[f"{prefix}{key}"] = value


def _column(values: list[Any], hint: dict[str, Any] | None) -> pa.Array:
    data_type = (hint or {}).get("data_type")
    if data_type in _PARSED:
        return pa.array(values, pa.string()).cast(ARROW_TYPES[data_type])
    if data_type in ARROW_TYPES:
        if data_type == "double":
            values = [
                float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values
            ]
        return pa.array(values, ARROW_TYPES[data_type])
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # mixed shapes: keep the JSON text rather than lose the field
        return pa.array(
            [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
        )


def to_arrow(rows: list[dict[str, Any]], hints: dict[str, dict[str, Any]]) -> pa.Table:
    """One Arrow table for `rows`: hinted columns typed, others inferred, nested objects flattened.

    Arrow infers the rows' shape in C++; rows it cannot unify (a field that is a number here and
    an object there) take the slower row-by-row path, which keeps such a field as JSON text.
    """
    try:
        return _to_arrow_fast(rows, hints)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _to_arrow_rows(rows, hints)


def _to_arrow_fast(rows: list[dict[str, Any]], hints: dict[str, dict[str, Any]]) -> pa.Table:
    """Arrow infers one struct type over all rows in C++; flattening it names the columns."""
    table = pa.Table.from_struct_array(pa.array(rows))
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    table = table.rename_columns([n.replace(".", "__") for n in table.column_names])
    present = set(table.column_names)
    arrays, fields = [], []
    for name in {**dict.fromkeys(hints), **dict.fromkeys(table.column_names)}:
        column = table.column(name) if name in present else pa.nulls(table.num_rows)
        data_type = (hints.get(name) or {}).get("data_type")
        if data_type == "timestamp":
            for stamp_name, stamps in _timestamps(name, column):
                arrays.append(stamps)
                fields.append(pa.field(stamp_name, stamps.type, nullable=True))
            continue
        if data_type in ARROW_TYPES:
            target = ARROW_TYPES[data_type]
            if column.type != target:
                if data_type in _PARSED:
                    column = column.cast(pa.string())
                column = column.cast(target)
        elif pa.types.is_null(column.type):
            continue
        arrays.append(column)
        fields.append(pa.field(name, column.type, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _to_arrow_rows(rows: list[dict[str, Any]], hints: dict[str, dict[str, Any]]) -> pa.Table:
    """One Arrow table for `rows`: hinted columns typed, others inferred, nested objects flattened."""
    flat_rows = []
    names: dict[str, None] = dict.fromkeys(hints)
    nested_prefixes = {name.split("__", 1)[0] for name in hints if "__" in name}
    for row in rows:
        flat: dict[str, Any] = {}
        flatten(row, flat)
        flat_rows.append(flat)
        for key in flat:
            if key not in names:
                names[key] = None
    arrays = []
    fields = []
    for name in names:
        values = [flat.get(name) for flat in flat_rows]
        if name not in hints and (name in nested_prefixes or all(v is None for v in values)):
            continue  # a null nested object, or a column with no value yet: nothing to type
        hint = hints.get(name) or {}
        built = (
            _timestamps(name, values)
            if hint.get("data_type") == "timestamp"
            else [(name, _column(values, hint))]
        )
        for built_name, array in built:
            arrays.append(array)
            fields.append(pa.field(built_name, array.type, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def batched_arrow(
    pages: Iterable[list[dict[str, Any]]],
    hints: dict[str, dict[str, Any]],
    rows: int = 5000,
    *,
    row_ids: bool = False,
    children: ArrowChildren | None = None,
    free_form: FreeFormColumns | None = None,
) -> Iterator[pa.Table]:
    """Pages of rows as Arrow tables of about `rows` rows each (fewer, larger tables load faster);
    with `row_ids`, each with dlt's own columns (`add_row_ids`); with `children`, the rows'
    lists go to their child tables (`ArrowChildren.take`), each table marked with its batch;
    with `free_form` (and `row_ids`), the free-form fields as dlt's row path loads them."""

    def convert(batch: list[dict[str, Any]]) -> pa.Table:
        extra = free_form.take(batch) if free_form is not None else []
        if children is None:
            table = to_arrow(batch, hints)
            return add_row_ids(table, hints, extra=extra) if row_ids else add_load_id(table)
        ids = generate_dlt_ids(len(batch))
        number = children.take(batch, ids)
        table = add_row_ids(to_arrow(batch, hints), hints, ids, extra)
        return table.append_column(BATCH_COLUMN, pa.array([number] * len(batch), pa.int64()))

    # pages wait as rows only until `CONVERT_ROWS` of them: Arrow holds a row in a tenth of the
    # memory of its dicts, and converting 1,000 rows at a time costs no more than 5,000
    buffer: list[dict[str, Any]] = []
    held: list[pa.Table] = []
    for page in pages:
        buffer.extend(page)
        if len(buffer) >= min(rows, CONVERT_ROWS):
            held.append(convert(buffer))
            buffer = []
            if sum(table.num_rows for table in held) >= rows:
                yield from joined(held)
                held = []
    if buffer:
        held.append(convert(buffer))
    yield from joined(held)


# rows converted to Arrow at a time (`batched_arrow`)
CONVERT_ROWS = 1000


def joined(tables: list[pa.Table]) -> Iterator[pa.Table]:
    """`tables` as one table (one chunk each column), or one by one if their columns disagree
    (a field nobody declared that changed type between them)."""
    if len(tables) <= 1:
        yield from tables
        return
    try:
        table = pa.concat_tables(tables, promote_options="default").combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        yield from tables
        return
    yield table
