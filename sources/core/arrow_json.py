"""Free-form (JSON) fields as Arrow columns, loaded as dlt's row path loads them.

On the row path (`connections.free_form_values`) an object or a list stays in the field's JSON
column and a lone string, number or boolean moves to `<field>__v_<kind>`, a column dlt types
from the first value it ever sees there: a text that looks like a timestamp (dlt's
`iso_timestamp` detection) makes `<field>__v_text` a timestamp column, and a later text that is
no timestamp lands, by dlt's coercion, in `<field>__v_text__v_text`. Here each lone text goes
through the same steps with dlt's own functions (the schema's detections and preferred types,
its normalizer's coercion) against the types the table already has (dlt's live schema) or
that an earlier value decided, so that every value reaches the column, type and value it
reaches from rows. Objects and lists become their JSON text (dlt's own encoder) in a column
hinted `json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.data_writers.writers import ArrowToJsonlWriter, JsonlWriter
from dlt.common.json import json
from dlt.common.libs import pyarrow as dlt_pyarrow
from dlt.common.schema import Schema
from dlt.common.schema.utils import autodetect_sc_type
from dlt.common.time import normalize_timezone
from dlt.common.typing import VARIANT_FIELD_FORMAT

from lxp_sync.sources.core.arrow_children import TESTED_DLT, dlt_release
from lxp_sync.sources.core.errors import LxpSyncError

# Python type of a lone free-form value -> the `__v_<kind>` column it moves to (bool first: a
# bool is an int too); shared with the row path's `free_form_values`
VARIANTS = ((bool, "bool"), (int, "bigint"), (float, "double"), (str, "text"))
# the Arrow type of each column a lone value can reach
_ARROW = {
    "bool": pa.bool_(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "text": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


# Arrow field metadata of a JSON column that holds JSON text: dlt's jsonl writer (BigQuery) writes
# such a value as the JSON it is, not as a string (`_install_jsonl`)
JSON_TEXT = {b"lxp_sync": b"json_text"}


class FreeFormValueError(LxpSyncError):
    """A lone free-form value that dlt's row path could not load either."""

    hint = "dlt's row path (arrow = false) cannot load it either: report it with this line"


def variant_name(field: str, kind: str) -> str:
    """The column a lone `kind` value of `field` moves to on the row path (`field__v_kind`)."""
    return f"{field}__v_{kind}"


class FreeFormColumns:
    """The free-form fields of one table on the Arrow path (`take` per batch)."""

    def __init__(self, table: str, fields: Sequence[str]) -> None:
        self.table = table
        self.fields = tuple(fields)
        # text column -> (dlt type, timezone), as the table has it or a value decided it
        self._types: dict[str, tuple[str, bool]] | None = None
        self._schema: Schema | None = None

    def _start(self) -> None:
        """The table's columns as dlt's schema has them now (a warehouse loaded before)."""
        self._schema = dlt.current.source_schema()
        columns = self._schema.tables.get(self.table, {}).get("columns", {})
        self._types = {
            name: (column["data_type"], column.get("timezone", True))
            for name, column in columns.items()
            if column.get("data_type")
        }

    def take(self, rows: list[dict[str, Any]]) -> list[tuple[pa.Field, pa.Array, tuple[int, ...]]]:
        """The free-form columns of `rows`, taken out of them: (field, values, where a new
        column first appears on the row path: its row, then its place in that row, after the
        row's own fields as `free_form_values` appends it)."""
        if self._types is None:
            self._start()
        out: list[tuple[pa.Field, pa.Array, tuple[int, ...]]] = []
        for rank, field in enumerate(self.fields):
            values = [row.pop(field, None) for row in rows]
            text = [None if v is None else json.dumps(v) for v in values]
            out.append(
                (
                    pa.field(field, pa.string(), metadata=JSON_TEXT),
                    pa.array(text, pa.string()),
                    (-1, rank),
                )
            )
            for _, kind in VARIANTS:
                name = variant_name(field, kind)
                lone = [row.pop(name, None) for row in rows]
                if all(v is None for v in lone):
                    continue
                place = (1, rank)
                if kind == "text":
                    out.extend(
                        (pa.field(n, a.type), a, (i, *place)) for n, a, i in self._texts(name, lone)
                    )
                    continue
                first = next(i for i, v in enumerate(lone) if v is not None)
                try:
                    array = pa.array(lone, _ARROW[kind])
                except (pa.ArrowInvalid, OverflowError) as error:
                    raise FreeFormValueError(
                        f"{self.table}.{name}: a value does not fit a {kind} column ({error})"
                    ) from error
                column = self._schema.naming.normalize_path(name)  # type: ignore[union-attr]
                out.append((pa.field(column, array.type), array, (first, *place)))
        return out

    def _texts(self, name: str, values: list[Any]) -> list[tuple[str, pa.Array, int]]:
        """Lone texts of one field, each where dlt's row path puts it (module docstring)."""
        assert self._schema is not None and self._types is not None
        columns: dict[str, list[Any]] = {}
        first: dict[str, int] = {}
        column = self._schema.naming.normalize_path(name)
        for i, value in enumerate(values):
            if value is None:
                continue
            target, coerced = self._text(column, value)
            if target not in columns:
                columns[target] = [None] * len(values)
                first[target] = i
            columns[target][i] = coerced
        return [
            (target, pa.array(column_values, _ARROW[self._types[target][0]]), first[target])
            for target, column_values in columns.items()
        ]

    def _text(self, column: str, value: str, variant: bool = False) -> tuple[str, Any]:
        """The column and value dlt's row normalizer gives the text `value` of `column`
        (its `_coerce_non_null_value`, with `variant` its final call)."""
        assert self._schema is not None and self._types is not None
        normalizer = self._schema.data_item_normalizer
        known = self._types.get(column)
        if known is None:
            detected = autodetect_sc_type(self._schema._type_detections, str, value)
            preferred = None if variant else self._schema.get_preferred_type(column)
            data_type = preferred or detected or normalizer.py_type_to_sc_type(str)
            timezone = True
        else:
            data_type, timezone = known
        try:
            coerced = normalizer.coerce_type(data_type, "text", value)
        except (ValueError, SyntaxError) as error:
            if variant:
                raise FreeFormValueError(
                    f"{self.table}.{column}: the text {value!r} fits no {data_type} column"
                ) from error
            other = self._schema.naming.shorten_fragments(column, VARIANT_FIELD_FORMAT % "text")
            return self._text(other, value, variant=True)
        if data_type not in _ARROW:
            raise FreeFormValueError(
                f"{self.table}.{column}: dlt types the text {value!r} as {data_type}, which "
                "the Arrow path does not build"
            )
        if data_type == "timestamp":
            coerced = normalize_timezone(coerced, timezone)
        self._types.setdefault(column, (data_type, timezone))
        return column, coerced


