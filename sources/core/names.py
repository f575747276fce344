"""Response keys of GraphQL fields: an alias where dlt's naming would put two fields in one column."""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection

from dlt.common.normalizers.naming.snake_case import NamingConvention

# dlt's default naming: field names that it makes one column get aliases (`response_keys`)
_NAMING = NamingConvention()


def response_keys(
    names: list[str], columns: list[str | None] | None = None, tables: Collection[str] = ()
) -> dict[str, str]:
    """Each field name -> the key its value comes back under: the name, or an alias where
    fields would land in one warehouse column (`Name` and `name`, `x_` and `xx`, a field
    `owner__pk` and `owner { pk }`: dlt's naming makes them one). `columns`: each field's
    column before naming (`owner__pk` for a nested object; default: the names). In such a
    group the field whose column is already its name keeps it (else the first name in sorted
    order), the others become `<name>_<4 hex digits of its crc32>`, stable whatever else the
    schema has. A field whose column is None (deprecated: never selected) keeps its name.

    `tables`: fields whose values are child tables (lists, connections). Such a field with `__`
    in its name comes back as the name with each run of underscores made one (`a__b` as `a_b`):
    dlt puts the rows of a key `a__b` in a table `<parent>__a__b` but its nested hints' columns
    in `<parent>__a_b`, a table the rows never reach (found by tests/test_generated_schemas.py)."""
    single: dict[str, str] = {}
    taken = set(names)  # a deprecated field keeps its name: no other field may come back under it
    for name, column in zip(names, columns or names, strict=True):
        if column is not None and name in tables and "__" in name:
            key = _UNDERSCORES.sub("_", name)
            single[name] = key if key not in taken else f"{key}_{_crc(name)}"
            taken.add(single[name])
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, column in zip(names, columns or names, strict=True):
        if column is not None:
            column = single.get(name, column)
            groups.setdefault(_NAMING.normalize_path(column), []).append((name, column))
    keys = {name: single.get(name, name) for name in names}
    for normal, group in groups.items():
        if len(group) < 2:
            continue
        as_is = [name for name, column in group if column == normal]
        keeper = sorted(as_is or [name for name, _ in group])[0]
        for name, _ in group:
            if name != keeper:
                keys[name] = f"{keys[name]}_{_crc(name)}"
    return keys


def _crc(name: str) -> str:
    return f"{zlib.crc32(name.encode()) & 0xFFFF:04x}"


_UNDERSCORES = re.compile("__+")


def aliased(key: str, name: str) -> str:
    """A field as a selection writes it: `name`, or `key: name` where the key is an alias."""
    return name if key == name else f"{key}: {name}"
