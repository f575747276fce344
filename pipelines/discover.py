"""`lxp-sync discover SOURCE`: the resources a tenant has, without loading anything.

Each resource reads one small page (`SAMPLE_ROWS` rows, one request; the API's count comes with
it) through dlt's extract and normalize into a throwaway pipeline in a temporary folder: the
tables, child tables, column names and types are dlt's own, as a load would create them, and
nothing reaches the warehouse or the source's pipeline state. How each resource reads (cursor,
server-side filter or full read) is the plan the resource itself carries
(`sources/core/discovery.py`), the same one a run follows.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.schema.utils import get_nested_tables

from lxp_sync.sources.core.discovery import CLIENT, FULL, REPLACE, SERVER, ReadPlan, read_plan_of

log = logging.getLogger("lxp_sync")

# rows of the one page each resource reads: enough to see most lists (child tables) and the
# columns dlt infers from values, still one cheap request
SAMPLE_ROWS = 25


@dataclass
class Column:
    name: str
    type: str  # dlt's data type (`text`, `bigint`, `timestamp`, `decimal(38,18)`, `json`, ...)


@dataclass
class Table:
    name: str
    columns: list[Column]


@dataclass
class Resource:
    """What `discover` says of one resource."""

    resource: str
    table: str | None
    rows: int | None  # the API's count (None: it does not say)
    primary_key: list[str]
    incremental: str  # `server`, `client`, `full` (merged) or `replace` (ReadPlan.mode)
    cursor: str | None  # the warehouse column
    server_filter: str | None
    note: str
    columns: list[Column] = field(default_factory=list)
    child_tables: list[Table] = field(default_factory=list)


def discover(
    spec: Any, resources: Sequence[str] | None = None, sample_rows: int = SAMPLE_ROWS
) -> list[Resource]:
    """Describe the resources of a source (or `resources`) from one small page of each."""
    args: dict[str, Any] = {"page_size": sample_rows, "max_pages": 1}
    if resources:
        args["resources"] = list(resources)
    source = spec.factory(**args)
    with tempfile.TemporaryDirectory(prefix="lxp-sync-discover-") as tmp, _quiet_progress():
        pipeline = dlt.pipeline(
            pipeline_name=f"lxp_sync_discover_{spec.name}",
            # never loaded: the destination only lends its naming and capabilities to normalize
            destination=dlt.destinations.duckdb(str(Path(tmp) / "never_loaded.duckdb")),
            dataset_name=spec.name,
            pipelines_dir=str(Path(tmp) / "pipelines"),
        )
        pipeline.extract(source)
        pipeline.normalize()
        schema = pipeline.schemas[source.name]
        return [
            _describe(name, resource, schema)
            for name, resource in source.selected_resources.items()
        ]


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No progress lines for one-page reads (unless `-v`); warnings still show."""
    level = log.level
    if not log.isEnabledFor(logging.DEBUG):
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _describe(name: str, resource: Any, schema: Any) -> Resource:
    plan = read_plan_of(resource) or ReadPlan()
    tables = schema.data_tables()
    root = next(
        (t for t in tables if t.get("resource") == name and not t.get("parent")),
        None,
    )
    root_name = root["name"] if root else None
    children = get_nested_tables(schema.tables, root_name)[1:] if root_name else []
    columns = _columns(root["columns"]) if root else []
    return Resource(
        resource=name,
        table=root_name,
        rows=plan.total,
        primary_key=[
            c for c, hint in (root or {}).get("columns", {}).items() if hint.get("primary_key")
        ],
        incremental=plan.mode,
        cursor=schema.naming.normalize_identifier(plan.cursor) if plan.cursor else None,
        server_filter=plan.server_filter,
        note=plan.note,
        columns=columns,
        child_tables=[Table(child["name"], _columns(child["columns"])) for child in children],
    )


def _columns(columns: Mapping[str, Any]) -> list[Column]:
    return [
        Column(name, _type(hint))
        for name, hint in columns.items()
        if not name.startswith("_dlt") and hint.get("data_type")
    ]


def _type(hint: Mapping[str, Any]) -> str:
    data_type = hint["data_type"]
    if hint.get("precision") is not None and data_type in ("decimal", "wei"):
        return f"{data_type}({hint['precision']},{hint.get('scale', 0)})"
    return data_type


# --- what the command prints ---------------------------------------------------------------------

_READS = {
    SERVER: "incremental on {cursor}: the server filters ({server_filter})",
    CLIENT: "incremental on {cursor}: every row read, the new ones kept (no server-side filter)",
    FULL: "every row read on each run and merged on the key (no cursor)",
    REPLACE: "every row read on each run, the table replaced",
}


def reads(found: Resource) -> str:
    """How a resource reads, in words."""
    line = _READS[found.incremental].format(**asdict(found))
    return f"{line}; {found.note}" if found.note else line


def discover_lines(
    spec: Any, resources: Sequence[str] | None = None, *, as_json: bool = False
) -> list[str]:
    """`lxp-sync discover`'s output: text, or one JSON document."""
    found = discover(spec, resources)
    if as_json:
        document = {
            "source": spec.name,
            "description": spec.description,
            "resources": [asdict(each) for each in found],
        }
        return [json.dumps(document, indent=2, ensure_ascii=False)]
    lines = [f"{spec.name}: {len(found)} resources ({spec.description})"]
    for each in found:
        rows = f"{each.rows:,} rows" if each.rows is not None else "rows not counted by the API"
        key = ", ".join(each.primary_key) or "none"
        lines += ["", f"{each.resource}: {rows}; key {key}; {reads(each)}"]
        if each.table and each.table != each.resource:
            lines.append(f"  table {each.table}")
        lines += _column_lines(each.columns, "  ")
        for child in each.child_tables:
            lines.append(f"  {child.name} (child table: one row per list item)")
            lines += _column_lines(child.columns, "    ")
    return lines


def _column_lines(columns: list[Column], indent: str) -> list[str]:
    width = max((len(c.name) for c in columns), default=0)
    return [f"{indent}{c.name:<{width}}  {c.type}" for c in columns]
