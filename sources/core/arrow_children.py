"""Child tables as Arrow tables: a node's lists (`<table>__<field>`) as dlt's row path makes them.

dlt's row normalizer turns a list inside a row into rows of a child table, each linked to its
parent by `_dlt_parent_id` (the parent's `_dlt_id`) and `_dlt_list_idx`, to the root row by
`_dlt_root_id` (a merge table's: the key by which dlt's merge deletes a reloaded root row's
old child rows), with a `_dlt_id` derived from the parent's id, the table and the index
(`get_nested_row_hash`). A scalar item lands as `value`, an object flattened. This module makes
the same rows from the same items, so that the tables are the same from Arrow as from rows.

The child tables of a batch leave the resource only after dlt's incremental has filtered the
root table (a step placed behind it): a root row the incremental drops takes its child rows
with it, as on the row path, where the normalizer never sees them. dlt hands a parallelized
resource's items to its steps in the order their reads complete, not the order they were made:
each item is released by the batches it carries, whatever came before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.json.helpers import get_nested_row_hash
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.typing import C_DLT_LOAD_ID
from dlt.common.schema.utils import dlt_id_column, get_root_table, is_nested_table
from dlt.extract.extract import Extract
from dlt.extract.extractors import ArrowExtractor
from dlt.extract.items_transform import ItemTransform
from dlt.sources import DltResource

from lxp_sync.sources.core.arrow import BATCH_COLUMN, joined, to_arrow

_NAMING = NamingConvention()

# dlt's columns of a child table of a merge table, as its row normalizer and schema give them
LINK_HINTS: dict[str, dict[str, Any]] = {
    "_dlt_root_id": {"data_type": "text", "nullable": False, "root_key": True},
    "_dlt_parent_id": {"data_type": "text", "nullable": False, "parent_key": True},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": {k: v for k, v in dlt_id_column().items() if k != "name"},
}


def with_links(columns: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A child table's column hints (named, as dlt wants a nested table's): `columns`, then
    dlt's link columns, in the order a new table is created in on either path."""
    return {name: {**hint, "name": name} for name, hint in {**columns, **LINK_HINTS}.items()}


@dataclass(frozen=True)
class ChildTable:
    """One list of a node: the key it has in the row, its table, its columns, its own lists."""

    field: str
    name: str
    hints: dict[str, dict[str, Any]]
    children: tuple[ChildTable, ...] = ()
    references: Any = None


def child_tables(
    table: str, nested_hints: Mapping[Any, Mapping[str, Any]]
) -> tuple[ChildTable, ...]:
    """The child tables of `table` from a resource's nested hints (path -> hints; a path is a
    field name or a tuple of them), named as dlt names them."""

    def below(path: tuple[str, ...], name: str) -> tuple[ChildTable, ...]:
        found = []
        for key, hints in nested_hints.items():
            key = (key,) if isinstance(key, str) else tuple(key)
            if len(key) != len(path) + 1 or key[: len(path)] != path:
                continue
            child = _NAMING.shorten_fragments(name, _NAMING.normalize_tables_path(key[-1]))
            found.append(
                ChildTable(
                    key[-1],
                    child,
                    dict(hints.get("columns") or {}),
                    below(key, child),
                    hints.get("references"),
                )
            )
        return tuple(found)

    return below((), table)


def declare_child_tables(resource: DltResource, parent: str, tables: Sequence[ChildTable]) -> None:
    """Each child table as a table variant of `resource` of its own hints and parent only (a
    variant made by `apply_hints` would copy the root's columns, key and nested hints)."""
    for table in tables:
        resource._hints_variants[table.name] = dlt.mark.make_hints(
            table_name=table.name,
            parent_table_name=parent,
            columns=table.hints,
            references=table.references,
        )
        declare_child_tables(resource, table.name, table.children)


