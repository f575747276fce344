"""Warehouse names for Pitchly tables and fields: readable, unique, and stable.

Names are snake_case ASCII (`Größe` -> `grosse`); a name with no Latin letters at all (`客户`)
falls back to `field_<id>` (or `table_<id>`, `workspace_<id>`), where `<id>` is the tail of
Pitchly's id, lower-cased. Two fields whose names meet after normalisation (`Deal Size` and
`deal_size`) keep the plain name for the first in the table's field order; the later one gets
`_<id>` appended. A table keeps the warehouse name it was first loaded under, even when it is
renamed in Pitchly (`assign_table_names` with the names remembered in dlt state).

Every name is at most 63 bytes, suffixes such as `__string_value` included: PostgreSQL's limit,
the smallest of the destinations. A longer one is cut and gets `_<id>`, so that a column has the
same name on every destination (dlt would otherwise shorten it its own way per destination, and
the `fields` table would name a column that does not exist).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention

from lxp_sync.sources.core.numbers import decimal_hint
from lxp_sync.sources.pitchly.settings import (
    FIELD_COLUMNS,
    LOADED_AS,
    LOOKUP,
    LOOKUP_EXTRA,
    METADATA_RESOURCES,
    RESERVED_COLUMNS,
    RESERVED_PREFIX,
    STRING_VALUE,
    UNKNOWN_COLUMNS,
)

NAMING = NamingConvention()
# PostgreSQL's identifier limit (bytes), the smallest of DuckDB, PostgreSQL and BigQuery
MAX_IDENTIFIER_BYTES = 63

# Latin letters that Unicode does not decompose into a base letter and marks.
_FOLD = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)
_NOT_WORD = re.compile(r"[^0-9A-Za-z]+")


def fit(base: str, suffix: str = "", room: int = MAX_IDENTIFIER_BYTES) -> str:
    """`base` + `suffix` in at most `room` bytes: `base` is cut (at a character) to make room."""
    if len((base + suffix).encode()) <= room:
        return base + suffix
    keep = room - len(suffix.encode())
    return base.encode()[:keep].decode(errors="ignore").rstrip("_") + suffix


def id_tail(pitchly_id: str, length: int = 6) -> str:
    """`wksAbc|fldDXnDqrwoz2PoPF3ft` -> `pof3ft`: short, and stable for the id."""
    return pitchly_id.rsplit("|", 1)[-1][-length:].lower()


def identifier(text: str, fallback: str) -> str:
    """A snake_case ASCII identifier for a Pitchly name; `fallback` when nothing Latin is left."""
    folded = unicodedata.normalize("NFKD", (text or "").translate(_FOLD))
    words = _NOT_WORD.sub(" ", "".join(c for c in folded if c.isascii())).strip()
    if not any(c.isalpha() for c in words):
        return NAMING.normalize_identifier(fallback)
    return NAMING.normalize_identifier(words)


def default_table_name(workspace: Mapping[str, Any], table: Mapping[str, Any]) -> str:
    """`Sales` / `Pipeline Draft` -> `sales__pipeline_draft` (cut, with `_<id>`, past 63 bytes)."""
    ws = identifier(workspace.get("name", ""), f"workspace_{id_tail(workspace['id'])}")
    tb = identifier(table.get("name", ""), f"table_{id_tail(table['id'])}")
    name = f"{ws}__{tb}"
    return (
        name
        if len(name.encode()) <= MAX_IDENTIFIER_BYTES
        else fit(name, f"_{id_tail(table['id'])}")
    )


def configured_name(name: str) -> str:
    """A name from the settings, made a valid table or column name."""
    return NAMING.normalize_path(str(name).strip())


def assign_table_names(
    defaults: Mapping[str, str],
    remembered: Mapping[str, str],
    configured: Mapping[str, str],
) -> dict[str, str]:
    """Table id -> warehouse table name, for every id in `defaults` (table id -> default name).

    Configured names win; then the name a table was loaded under before (so a renamed table
    keeps its warehouse table); a new table gets its default name unless another table (even
    one since deleted in Pitchly, whose warehouse table remains) has it, then `_<id>` is added.
    """
    names: dict[str, str] = {}
    taken = set(METADATA_RESOURCES)
    for table_id in defaults:
        if table_id in configured:
            names[table_id] = configured[table_id]
            taken.add(configured[table_id])
    for table_id in defaults:
        name = remembered.get(table_id)
        if table_id not in names and name and name not in taken:
            names[table_id] = name
            taken.add(name)
    taken.update(name for table_id, name in remembered.items() if table_id not in defaults)
    for table_id, default in defaults.items():
        if table_id in names:
            continue
        name = default if default not in taken else fit(default, f"_{id_tail(table_id)}")
        whole, n = f"_{NAMING.normalize_identifier(table_id)}", 1
        while name in taken:  # the tail of a later id met this one: use the whole id
            name = fit(default, whole if n == 1 else f"{whole}_{n}")
            n += 1
        names[table_id] = name
        taken.add(name)
    return names


@dataclass(frozen=True)
class Column:
    """One warehouse column of a field: its name, dlt type and where its value comes from."""

    name: str
    data_type: str  # a dlt data type, or a kind of `LOADED_AS` (converted as it loads)
    source: str  # a key of the field's `value` (`val`, `currency`, ...) or `stringValue`

    @property
    def loaded_as(self) -> str:
        """The dlt data type of the column."""
        return LOADED_AS.get(self.data_type, self.data_type)


def field_columns(
    field: Mapping[str, Any], fields_by_id: Mapping[str, Mapping[str, Any]], depth: int = 0
) -> tuple[tuple[str, str, str], ...]:
    """(suffix, data type, source) of each column a field becomes, by its type."""
    kind = field.get("type")
    if kind == LOOKUP:
        target = fields_by_id.get(field.get("lookupFieldId") or "")
        if target is None or depth > 4:
            return UNKNOWN_COLUMNS
        looked_up = field_columns(target, fields_by_id, depth + 1)
        return (*(c for c in looked_up if c[2] != STRING_VALUE), LOOKUP_EXTRA)
    return FIELD_COLUMNS.get(str(kind), UNKNOWN_COLUMNS)


def _free(names: Iterable[str], taken: set[str]) -> bool:
    return not any(name in taken or name.startswith(RESERVED_PREFIX) for name in names)


def column_layout(
    fields: Iterable[Mapping[str, Any]],
    fields_by_id: Mapping[str, Mapping[str, Any]],
    configured: Mapping[str, str] | None = None,
) -> dict[str, tuple[Column, ...]]:
    """Field id -> its columns, for the fields of one table in their order.

    Configured names (field id -> name) are placed first; then each field takes its name if
    every column it needs is free, else the name with `_<id>` appended.
    """
    configured = configured or {}
    fields = list(fields)
    ordered = sorted(fields, key=lambda f: f["id"] not in configured)  # stable: order kept
    taken = set(RESERVED_COLUMNS)
    layout: dict[str, tuple[Column, ...]] = {}
    for field in ordered:
        field_id = field["id"]
        spec = field_columns(field, fields_by_id)
        tail = id_tail(field_id)
        base = (
            configured_name(configured[field_id])
            if field_id in configured
            else identifier(field.get("name", ""), f"field_{tail}")
        )

        def names(base: str, spec: tuple[tuple[str, str, str], ...] = spec) -> list[str]:
            return [f"{base}__{suffix}" if suffix else base for suffix, _, _ in spec]

        # the room the field's longest column leaves for the name
        longest = max((len(f"__{s}".encode()) for s, _, _ in spec if s), default=0)
        room = MAX_IDENTIFIER_BYTES - longest
        name = base if len(base.encode()) <= room else fit(base, f"_{tail}", room)
        if not _free(names(name), taken):
            name = fit(base, f"_{tail}", room)
        whole, n = f"_{NAMING.normalize_identifier(field_id)}", 1
        while not _free(names(name), taken):  # the tail met another's: the whole id
            name = fit(base, whole if n == 1 else f"{whole}_{n}", room)
            n += 1
        base = name
        columns = tuple(
            Column(name, data_type, source)
            for name, (_, data_type, source) in zip(names(base), spec, strict=True)
        )
        taken.update(column.name for column in columns)
        layout[field_id] = columns
    return {f["id"]: layout[f["id"]] for f in fields}


def column_hints(layout: Mapping[str, tuple[Column, ...]]) -> dict[str, dict[str, Any]]:
    """dlt column hints for a table's layout (a fresh dict per column: dlt writes into them)."""
    hints: dict[str, dict[str, Any]] = {"id": {"data_type": "text", "nullable": False}}
    for columns in layout.values():
        for column in columns:
            hint: dict[str, Any] = {"data_type": column.loaded_as, "nullable": True}
            if column.data_type == "decimal":
                hint = decimal_hint()
            if column.data_type == "timestamp":
                hint["timezone"] = True
            hints[column.name] = hint
    return hints


