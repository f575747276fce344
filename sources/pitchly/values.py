"""Pages of Pitchly records as typed Arrow tables: one column per field column of the layout.

A record is `{id, fields: [{fieldId, value, stringValue}]}` with only the fields that have a
value; each field's columns take a key of its `value` (`val`, `currency`, `type`, `size`) or its
`stringValue`. Values of the wrong shape for their column become NULL (text columns keep them
as JSON text) rather than failing the run. Numbers are decimals, exactly as the API wrote them
(see `core/numbers.py`); reference values become record ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lxp_sync.sources.core.arrow import ARROW_TYPES as CORE_ARROW_TYPES
from lxp_sync.sources.core.numbers import DECIMAL_PRECISION, DECIMAL_SCALE, DecimalColumn
from lxp_sync.sources.core.timestamps import parse_iso, timestamp_array
from lxp_sync.sources.pitchly.naming import Column
from lxp_sync.sources.pitchly.settings import PRIMARY_KEY, STRING_VALUE


def _text(raw: Any) -> Any:
    if raw is None or isinstance(raw, str):
        return raw
    return orjson.dumps(raw).decode()


def _bigint(raw: Any) -> Any:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None


def _bool(raw: Any) -> Any:
    return raw if isinstance(raw, bool) else None


def moment(value: Any) -> datetime | None:
    """An ISO-8601 text as an aware datetime (None if it is not one)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def record_id(raw: Any) -> Any:
    """A reference's `val` as the record id it names: `wksA recB` -> `wksA|recB`.

    The field-type page's sample writes a reference as workspace id, a space, record id; records
    carry ids as `wks...|rec...`. Both forms are read; the id form is what joins to `id`.
    """
    if not isinstance(raw, str):
        return _text(raw)
    workspace, space, record = raw.strip().partition(" ")
    if space and record and "|" not in raw and " " not in record.strip():
        return f"{workspace}|{record.strip()}"
    return raw


def _record_ids(raw: Any) -> Any:
    if raw is None:
        return None
    return [record_id(item) for item in (raw if isinstance(raw, list) else [raw])]


def _json(raw: Any) -> Any:
    """A list of texts (dropdown multiple options, record ids)."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    return [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]


CASTS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "bigint": _bigint,
    "bool": _bool,
    "json": _json,
    "record_id": record_id,
    "record_ids": _record_ids,
}
# the shared types, and lists of texts for `json` (dlt loads an Arrow list as a JSON column)
ARROW_TYPES: dict[str, pa.DataType] = {
    **CORE_ARROW_TYPES,
    "json": pa.list_(pa.string()),
    "record_id": pa.string(),
    "record_ids": pa.list_(pa.string()),
    "decimal": pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),  # Pitchly's Numbers: 18 places
}
# `wks... rec...` (one space between two ids without spaces or bars) -> `wks...|rec...`
_SPACED_ID = r"^\s*([^|\s]+)\s+([^|\s]+)\s*$"
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _array(values: list[Any], data_type: str) -> pa.Array:
    arrow_type = ARROW_TYPES[data_type]
    if data_type == "timestamp":  # the core's parser; a value that is none is NULL
        return timestamp_array(values)[0]
    if data_type in ("text", "record_id"):
        # the common case in one go: texts
        try:
            texts = pa.array(values, pa.string())
            if data_type == "record_id":
                return pc.replace_substring_regex(texts, _SPACED_ID, r"\1|\2")
            return texts
        except _ARROW_ERRORS:
            pass
    cast = CASTS[data_type]
    return pa.array([cast(value) for value in values], arrow_type)


class PageConverter:
    """Record nodes -> one Arrow table with every column of a table's layout, typed."""

    def __init__(self, layout: Mapping[str, Sequence[Column]], resource: str | None = None) -> None:
        self.columns = [(PRIMARY_KEY, "text")] + [
            (column.name, column.data_type) for columns in layout.values() for column in columns
        ]
        self.sources = {
            field_id: tuple((column.name, column.source) for column in columns)
            for field_id, columns in layout.items()
        }
        self.schema = pa.schema(
            [
                pa.field(name, ARROW_TYPES[data_type], nullable=name != PRIMARY_KEY)
                for name, data_type in self.columns
            ]
        )
        self.decimals = {
            name: DecimalColumn(name, resource)
            for name, data_type in self.columns
            if data_type == "decimal"
        }

    def table(self, nodes: Sequence[Mapping[str, Any]]) -> pa.Table:
        """A field missing from a record is NULL; a field the layout lacks (added after the
        catalog was read) is left for the next run, which sees the new layout."""
        size = len(nodes)
        data: dict[str, list[Any]] = {name: [None] * size for name, _ in self.columns}
        targets = {
            field_id: tuple((data[name], source) for name, source in columns)
            for field_id, columns in self.sources.items()
        }
        ids = data[PRIMARY_KEY]
        for i, node in enumerate(nodes):
            ids[i] = node["id"]
            for item in node.get("fields") or ():
                found = targets.get(item.get("fieldId"))
                if found is None:
                    continue
                value = item.get("value")
                for column, source in found:
                    if source == STRING_VALUE:
                        column[i] = item.get("stringValue")
                    elif isinstance(value, dict):
                        column[i] = value.get(source)
        arrays = [
            self.decimals[name].array(data[name], ids)
            if name in self.decimals
            else _array(data[name], data_type)
            for name, data_type in self.columns
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")