@dataclass
class ArrowChildren:
    """Takes the lists out of a batch of rows, as child tables held until dlt's incremental has
    filtered the batch's root table (`attach`)."""

    tables: tuple[ChildTable, ...]
    _held: dict[int, tuple[int, list[tuple[str, pa.Table]]]] = field(default_factory=dict)
    _batches: Iterator[int] = field(default_factory=itertools.count)
    _entered: tuple[int, ...] = ()

    def take(self, rows: list[dict[str, Any]], root_ids: Sequence[str]) -> int:
        """Pop every list of `rows` (the root rows of one batch, their `_dlt_id`s `root_ids`)
        into child tables; the batch's number, for the root table's `BATCH_COLUMN`."""
        found: dict[str, list[dict[str, Any]]] = {}
        _child_rows(rows, root_ids, root_ids, self.tables, found)
        hints = {table.name: table.hints for table in _walk(self.tables)}
        built = [(name, _build(items, hints[name])) for name, items in found.items() if items]
        batch = next(self._batches)
        self._held[batch] = (len(rows), built)
        return batch

    def enter(self, item: Any) -> Any:
        """`item`, as it enters dlt's incremental. dlt takes one item through the incremental and
        `release` before the next enters: batches of the item before it still held are those of
        an item the incremental (or dlt's limit) dropped whole; their child rows never load."""
        for batch in self._entered:
            self._held.pop(batch, None)
        self._entered = _batch_numbers(item)
        return item

    def release(self, item: Any) -> Iterator[Any]:
        """The root table, then the child rows of the root rows it still has: chosen when dlt
        calls the step, for dlt iterates a step's output later, among other items'."""
        if not isinstance(item, pa.Table) or BATCH_COLUMN not in item.column_names:
            return iter((item,))
        taken = [self._held.pop(batch) for batch in _batch_numbers(item)]
        item = item.drop_columns([BATCH_COLUMN])
        # batches that entered with it, all of whose rows the incremental dropped
        for batch in self._entered:
            self._held.pop(batch, None)
        self._entered = ()
        # the batches' rows all there, or only those the incremental kept, and their child rows
        keep = None if item.num_rows == sum(rows for rows, _ in taken) else item["_dlt_id"]
        found: dict[str, list[pa.Table]] = {}
        for _, children in taken:
            for name, child in children:
                if keep is not None:
                    child = child.filter(pc.is_in(child["_dlt_root_id"], value_set=keep))
                if child.num_rows:
                    found.setdefault(name, []).append(child)
        out = [item]
        for name, tables in found.items():
            out.extend(dlt.mark.with_table_name(child, name) for child in joined(tables))
        return iter(out)

    def attach(self, resource: DltResource, table: str) -> DltResource:
        """`resource` (of root table `table`) with these child tables declared and released
        behind dlt's incremental."""
        declare_child_tables(resource, table, self.tables)
        return resource.add_step(_BeforeIncremental(self.enter)).add_step(
            _AfterIncremental(self.release)
        )


def arrow_lists(tables: tuple[ChildTable, ...], arrow: bool) -> tuple[bool, ArrowChildren | None]:
    """Whether a table whose lists make child tables `tables` loads from Arrow (`arrow`, and
    with lists only under a dlt release they were tested with: `CHILD_TABLES`), and the
    `ArrowChildren` that makes its child tables (None on rows, or without lists)."""
    arrow = arrow and (CHILD_TABLES or not tables)
    return arrow, (ArrowChildren(tables) if arrow and tables else None)


def _batch_numbers(item: Any) -> tuple[int, ...]:
    """The batches whose rows an Arrow table of `take`n rows has (none for any other item)."""
    if not isinstance(item, pa.Table) or BATCH_COLUMN not in item.column_names:
        return ()
    return tuple(sorted(item[BATCH_COLUMN].unique().to_pylist()))


class _Step(ItemTransform[Any, dict[str, Any]]):
    """A step whose work is done when dlt calls it with an item."""

    def __call__(self, item: Any, meta: Any = None) -> Any:
        return self._f(item)


class _BeforeIncremental(_Step):
    # dlt places steps by affinity: its validator 0.9, its incremental 1; this one between
    placement_affinity: ClassVar[float] = 0.95


class _AfterIncremental(_Step):
    # its incremental 1, its limit 1.1; this one behind both
    placement_affinity: ClassVar[float] = 1.5


def _walk(tables: Sequence[ChildTable]) -> Iterator[ChildTable]:
    for table in tables:
        yield table
        yield from _walk(table.children)


