"""Compare what a sync loaded with the sandbox's ground truth, row by row."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

DLT_COLUMNS = {"_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_root_id"}

# Every row of a loaded table (with dlt's `_dlt_*` columns), given the table's name.
Rows = Callable[[str], list[dict[str, Any]]]


def flatten(row: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, list]]:
    """A truth row as dlt stores it: nested objects become `a__b` columns, lists child tables."""
    flat: dict[str, Any] = {}
    lists: dict[str, list] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            inner, inner_lists = flatten(value, f"{name}__")
            flat.update(inner)
            lists.update(inner_lists)
        elif isinstance(value, list):
            lists[name] = value
        else:
            flat[name] = value
    return flat, lists


def _as_loaded(expected: Any, loaded: Any) -> Any:
    """Read a JSON truth value the way the warehouse typed it, to compare the two."""
    if expected is None or loaded is None:
        return expected
    if isinstance(loaded, datetime) and isinstance(expected, str):
        # naive means UTC, a date alone midnight UTC, digits past microseconds are dropped
        moment = datetime.fromisoformat(expected)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if loaded.tzinfo is None:  # a destination without zones stores UTC
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    if isinstance(loaded, date) and not isinstance(loaded, datetime) and isinstance(expected, str):
        return date.fromisoformat(expected[:10])
    return expected


def same(expected: Any, loaded: Any) -> bool:
    expected = _as_loaded(expected, loaded)
    if isinstance(expected, float) or isinstance(loaded, float):
        if expected is None or loaded is None:
            return expected is loaded
        return math.isclose(float(expected), float(loaded), rel_tol=1e-9, abs_tol=1e-9)
    return expected == loaded


def duckdb_rows(path: str, dataset: str, table: str) -> list[dict[str, Any]]:
    with duckdb.connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        cursor = con.execute(f'SELECT * FROM "{dataset}"."{table}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def table_reader(where: Path | Rows, dataset: str) -> Rows:
    """How a truth comparison reads loaded tables: from `where/warehouse.duckdb` (a test's workdir,
    as `tests.helpers.sync` loads it), or with `where` itself when it is a reader already (any
    destination: `tests/test_destinations.py`)."""
    if callable(where):
        return where
    path = str(Path(where) / "warehouse.duckdb")
    return lambda table: duckdb_rows(path, dataset, table)


def diff_table(
    truth: list[dict[str, Any]],
    loaded: list[dict[str, Any]],
    key: str,
    limit: int = 5,
    ignore: frozenset[str] = frozenset(),
) -> list[str]:
    """Differences between truth rows and loaded rows (top-level columns), empty when equal."""
    problems: list[str] = []
    loaded_keys = [row[key] for row in loaded]
    if len(loaded_keys) != len(set(loaded_keys)):
        problems.append(f"duplicate keys: {len(loaded_keys) - len(set(loaded_keys))}")
    by_key = {row[key]: row for row in loaded}
    truth_keys = {row[key] for row in truth}
    missing = truth_keys - by_key.keys()
    extra = by_key.keys() - truth_keys
    if missing:
        problems.append(f"{len(missing)} rows missing, e.g. {sorted(map(str, missing))[:3]}")
    if extra:
        problems.append(f"{len(extra)} rows not in the truth, e.g. {sorted(map(str, extra))[:3]}")
    for row in truth:
        got = by_key.get(row[key])
        if got is None:
            continue
        flat, _ = flatten(row)
        columns = (set(got) | set(flat)) - DLT_COLUMNS - ignore
        for column in sorted(columns):
            if column not in got:
                if flat.get(column) is not None:
                    problems.append(f"{row[key]}: column {column} not loaded")
                continue
            if not same(flat.get(column), got[column]):
                problems.append(
                    f"{row[key]}.{column}: truth {flat.get(column)!r}, loaded {got[column]!r}"
                )
        if len(problems) >= limit:
            break
    return problems[:limit]


def diff_child_table(
    truth: list[dict[str, Any]],
    parents: list[dict[str, Any]],
    children: list[dict[str, Any]],
    key: str,
    list_field: str,
) -> list[str]:
    """Differences in a list field loaded as a child table (`<table>__<list_field>`)."""
    by_dlt_id = {row["_dlt_id"]: row[key] for row in parents}
    loaded: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for child in children:
        parent_key = by_dlt_id.get(child["_dlt_parent_id"])
        loaded.setdefault(parent_key, []).append((child["_dlt_list_idx"], child))
    problems = []
    for row in truth:
        want = row.get(list_field) or []
        got = [c for _, c in sorted(loaded.get(row[key], []), key=lambda pair: pair[0])]
        if len(want) != len(got):
            problems.append(f"{row[key]}.{list_field}: {len(want)} items, loaded {len(got)}")
            continue
        for item, child in zip(want, got, strict=True):
            values = item if isinstance(item, dict) else {"value": item}
            for column, value in flatten(values)[0].items():
                if not same(value, child.get(column)):
                    problems.append(
                        f"{row[key]}.{list_field}.{column}: {value!r} != {child.get(column)!r}"
                    )
    return problems[:5]


def free_form_problems(
    truth: list[dict[str, Any]], loaded: list[dict[str, Any]], key: str, column: str, text: bool
) -> list[str]:
    """Differences in a free-form (JSON) column: an object or list in the column itself (parsed
    when read back as text), a lone scalar in `<column>__v_<type>`; `text`: the truth is JSON
    text (a JSONString), compared as the value it encodes."""
    variants = {bool: "bool", int: "bigint", float: "double", str: "text"}
    by_key = {row[key]: row for row in loaded}
    problems = []
    for row in truth:
        want = row.get(column)
        if text and want is not None:
            want = json.loads(want)
        got_row = by_key.get(row[key])
        if got_row is None:
            problems.append(f"{row[key]}: not loaded")
            continue
        got = got_row.get(column)
        if isinstance(got, str):
            got = json.loads(got)
        if want is None or isinstance(want, dict | list):
            if got != want:
                problems.append(f"{row[key]}.{column}: truth {want!r}, loaded {got!r}")
            continue
        variant = f"{column}__v_{variants[type(want)]}"
        if got is not None or got_row.get(variant) != want:
            problems.append(
                f"{row[key]}.{variant}: truth {want!r}, loaded {got_row.get(variant)!r}"
            )
    return problems[:5]