def _install_jsonl() -> None:
    """dlt's jsonl writer for Arrow tables (BigQuery's load format) writes a JSON column's JSON
    text (`JSON_TEXT`) as the JSON value it is, as dlt's row path writes the object or list:
    else BigQuery would hold a JSON string."""
    if getattr(ArrowToJsonlWriter.write_data, "_lxp_json", False):
        return

    def write_data(self: ArrowToJsonlWriter, items: Sequence[Any]) -> None:
        for batch in items:
            rows = batch.to_pylist()
            texts = [f.name for f in batch.schema if f.metadata == JSON_TEXT]
            for row in rows if texts else ():
                for name in texts:
                    if isinstance(row.get(name), str):
                        row[name] = json.loads(row[name])
            JsonlWriter.write_data(self, rows)

    write_data._lxp_json = True  # type: ignore[attr-defined]
    ArrowToJsonlWriter.write_data = write_data  # type: ignore[method-assign]


def _install_json_type() -> None:
    """dlt types an Arrow table's columns from their Arrow types, a string as text; a JSON
    column (`JSON_TEXT`) is typed json, as its resource declares it. Else dlt logs, for every
    such table, a warning that the resource's hint overrides the Arrow type."""
    if getattr(dlt_pyarrow.py_arrow_to_table_schema_columns, "_lxp_json", False):
        return
    columns_of = dlt_pyarrow.py_arrow_to_table_schema_columns

    def columns(schema: pa.Schema) -> Any:
        found = columns_of(schema)
        for arrow_field in schema:
            if arrow_field.metadata == JSON_TEXT and arrow_field.name in found:
                found[arrow_field.name] = {**found[arrow_field.name], "data_type": "json"}
        return found

    columns._lxp_json = True  # type: ignore[attr-defined]
    dlt_pyarrow.py_arrow_to_table_schema_columns = columns


# whether free-form fields go to dlt as Arrow (else their tables keep the row path): only with a
# dlt release the jsonl writer above was tested with (`arrow_children.TESTED_DLT`)
FREE_FORM = dlt_release(dlt.__version__) in TESTED_DLT


def free_form(scalars: frozenset[str]) -> frozenset[str]:
    """The free-form scalars a table may have and still load from Arrow (none under a dlt
    release the Arrow path was not tested with)."""
    return scalars if FREE_FORM else frozenset()


if FREE_FORM:
    _install_jsonl()
    _install_json_type()