def retyped_columns(
    before: Mapping[str, list[list[str]]] | None, after: Mapping[str, list[list[str]]]
) -> list[str]:
    """`column: old -> new` for each column whose warehouse type differs between two layout
    signatures (a field retyped in Pitchly, or numbers loaded as double by an older version)."""

    def types(signature: Mapping[str, list[list[str]]]) -> dict[str, str]:
        return {
            name: LOADED_AS.get(kind, kind)
            for columns in signature.values()
            for name, kind, _ in columns
        }

    old, new = types(before or {}), types(after)
    return [
        f"{name}: {old[name]} -> {new[name]}"
        for name in new
        if old.get(name, new[name]) != new[name]
    ]


def retyped_in_schema(
    loaded: Mapping[str, Mapping[str, Any]], layout: Mapping[str, tuple[Column, ...]]
) -> list[str]:
    """`column: old -> new` for each column of `layout` that the warehouse table (its columns in
    dlt's schema) already has with another type: after a full refresh reset the run state, the
    schema still remembers what the table holds."""
    return [
        f"{column.name}: {loaded[column.name]['data_type']} -> {column.loaded_as}"
        for columns in layout.values()
        for column in columns
        if loaded.get(column.name, {}).get("data_type") not in (None, column.loaded_as)
    ]


def layout_signature(layout: Mapping[str, tuple[Column, ...]]) -> dict[str, list[list[str]]]:
    """The layout as JSON-able data, kept in state to notice added, renamed or removed fields."""
    return {
        field_id: [[c.name, c.data_type, c.source] for c in columns]
        for field_id, columns in layout.items()
    }