def _child_rows(
    rows: list[dict[str, Any]],
    parent_ids: Sequence[str],
    root_ids: Sequence[str],
    tables: Sequence[ChildTable],
    out: dict[str, list[dict[str, Any]]],
) -> None:
    """The items of `rows`' lists as rows of their tables, with dlt's links (as
    `RelationalNormalizer._normalize_list` makes them), popped from `rows`."""
    for table in tables:
        found = out.setdefault(table.name, [])
        start = len(found)
        ids: list[str] = []
        roots: list[str] = []
        for row, parent_id, root_id in zip(rows, parent_ids, root_ids, strict=True):
            items = row.pop(table.field, None)
            if not items:
                continue
            for index, item in enumerate(items):
                child = item if type(item) is dict else {"value": item}
                child_id = get_nested_row_hash(parent_id, table.name, index)
                child["_dlt_root_id"] = root_id
                child["_dlt_parent_id"] = parent_id
                child["_dlt_list_idx"] = index
                child["_dlt_id"] = child_id
                found.append(child)
                ids.append(child_id)
                roots.append(root_id)
        if table.children:
            _child_rows(found[start:], ids, roots, table.children, out)


def _build(rows: list[dict[str, Any]], hints: dict[str, dict[str, Any]]) -> pa.Table:
    """One child table: typed by `hints` (dlt's link columns NOT NULL, as from rows)."""
    table = to_arrow(rows, hints)
    schema = pa.schema(
        [f.with_nullable(False) if f.name in LINK_HINTS else f for f in table.schema]
    )
    return table.cast(schema)


# The dlt releases (major, minor) the steps below were written for and tested with
# (tests/test_graphql_arrow.py): they reach into dlt's extract. With any other dlt, tables with
# lists keep dlt's row path (`CHILD_TABLES`), and dlt is left as it is.
TESTED_DLT = frozenset({(1, 31)})


def dlt_release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a dlt version text; None if it does not read as one."""
    parts = version.split(".")[:2]
    return (int(parts[0]), int(parts[1])) if all(p.isdigit() for p in parts) else None


# dlt 1.31 writes tables at extract as root tables only; its steps there assume it, and are
# taught here that a child table (one with a parent) has no resource of its own, no
# `_dlt_load_id` (dlt's row path gives a child table none) and no variant name.
def _install() -> None:
    if getattr(Extract._compute_metrics, "_lxp_children", False):
        return
    compute_metrics = Extract._compute_metrics
    compute_tables = ArrowExtractor._compute_tables
    write_item = ArrowExtractor._write_item

    def metrics(self: Extract, load_id: str, source: Any) -> Any:
        """Extract metrics summed by resource: a child table counts to its root's."""
        tables = source.schema.tables
        lent = [t for t in tables.values() if is_nested_table(t) and "resource" not in t]
        for table in lent:
            table["resource"] = get_root_table(tables, table["name"]).get("resource")
        try:
            return compute_metrics(self, load_id, source)
        finally:
            for table in lent:
                del table["resource"]

    def tables(self: ArrowExtractor, resource: Any, items: Any, meta: Any) -> Any:
        computed = compute_tables(self, resource, items, meta)
        for table in computed:
            if table.get("parent"):
                table["columns"].pop(C_DLT_LOAD_ID, None)
                table.pop("variant_name", None)  # (`declare_child_tables`) not the row path's
        return computed

    def write(self: ArrowExtractor, table_name: str, *args: Any, **kwargs: Any) -> Any:
        config = self._normalize_config
        table = self.schema.tables.get(table_name)
        if not (config.add_dlt_load_id and table is not None and is_nested_table(table)):
            return write_item(self, table_name, *args, **kwargs)
        config.add_dlt_load_id = False
        try:
            return write_item(self, table_name, *args, **kwargs)
        finally:
            config.add_dlt_load_id = True

    metrics._lxp_children = True  # type: ignore[attr-defined]
    Extract._compute_metrics = metrics  # type: ignore[method-assign]
    ArrowExtractor._compute_tables = tables  # type: ignore[method-assign]
    ArrowExtractor._write_item = write  # type: ignore[method-assign]


# whether child tables go to dlt as Arrow tables (else the row path makes them)
CHILD_TABLES = dlt_release(dlt.__version__) in TESTED_DLT
if CHILD_TABLES:
    _install()
