"""Rows a load inserts, updates and deletes per table, counted exactly just before dlt merges them.

dlt reports the rows it writes per table (normalize info), not which of them are new: a merge
deletes every row whose key is staged and inserts the staged rows, and afterwards the table no
longer shows which keys it had before. The one moment that knows both sides is when dlt builds a
table chain's merge (or staging replace) job: the chain's rows are all in the staging dataset, and
the table is still as the last load left it. `counting_merges()` wraps the building of those jobs
for the duration of a run and, for each chain, runs one read-only query first:

- **inserted**: staged keys the table did not have;
- **updated**: staged keys it had whose row differs from the table's (any column but dlt's load
  id and row keys), or whose nested rows differ (the child tables, compared per key as sets of
  rows with their list positions, and by count);
- **unchanged**: staged keys it had, with the same row and nested rows (a full read rewrites them);
- **deleted**: keys the merge removes (rows the source flags with dlt's `hard_delete`), or, for a
  replace, keys the table had that the new rows do not.

The query uses set operations and joins on the key only, the same on DuckDB, PostgreSQL and
BigQuery (JSON compared through `TO_JSON_STRING` there), and reads what the merge reads anyway: the
staged rows and the table. Built with dlt's own dedup SQL, it sees the rows the merge will insert.
Nothing in the SQL dlt runs changes. A query that fails leaves that table's split unknown
(`None`): the report then shows what dlt wrote, never a guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from dlt.common.destination.utils import get_merge_compare_columns
from dlt.common.schema.utils import get_dedup_sort_tuple, get_first_column_name_with_prop
from dlt.destinations.sql_jobs import (
    SqlFollowupJob,
    SqlMergeFollowupJob,
    SqlStagingReplaceFollowupJob,
)

log = logging.getLogger("lxp_sync")


@dataclass
class TableCounts:
    """What one load does to one root table, by key."""

    inserted: int
    updated: int | None  # None: a nested table could not be compared; `rewritten` holds
    unchanged: int | None
    deleted: int
    rewritten: int  # keys the table had that the load wrote again (updated + unchanged)


class MergeCounter:
    """The counts of the chains merged (or replaced from staging) while it is active."""

    def __init__(self, open_client: Callable[[], AbstractContextManager[Any]]) -> None:
        self._open_client = open_client
        self._lock = threading.Lock()
        self.tables: dict[str, TableCounts | None] = {}

    def count(self, job_class: type, table_chain: Sequence[Any], replace: bool) -> None:
        root = table_chain[0]["name"]
        try:
            with self._open_client() as client:
                sql, exact = chain_sql(job_class, table_chain, client, replace)
                if sql is None:
                    counts = None
                else:
                    counts = _counts(client.execute_sql(sql)[0], exact, replace)
        except Exception as exc:  # the load goes on; the report shows what dlt wrote
            log.debug("merge counts of %s: %s", root, exc)
            counts = None
        with self._lock:
            self.tables[root] = counts


def _counts(row: Sequence[Any], exact: bool, replace: bool) -> TableCounts:
    kept, existing, kept_existing, changed = (int(v or 0) for v in row[1:5])
    before = int(row[5] or 0) if replace else 0
    return TableCounts(
        inserted=kept - kept_existing,
        updated=changed if exact else None,
        unchanged=kept_existing - changed if exact else None,
        deleted=before - existing if replace else existing - kept_existing,
        rewritten=kept_existing,
    )


_active: MergeCounter | None = None
_installed = False


@contextmanager
def counting_merges(
    open_client: Callable[[], AbstractContextManager[Any]],
) -> Iterator[MergeCounter]:
    """Count the merges and staging replaces of the loads run in the block.

    `open_client`: a context manager that opens a SQL client of the pipeline (its own
    connection: the loader's is not touched).
    """
    global _active
    _install()
    counter = MergeCounter(open_client)
    _active = counter
    try:
        yield counter
    finally:
        _active = None


def _install() -> None:
    """Wrap the construction of dlt's merge and staging replace jobs (once per process)."""
    global _installed
    if _installed:
        return
    build = SqlFollowupJob.__dict__["from_table_chain"].__func__

    def counted(replace: bool) -> classmethod:
        def from_table_chain(cls: type, table_chain: Sequence[Any], sql_client: Any) -> Any:
            counter = _active
            if counter is not None:
                counter.count(cls, table_chain, replace)
            return build(cls, table_chain, sql_client)

        return classmethod(from_table_chain)

    SqlMergeFollowupJob.from_table_chain = counted(replace=False)  # type: ignore[method-assign]
    SqlStagingReplaceFollowupJob.from_table_chain = counted(replace=True)  # type: ignore[method-assign]
    _installed = True


# --- the query ----------------------------------------------------------------------------------


def chain_sql(
    job_class: Any, table_chain: Sequence[Any], client: Any, replace: bool
) -> tuple[str | None, bool]:
    """(the counting query of a table chain, whether its nested tables could all be compared).

    The query returns one row: staged keys, staged keys kept (not hard-deleted), of those the
    ones the table had, the kept ones it had, the kept ones it had that changed, and (for a
    replace) the keys the table had.
    """
    root = table_chain[0]
    esc = client.escape_column_name
    keys = [esc(c) for c in _props(root, "primary_key")]
    if not keys:
        return None, False
    row_key = get_first_column_name_with_prop(root, "row_key")
    rk = esc(row_key) if row_key else None  # Arrow tables may have none (nor nested tables)
    bigquery = client.capabilities.sqlglot_dialect == "bigquery"
    table, staging = client.get_qualified_table_names(root["name"])
    cols = _compare_columns(root, esc)
    key_alias = [f"_lxp_k{i}" for i in range(len(keys))]
    hard_delete = None
    if not replace:
        escape_lit = client.capabilities.escape_literal
        hard_delete, kept_cond = job_class._get_hard_delete_col_and_cond(
            root, esc, escape_lit, invert=True, alias="s."
        )
    extra = [rk] if rk else []
    inner = _unique(
        [*keys, *extra, *(c for c, _ in cols), *([esc(hard_delete)] if hard_delete else [])]
    )
    if replace:
        staged = f"SELECT {', '.join(inner)} FROM {staging}"
    else:
        sort = get_dedup_sort_tuple(root)
        staged = job_class.gen_select_from_dedup_sql(
            staging,
            keys,
            inner,
            (esc(sort[0]), sort[1]) if sort else None,
            skip_dedup=bool(root.get("x-stage-data-deduplicated", False)),
        )
    kept = kept_cond if hard_delete else "1 = 1"
    on = " AND ".join(f"s.{k} = d.{k}" for k in keys)
    ks = ", ".join(f"s.{k} AS {a}" for k, a in zip(keys, key_alias, strict=True))
    row_keys = f"s.{rk} AS _lxp_srk, d.{rk} AS _lxp_drk, " if rk else ""
    ctes = [
        f"s AS ({staged})",
        f"sd AS (SELECT {ks}, {row_keys}CASE WHEN d.{keys[0]} IS NULL THEN 0 ELSE 1 END AS "
        f"_lxp_had, CASE WHEN {kept} THEN 1 ELSE 0 END AS _lxp_kept "
        f"FROM s LEFT JOIN {table} AS d ON {on})",
    ]
    both = "sd._lxp_kept = 1 AND sd._lxp_had = 1"
    ka = ", ".join(f"sd.{a}" for a in key_alias)

    def by_key(alias: str) -> str:
        return " AND ".join(f"{alias}.{k} = sd.{a}" for k, a in zip(keys, key_alias, strict=True))

    changed = [
        _except(
            f"SELECT {ka}, {_values('s', cols, bigquery)} FROM s JOIN sd ON {by_key('s')} "
            f"WHERE {both}",
            f"SELECT {ka}, {_values('d', cols, bigquery)} FROM {table} AS d "
            f"JOIN sd ON {by_key('d')} WHERE {both}",
            key_alias,
        )
        if cols
        else None
    ]
    exact = rk is not None or len(table_chain) == 1
    for nested in table_chain[1:] if rk else []:
        link = get_first_column_name_with_prop(nested, "root_key")
        if link is None and nested.get("parent") == root["name"]:
            link = get_first_column_name_with_prop(nested, "parent_key")
        if link is None:
            exact = False  # a grandchild without the root's key: no way back to its root row
            continue
        n_table, n_staging = client.get_qualified_table_names(nested["name"])
        n_cols = _compare_columns(nested, esc)
        values = _values("c", n_cols, bigquery)
        side = {
            "staged": f"FROM {n_staging} AS c JOIN sd ON c.{esc(link)} = sd._lxp_srk WHERE {both}",
            "table": f"FROM {n_table} AS c JOIN sd ON c.{esc(link)} = sd._lxp_drk WHERE {both}",
        }
        if n_cols:
            staged_rows = f"SELECT {ka}, {values} {side['staged']}"
            table_rows = f"SELECT {ka}, {values} {side['table']}"
            changed.append(_except(staged_rows, table_rows, key_alias))
            changed.append(_except(table_rows, staged_rows, key_alias))
        # the same rows in another number (a nested list two levels down)
        group = ", ".join(key_alias)
        changed.append(
            f"SELECT {group} FROM (SELECT {ka}, 1 AS _lxp_side {side['staged']} UNION ALL "
            f"SELECT {ka}, -1 AS _lxp_side {side['table']}) AS x GROUP BY {group} "
            "HAVING SUM(_lxp_side) <> 0"
        )
    changed_sql = " UNION DISTINCT ".join(f"({part})" for part in changed if part)
    ctes.append(
        f"changed AS ({changed_sql})"
        if changed_sql
        else f"changed AS (SELECT {ka} FROM sd WHERE 1 = 0)"
    )
    counts = [
        "(SELECT COUNT(*) FROM sd)",
        "(SELECT COUNT(*) FROM sd WHERE _lxp_kept = 1)",
        "(SELECT COUNT(*) FROM sd WHERE _lxp_had = 1)",
        f"(SELECT COUNT(*) FROM sd WHERE {both})",
        "(SELECT COUNT(*) FROM changed)",
    ]
    if replace:
        distinct = ", ".join(keys)
        counts.append(f"(SELECT COUNT(*) FROM (SELECT DISTINCT {distinct} FROM {table}) AS b)")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(counts)}", exact


def _props(table: Any, prop: str) -> list[str]:
    return [name for name, column in table["columns"].items() if column.get(prop)]


def _compare_columns(table: Any, esc: Callable[[str], str]) -> list[tuple[str, str]]:
    """(escaped name, data type) of the columns that decide whether a row changed."""
    columns = table["columns"]
    return [
        (esc(name), columns[name]["data_type"])
        for name in get_merge_compare_columns(table)
        if columns[name].get("data_type")
    ]


def _values(alias: str, cols: list[tuple[str, str]], bigquery: bool) -> str:
    # BigQuery compares no JSON values (nor groups them): their text instead
    return ", ".join(
        (f"TO_JSON_STRING({alias}.{name})" if bigquery and kind == "json" else f"{alias}.{name}")
        + f" AS _lxp_v{i}"
        for i, (name, kind) in enumerate(cols)
    )


def _except(left: str, right: str, key_alias: list[str]) -> str:
    """Keys of the rows of `left` that `right` does not have (NULLs equal, as in set operations)."""
    return f"SELECT {', '.join(key_alias)} FROM (({left}) EXCEPT DISTINCT ({right})) AS x"


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
