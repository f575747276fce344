"""The Pitchly source against the sandbox: typed tables per Pitchly table, changes, auth, errors."""

from __future__ import annotations

import logging
import re
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import jwt
import orjson
import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, run_source
from lxp_sync.sources.core.auth import PitchlyJWTAuth
from lxp_sync.sources.core.errors import ConfigurationError
from lxp_sync.sources.pitchly.naming import (
    assign_table_names,
    column_layout,
    default_table_name,
    identifier,
)
from lxp_sync_sandbox.pitchly import (
    CLIENT_ID,
    CLIENT_SECRET,
    INITIAL_REFRESH_TOKEN,
    ORGANIZATION_ID,
)
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import diff_table, duckdb_rows
from tests.helpers import error_line, loaded_rows, lxp_sync, sync

API = "pitchly"
TOKEN_PATH = "/pitchly/api/oauth/token"
# Pitchly table -> the warehouse table it becomes (`<workspace>__<table>`); the two tables the
# sandbox has not marked ready are not loaded.
TABLES = {
    "Companies": "sales__companies",
    "Deals": "sales__deals",
    "Clients": "legal__clients",
    "Matters": "legal__matters",
    "Employees": "archive__employees",
}
NOT_READY = ("Pipeline Draft", "Legacy Import")


def val(entry: dict[str, Any]) -> Any:
    return entry["value"]["val"]


def number(entry: dict[str, Any]) -> Any:
    value = val(entry)
    return value if isinstance(value, int | Decimal) and not isinstance(value, bool) else None


def part(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda entry: entry["value"][key]


def display(entry: dict[str, Any]) -> Any:
    return entry["stringValue"]


def joinable(ids: Any) -> Any:
    """A reference `val` (the document's `wks... rec...`, or `wks...|rec...`) as record ids."""
    return ids.replace(" ", "|") if isinstance(ids, str) else [joinable(i) for i in ids]


def reference(entry: dict[str, Any]) -> Any:
    return joinable(val(entry))


# Pitchly field type -> the columns it becomes: (suffix, warehouse type, entry -> value).
# A lookup becomes the columns of the field it looks up, plus `__string_value`.
TYPE_COLUMNS: dict[str, list[tuple[str, str, Callable[[dict[str, Any]], Any]]]] = {
    "text": [("", "text", val)],
    "multilineText": [("", "text", val)],
    "dropdown": [("", "text", val)],
    "number": [("", "decimal", number)],
    "boolean": [("", "bool", val)],
    "dropdownMultiple": [("", "json", val)],
    "date": [("", "timestamp", val)],
    "createdAt": [("", "timestamp", val)],
    "updatedAt": [("", "timestamp", val)],
    "currency": [("", "decimal", number), ("__currency", "text", part("currency"))],
    "attachment": [
        ("", "text", val),
        ("__mime_type", "text", part("type")),
        ("__size", "bigint", part("size")),
    ],
    "reference": [("", "text", reference)],
    "referenceMultiple": [("", "json", reference)],
    "formula": [("", "decimal", number), ("__string_value", "text", display)],
}


def tail(pitchly_id: str) -> str:
    return pitchly_id.rsplit("|", 1)[-1][-6:].lower()


def column_name(field: dict[str, Any]) -> str:
    """Field names to column names, collisions and unicode included (the README's rules)."""
    special = {
        "deal_size": f"deal_size_{tail(field['id'])}",  # after "Deal Size"
        "Amount ($)": "amount",
        "Amount": f"amount_{tail(field['id'])}",  # after "Amount ($)"
        "Größe": "grosse",
        "客户": f"field_{tail(field['id'])}",
    }
    return special.get(field["name"], re.sub(r"\W+", "_", field["name"].lower()))


def columns_of(
    field: dict[str, Any], fields_by_id: dict[str, dict[str, Any]]
) -> list[tuple[str, str, Callable[[dict[str, Any]], Any]]]:
    if field["type"] == "lookup":
        target = fields_by_id[field["lookupFieldId"]]
        looked_up = [c for c in columns_of(target, fields_by_id) if c[0] != "__string_value"]
        return [*looked_up, ("__string_value", "text", display)]
    return TYPE_COLUMNS[field["type"]]


def expected_rows(
    sandbox: SandboxProcess, table_id: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The truth of a table as warehouse rows, and each column's expected type."""
    fields_by_id = {f["id"]: f for f in sandbox.truth(API, "fields")}
    fields = sandbox.truth(API, f"fields:{table_id}")
    types = {"id": "text"}
    for field in fields:
        for suffix, data_type, _ in columns_of(field, fields_by_id):
            types[column_name(field) + suffix] = data_type
    rows = []
    for node in sandbox.truth(API, f"records:{table_id}", exact=True):
        row: dict[str, Any] = {"id": node["id"]}
        for entry in node["fields"]:
            field = fields_by_id[entry["fieldId"]]
            for suffix, data_type, value in columns_of(field, fields_by_id):
                row[column_name(field) + suffix] = as_json(value(entry), data_type)
        rows.append(row)
    return rows, types


def as_json(value: Any, data_type: str) -> Any:
    """A JSON column's value as canonical JSON text (what the comparison sees)."""
    return orjson.dumps(value).decode() if data_type == "json" and value is not None else value


def warehouse_rows(pipeline: Any, workdir: Path, table: str) -> list[dict[str, Any]]:
    """A warehouse table's rows, its JSON columns as canonical JSON text."""
    columns = pipeline.default_schema.get_table_columns(table)
    json_columns = [name for name, c in columns.items() if c.get("data_type") == "json"]
    rows = duckdb_rows(str(workdir / "warehouse.duckdb"), "pitchly", table)
    for row in rows:
        for name in json_columns:
            if row.get(name) is not None:
                row[name] = orjson.dumps(orjson.loads(row[name])).decode()
    return rows


def tables_by_name(sandbox: SandboxProcess) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in sandbox.truth(API, "tables")}


def field_id(sandbox: SandboxProcess, table_id: str, name: str) -> str:
    return next(f["id"] for f in sandbox.truth(API, f"fields:{table_id}") if f["name"] == name)


def assert_table_equals_truth(
    sandbox: SandboxProcess, pipeline: Any, workdir: Path, table_id: str, table: str
) -> list[dict[str, Any]]:
    truth, types = expected_rows(sandbox, table_id)
    loaded = warehouse_rows(pipeline, workdir, table)
    assert truth, table
    problems = diff_table(
        truth, loaded, "id", ignore=frozenset(_gone_columns(pipeline, table, types))
    )
    assert not problems, f"{table}: {problems}"
    columns = pipeline.default_schema.get_table_columns(table)
    for column, data_type in types.items():
        assert columns[column]["data_type"] == data_type, f"{table}.{column}"
    return loaded


def _gone_columns(pipeline: Any, table: str, types: dict[str, str]) -> list[str]:
    """Columns of fields since renamed or removed (dlt never drops a column)."""
    return [c for c in pipeline.default_schema.get_table_columns(table) if c not in types]


def pitchly_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PITCHLY__GRAPHQL_URL": f"{sandbox.url}/pitchly/graphql",
        "SOURCES__PITCHLY__TOKEN_URL": f"{sandbox.url}/pitchly/api/oauth/token",
        "SOURCES__PITCHLY__CLIENT_ID": CLIENT_ID,
        "SOURCES__PITCHLY__CLIENT_SECRET": CLIENT_SECRET,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


def failed_run_line(env: dict[str, str], workdir: Path, *secrets: str) -> str:
    """`lxp-sync run pitchly` that fails: exit 1, one error line (returned), no secret shown."""
    result = lxp_sync("run", "pitchly", "--resources", "workspaces", env=env, cwd=workdir)
    assert result.returncode == 1, result.stderr
    for secret in (CLIENT_SECRET, *secrets):
        assert secret not in result.stdout + result.stderr
    return error_line(result.stderr)


def token_grants(sandbox: SandboxProcess) -> list[str]:
    return [r["extra"].get("grant_type") for r in sandbox.requests(API) if r["path"] == TOKEN_PATH]


def records_filters(sandbox: SandboxProcess, table_id: str) -> list[Any]:
    """The `filter` of every page request for a table (count requests aside)."""
    found = []
    for request in sandbox.requests(API):
        args = (request["extra"].get("args") or {}).get("recordsConnection")
        if args and args.get("tableId") == table_id and args.get("first"):
            found.append(args.get("filter"))
    return found


def files_containing(root: Path, needle: str, skip: Path) -> list[str]:
    return [
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path != skip and needle.encode() in path.read_bytes()
    ]


def condition(field: str, operator: str, value: Any) -> dict[str, Any]:
    """One condition of a Pitchly filter, as the document writes it."""
    return {
        "left": {"type": "field", "value": field},
        "comparison": {"operator": operator},
        "right": {"type": "input", "value": value},
    }


@pytest.fixture
def refreshable(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox with its initial refresh token live again, and a clean request log."""
    sandbox.configure(api=API, reset_refresh_token=True)
    sandbox.clear_requests()
    yield sandbox
    sandbox.configure(api=API, reset_refresh_token=True)


# --- full sync ----------------------------------------------------------------------------------


def test_full_sync_loads_every_ready_table_typed_field_type_by_field_type(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pitchly", sandbox, workdir)

    tables = tables_by_name(sandbox)
    assert set(TABLES.values()) | {"workspaces", "tables", "fields"} <= set(
        pipeline.default_schema.data_table_names()
    )
    seen: dict[str, int] = {}
    fields = {f["id"]: f for f in sandbox.truth(API, "fields")}
    for name, table in TABLES.items():
        loaded = assert_table_equals_truth(sandbox, pipeline, workdir, tables[name]["id"], table)
        for field in sandbox.truth(API, f"fields:{tables[name]['id']}"):
            filled = sum(1 for row in loaded if row.get(column_name(field)) is not None)
            seen[field["type"]] = seen.get(field["type"], 0) + filled
    assert {kind for kind, filled in seen.items() if filled} == {*TYPE_COLUMNS, "lookup"}
    assert len({f["type"] for f in fields.values()}) == len(TYPE_COLUMNS) + 1


@pytest.mark.parametrize("form", ["space", "pipe"])
def test_references_hold_record_ids_that_join_to_the_referenced_tables_id(
    fresh_sandbox: SandboxProcess, workdir: Path, form: str
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api=API, reference_form=form)  # the document's sample, or record ids
    resources = ["sales__companies", "sales__deals", "legal__clients", "legal__matters"]

    sync("pitchly", sandbox, workdir, resources=resources)

    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:

        def count(sql: str) -> int:
            return con.execute(sql).fetchone()[0]

        for table, column, target in [
            ("sales__deals", "company", "sales__companies"),
            ("legal__matters", "client", "legal__clients"),
        ]:
            referencing = count(f"SELECT count(*) FROM pitchly.{table} WHERE {column} IS NOT NULL")
            joined = count(
                f"SELECT count(*) FROM pitchly.{table} r JOIN pitchly.{target} t ON r.{column} = t.id"
            )
            assert 0 < referencing == joined, (table, referencing, joined)
        partners = con.execute(
            "SELECT p.id IS NOT NULL FROM (SELECT unnest(CAST(partners AS VARCHAR[])) AS ref "
            "FROM pitchly.sales__deals) d LEFT JOIN pitchly.sales__companies p ON d.ref = p.id"
        ).fetchall()
        assert partners and all(found for (found,) in partners)


def test_metadata_tables_list_workspaces_tables_and_fields_with_their_warehouse_names(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pitchly", sandbox, workdir, resources=["workspaces", "tables", "fields"])

    loaded = {t["id"]: t for t in warehouse_rows(pipeline, workdir, "tables")}
    for table in sandbox.truth(API, "tables"):
        row = loaded[table["id"]]
        assert (row["name"], row["workspace_id"], row["is_ready"]) == (
            table["name"],
            table["workspaceId"],
            table["isReady"],
        )
        assert row["warehouse_table"] == TABLES.get(table["name"])
    workspaces = warehouse_rows(pipeline, workdir, "workspaces")
    assert sorted(w["name"] for w in workspaces) == ["Archive", "Legal", "Sales"]
    fields = {f["id"]: f for f in warehouse_rows(pipeline, workdir, "fields")}
    assert set(fields) == {f["id"] for f in sandbox.truth(API, "fields")}
    deals = tables_by_name(sandbox)["Deals"]["id"]
    amount = fields[field_id(sandbox, deals, "Amount")]
    assert amount["type"] == "currency"
    assert orjson.loads(amount["columns"]) == [
        f"amount_{tail(amount['id'])}",
        f"amount_{tail(amount['id'])}__currency",
    ]
    stage = fields[field_id(sandbox, deals, "Stage")]
    assert orjson.loads(stage["options"]) and orjson.loads(stage["columns"]) == ["stage"]


def test_tables_not_marked_ready_are_skipped_with_a_warning(
    sandbox: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lxp_sync"):
        pipeline = sync("pitchly", sandbox, workdir, resources=["sales__companies"])

    warnings = [r.getMessage() for r in caplog.records if r.name == "lxp_sync"]
    for name in NOT_READY:
        assert any(name in w and "not marked ready" in w for w in warnings), name
    tables = pipeline.default_schema.data_table_names()
    assert "sales__pipeline_draft" not in tables and "archive__legacy_import" not in tables
    assert "sales__companies" in tables


def test_a_table_that_stops_being_ready_during_a_run_is_skipped_not_a_failure(
    fresh_sandbox: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fresh_sandbox
    companies = tables_by_name(sandbox)["Companies"]["id"]
    spec = SOURCES["pitchly"]
    source = spec.factory(**spec.sandbox_args(sandbox.url))
    assert "sales__companies" in source.resources  # the catalog, read now, says ready
    sandbox.mutate(api=API, entity=f"tables:{companies}", ready=False)
    options = RunOptions(
        duckdb_path=str(workdir / "warehouse.duckdb"), pipelines_dir=str(workdir / "pipelines")
    )

    with caplog.at_level(logging.WARNING, logger="lxp_sync"):
        pipeline = run_source(spec, source, options)

    assert any(
        "sales__companies: skipped" in r.getMessage() and "not marked ready" in r.getMessage()
        for r in caplog.records
    )
    assert "sales__companies" not in pipeline.default_schema.data_table_names()
    deals = tables_by_name(sandbox)["Deals"]["id"]
    assert_table_equals_truth(sandbox, pipeline, workdir, deals, "sales__deals")


# --- changes between runs -----------------------------------------------------------------------


def test_next_run_reflects_added_renamed_removed_fields_and_updated_deleted_records(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    tables = {name: tables_by_name(sandbox)[name]["id"] for name in TABLES}
    sync("pitchly", sandbox, workdir)
    deals = tables["Deals"]
    sandbox.mutate(api=API, entity=f"fields:{deals}", add={"name": "Probability", "type": "number"})
    sandbox.mutate(
        api=API,
        entity=f"fields:{deals}",
        rename={"fieldId": field_id(sandbox, deals, "Stage"), "name": "Pipeline Stage"},
    )
    sandbox.mutate(api=API, entity=f"fields:{deals}", remove=field_id(sandbox, deals, "Won"))
    sandbox.mutate(api=API, entity=f"records:{deals}", insert=2, update=3, delete=2)
    companies = sandbox.mutate(api=API, entity=f"records:{tables['Companies']}", delete=1)
    assert companies["cascaded"], "the test needs deals that pointed at the deleted company"
    employees = sandbox.mutate(api=API, entity=f"records:{tables['Employees']}", insert=1, update=2)
    sandbox.mutate(api=API, entity=f"records:{tables['Matters']}", update=2, delete=2)
    sandbox.clear_requests()

    pipeline = sync("pitchly", sandbox, workdir)

    for name, table in TABLES.items():
        assert_table_equals_truth(sandbox, pipeline, workdir, tables[name], table)
    loaded_deals = warehouse_rows(pipeline, workdir, "sales__deals")
    assert all(row["stage"] is None and row["won"] is None for row in loaded_deals)
    assert sum(row["pipeline_stage"] is not None for row in loaded_deals) == len(loaded_deals)
    assert sum(row["probability"] is not None for row in loaded_deals) == 2  # the new records
    # Employees changed only by updates and inserts: the run asked for records updated since
    changed = len(employees["inserted"]) + len(employees["updated"])
    assert changed <= loaded_rows(pipeline)["archive__employees"] <= changed + 1
    [since] = records_filters(sandbox, tables["Employees"])
    assert since["conditions"][0]["comparison"]["operator"] == "is-on-or-after"
    # Companies lost a record: the count says so, and the table is read in full
    assert records_filters(sandbox, tables["Companies"]) == [None]


def test_a_column_that_changes_type_fails_in_one_line_until_the_table_is_recreated(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    deals = tables_by_name(sandbox)["Deals"]["id"]
    fields = f"fields:{deals}"
    added = sandbox.mutate(api=API, entity=fields, add={"name": "Score", "type": "text"})
    sandbox.mutate(api=API, entity=f"records:{deals}", insert=2)
    env = pitchly_env(sandbox, workdir)
    run = ("run", "pitchly", "--resources", "sales__deals", "--pipelines-dir", "pipelines")
    assert lxp_sync(*run, env=env, cwd=workdir).returncode == 0
    # a number field of the same name replaces it: its column would keep the name
    sandbox.mutate(api=API, entity=fields, remove=added["added"]["id"])
    sandbox.mutate(api=API, entity=fields, add={"name": "Score", "type": "number"})
    sandbox.mutate(api=API, entity=f"records:{deals}", insert=3)

    result = lxp_sync(*run, env=env, cwd=workdir)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert "pitchly.sales__deals: columns change type (score: text -> decimal)" in line, line
    assert "--full-refresh --recreate" in line
    # a plain full refresh replaces rows, not tables: the column keeps its type, the run fails
    assert lxp_sync(*run, "--full-refresh", env=env, cwd=workdir).returncode != 0
    again = lxp_sync(*run, "--full-refresh", "--recreate", env=env, cwd=workdir)
    assert again.returncode == 0, again.stderr
    loaded = duckdb_rows(str(workdir / "lxp_sync.duckdb"), "pitchly", "sales__deals")
    assert sum(isinstance(row["score"], Decimal) for row in loaded) == 3


def test_a_rerun_without_changes_reads_almost_nothing_and_changes_nothing(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    sync("pitchly", sandbox, workdir, resources=["sales__deals", "legal__matters"])

    pipeline = sync("pitchly", sandbox, workdir, resources=["sales__deals", "legal__matters"])

    tables = tables_by_name(sandbox)
    assert loaded_rows(pipeline)["sales__deals"] <= 1  # the newest record, at the cursor
    assert loaded_rows(pipeline)["legal__matters"] == len(
        sandbox.truth(API, f"records:{tables['Matters']['id']}")
    )  # no Updated At field: read in full, replaced
    assert_table_equals_truth(sandbox, pipeline, workdir, tables["Deals"]["id"], "sales__deals")
    assert_table_equals_truth(sandbox, pipeline, workdir, tables["Matters"]["id"], "legal__matters")


def test_a_configured_filter_limits_the_records_loaded(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    deals = tables_by_name(sandbox)["Deals"]["id"]
    stage = field_id(sandbox, deals, "Stage")
    won = {
        "conditions": [condition(stage, "has-any-of", ["Closed Won"])],
        "logicalOperator": "and",
    }

    pipeline = sync(
        "pitchly", sandbox, workdir, resources=["sales__deals"], tables={deals: {"filter": won}}
    )

    truth, _ = expected_rows(sandbox, deals)
    wanted = [row for row in truth if row.get("stage") == "Closed Won"]
    loaded = warehouse_rows(pipeline, workdir, "sales__deals")
    assert 0 < len(wanted) < len(truth)
    assert not diff_table(wanted, loaded, "id")


def test_a_changed_filter_reloads_the_table_and_a_filter_matching_nothing_empties_it(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    tables = tables_by_name(sandbox)
    deals, matters = tables["Deals"]["id"], tables["Matters"]["id"]
    resources = ["sales__deals", "legal__matters"]
    sync("pitchly", sandbox, workdir, resources=resources)
    won = {"conditions": [condition(field_id(sandbox, deals, "Stage"), "is", ["Closed Won"])]}
    nothing = {"conditions": [condition(field_id(sandbox, matters, "Title"), "is", "no such")]}

    pipeline = sync(
        "pitchly",
        sandbox,
        workdir,
        resources=resources,
        tables={deals: {"filter": won}, matters: {"filter": nothing}},
    )

    loaded = warehouse_rows(pipeline, workdir, "sales__deals")
    assert loaded and {row["stage"] for row in loaded} == {"Closed Won"}
    assert warehouse_rows(pipeline, workdir, "legal__matters") == []


def test_tables_can_be_renamed_or_excluded_and_keep_their_name_afterwards(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    tables = tables_by_name(sandbox)
    settings = {
        tables["Deals"]["id"]: {"name": "deals"},
        "legal__matters": {"include": False},  # by its default name
    }

    first = sync("pitchly", sandbox, workdir, tables=settings)

    assert "deals" in first.default_schema.data_table_names()
    assert {"sales__deals", "legal__matters"}.isdisjoint(first.default_schema.data_table_names())
    again = sync("pitchly", sandbox, workdir, resources=["sales__deals"])  # the setting is gone
    assert "sales__deals" not in again.default_schema.data_table_names()
    assert_table_equals_truth(sandbox, again, workdir, tables["Deals"]["id"], "deals")


def test_unknown_resources_and_table_settings_fail_naming_what_exists(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown resources \['sales__leads'\]"):
        sync("pitchly", sandbox, workdir, resources=["sales__leads"])
    with pytest.raises(ConfigurationError, match="'sales__leads'.*neither a table id"):
        sync("pitchly", sandbox, workdir, tables={"sales__leads": {"include": False}})


# --- names --------------------------------------------------------------------------------------


def test_a_renamed_pitchly_table_keeps_its_warehouse_table_and_new_names_never_collide() -> None:
    remembered = {"wks1|tblA": "sales__pipeline", "wks1|tblGone": "sales__leads"}
    defaults = {
        "wks1|tblA": "sales__pipeline_2025",  # renamed in Pitchly
        "wks1|tblB": "sales__pipeline",  # a new table under the old name
        "wks1|tblC": "sales__leads",  # the name of a table deleted since: its rows remain
        "wks1|tblD": "sales__deals",
    }
    names = assign_table_names(defaults, remembered, configured={"wks1|tblD": "deals"})
    assert names == {
        "wks1|tblA": "sales__pipeline",
        "wks1|tblB": "sales__pipeline_tblb",
        "wks1|tblC": "sales__leads_tblc",
        "wks1|tblD": "deals",
    }


def test_field_names_become_unique_snake_case_columns_in_field_order() -> None:
    fields = [
        {"id": "w|fldAAAAAA1", "name": "Deal Size", "type": "number"},
        {"id": "w|fldBBBBBB2", "name": "deal_size", "type": "text"},
        {"id": "w|fldCCCCCC3", "name": "ID", "type": "text"},
        {"id": "w|fldDDDDDD4", "name": "Größe", "type": "currency"},
        {"id": "w|fldEEEEEE5", "name": "客户", "type": "attachment"},
        {"id": "w|fldFFFFFF6", "name": "Größe Currency", "type": "text"},
    ]
    layout = column_layout(fields, {f["id"]: f for f in fields})
    names = {fid: [c.name for c in columns] for fid, columns in layout.items()}
    assert names == {
        "w|fldAAAAAA1": ["deal_size"],
        "w|fldBBBBBB2": ["deal_size_bbbbb2"],
        "w|fldCCCCCC3": ["id_ccccc3"],  # `id` is the record id
        "w|fldDDDDDD4": ["grosse", "grosse__currency"],
        "w|fldEEEEEE5": ["field_eeeee5", "field_eeeee5__mime_type", "field_eeeee5__size"],
        "w|fldFFFFFF6": ["grosse_currency"],
    }
    assert identifier("Łódź Café", "x") == "lodz_cafe"


def test_names_past_63_bytes_are_cut_with_the_id_and_stay_unique() -> None:
    long = "Quarterly revenue forecast adjusted for seasonal effects and currency moves in"
    fields = [
        {"id": "w|fldAAAAAA1", "name": f"{long} EMEA", "type": "text"},
        {"id": "w|fldBBBBBB2", "name": f"{long} APAC", "type": "currency"},
        {"id": "w|fldCCCCCC3", "name": "Größe " * 20, "type": "formula"},
        {"id": "w|fldDDDDDD4", "name": "short", "type": "text"},
    ]
    configured = {"w|fldDDDDDD4": "client name " * 8}
    layout = column_layout(fields, {f["id"]: f for f in fields}, configured)
    names = {fid: [c.name for c in columns] for fid, columns in layout.items()}
    assert names == {
        "w|fldAAAAAA1": ["quarterly_revenue_forecast_adjusted_for_seasonal_effects_aaaaa1"],
        "w|fldBBBBBB2": [  # room for `__currency`
            "quarterly_revenue_forecast_adjusted_for_season_bbbbb2",
            "quarterly_revenue_forecast_adjusted_for_season_bbbbb2__currency",
        ],
        "w|fldCCCCCC3": [  # room for `__string_value`
            "grosse_grosse_grosse_grosse_grosse_grosse_ccccc3",
            "grosse_grosse_grosse_grosse_grosse_grosse_ccccc3__string_value",
        ],
        "w|fldDDDDDD4": ["client_name_client_name_client_name_client_name_client_n_ddddd4"],
    }
    every = [name for columns in names.values() for name in columns]
    assert all(len(name.encode()) <= 63 for name in every), every
    workspace = {"id": "wks1", "name": "Sales and Marketing Operations EMEA"}
    table = {"id": "wks1|tblXYZ123", "name": "Pipeline review for the quarterly board meeting"}
    name = default_table_name(workspace, table)
    assert len(name.encode()) <= 63 and name.endswith("_xyz123"), name
    twins = assign_table_names({"a|tblXYZ123": name, "b|tblXYZ123": name}, {}, {})
    assert len(set(twins.values())) == 2 and all(len(n) <= 63 for n in twins.values()), twins


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "grants"),
    [
        ({"auth_mode": "jwt", "workspace_ids": None}, []),
        (
            {"auth_mode": "client_credentials", "organization_id": ORGANIZATION_ID},
            ["client_credentials"],
        ),
        ({"auth_mode": "refresh_token", "refresh_token": INITIAL_REFRESH_TOKEN}, ["refresh_token"]),
    ],
    ids=["jwt", "client_credentials", "refresh_token"],
)
def test_each_auth_mode_loads_the_tables(
    refreshable: SandboxProcess, workdir: Path, settings: dict[str, Any], grants: list[str]
) -> None:
    sandbox = refreshable
    if settings["auth_mode"] == "refresh_token":
        settings = {**settings, "refresh_token_path": str(workdir / "secrets" / "pitchly.json")}

    pipeline = sync("pitchly", sandbox, workdir, resources=["sales__companies"], **settings)

    assert token_grants(sandbox) == grants
    companies = tables_by_name(sandbox)["Companies"]["id"]
    assert_table_equals_truth(sandbox, pipeline, workdir, companies, "sales__companies")


def test_jwt_workspace_ids_limit_the_catalog_to_those_workspaces(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    legal = next(w["id"] for w in sandbox.truth(API, "workspaces") if w["name"] == "Legal")

    pipeline = sync("pitchly", sandbox, workdir, workspace_ids=[legal])

    loaded = set(pipeline.default_schema.data_table_names())
    assert {"legal__clients", "legal__matters"} <= loaded
    assert not {"sales__deals", "archive__employees"} & loaded


def test_the_rotating_refresh_token_survives_two_consecutive_runs(
    refreshable: SandboxProcess, workdir: Path
) -> None:
    sandbox = refreshable
    store = workdir / "private" / "pitchly-refresh-token.json"
    settings = {
        "auth_mode": "refresh_token",
        "refresh_token": INITIAL_REFRESH_TOKEN,
        "refresh_token_path": str(store),
        "resources": ["legal__clients"],
    }

    sync("pitchly", sandbox, workdir, **settings)
    first = orjson.loads(store.read_bytes())
    sync("pitchly", sandbox, workdir, **settings)  # the initial token died in the first run
    second = orjson.loads(store.read_bytes())

    assert token_grants(sandbox) == ["refresh_token", "refresh_token"]
    [saved_first] = [entry["refresh_token"] for entry in first.values()]
    [saved_second] = [entry["refresh_token"] for entry in second.values()]
    assert len({INITIAL_REFRESH_TOKEN, saved_first, saved_second}) == 3
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    for secret in (saved_first, saved_second, INITIAL_REFRESH_TOKEN, CLIENT_SECRET):
        assert not files_containing(workdir, secret, skip=store), secret


def test_check_authenticates_and_says_what_it_sees(sandbox: SandboxProcess, workdir: Path) -> None:
    result = lxp_sync("check", "pitchly", env=pitchly_env(sandbox, workdir), cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "pitchly: ok, jwt credentials accepted; 3 workspaces, 7 tables (5 ready)" in (
        result.stdout
    )


def test_a_wrong_client_secret_fails_in_one_line(sandbox: SandboxProcess, workdir: Path) -> None:
    wrong = "plys_wrong-but-secret-0123456789"
    jwt_line = failed_run_line(
        pitchly_env(sandbox, workdir, SOURCES__PITCHLY__CLIENT_SECRET=wrong), workdir, wrong
    )
    assert "pitchly.workspaces: the API refused the credentials: Invalid access token" in jwt_line
    assert "`client_secret`" in jwt_line

    install_env = pitchly_env(
        sandbox,
        workdir,
        SOURCES__PITCHLY__CLIENT_SECRET=wrong,
        SOURCES__PITCHLY__AUTH_MODE="client_credentials",
        SOURCES__PITCHLY__ORGANIZATION_ID=ORGANIZATION_ID,
    )
    line = failed_run_line(install_env, workdir, wrong)
    assert "pitchly.token: the OAuth2 server refused the credentials: invalid_client: " in line
    assert "Please provide a valid 'client_secret'." in line and "HTTP 401" in line


def test_an_expired_jwt_fails_in_one_line_pointing_at_the_clock(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = pitchly_env(sandbox, workdir, SOURCES__PITCHLY__CLOCK_OFFSET_S="-3600")

    line = failed_run_line(env, workdir)

    assert "The access token has expired." in line
    assert "this machine's clock" in line


def test_a_spent_refresh_token_fails_in_one_line_with_invalid_grant(
    refreshable: SandboxProcess, workdir: Path
) -> None:
    dead = "plyr_spent-already-0123456789"
    env = pitchly_env(
        refreshable,
        workdir,
        SOURCES__PITCHLY__AUTH_MODE="refresh_token",
        SOURCES__PITCHLY__REFRESH_TOKEN=dead,
        SOURCES__PITCHLY__REFRESH_TOKEN_PATH=str(workdir / "private" / "pitchly.json"),
    )

    line = failed_run_line(env, workdir, dead)

    assert "invalid_grant: Please provide a valid 'refresh_token'." in line
    assert "HTTP 400" in line and "authorize the app again" in line


def test_refresh_token_mode_without_a_path_to_keep_the_token_is_a_setting_error(
    refreshable: SandboxProcess, workdir: Path
) -> None:
    env = pitchly_env(
        refreshable,
        workdir,
        SOURCES__PITCHLY__AUTH_MODE="refresh_token",
        SOURCES__PITCHLY__REFRESH_TOKEN=INITIAL_REFRESH_TOKEN,
    )

    result = lxp_sync("run", "pitchly", env=env, cwd=workdir)

    assert result.returncode == 2
    assert "refresh_token_path" in error_line(result.stderr)
    assert token_grants(refreshable) == [], "the refresh token must not be spent"


def test_the_jwt_carries_the_documented_claims_and_is_minted_again_before_it_expires() -> None:
    auth = PitchlyJWTAuth(
        CLIENT_ID, CLIENT_SECRET, lifetime_s=2, workspace_ids=["wks1"], permissions=["teams:read"]
    )
    first = auth.token()
    with warnings.catch_warnings():  # the sandbox's secret is shorter than 32 bytes
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        claims = jwt.decode(first, CLIENT_SECRET, algorithms=["HS256"])
    assert claims["iss"] == CLIENT_ID and claims["exp"] - claims["iat"] == 2
    assert claims["workspace_ids"] == ["wks1"] and claims["permissions"] == ["teams:read"]
    assert auth.token() == first
    time.sleep(1.6)  # a 2 s token is renewed after 1.5 s

    assert auth.token() != first
    assert auth.tokens_fetched == 2


def test_rows_instead_of_arrow_tables_load_the_same_typed_values(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pitchly", sandbox, workdir, resources=["sales__deals"], arrow=False)

    deals = tables_by_name(sandbox)["Deals"]["id"]
    assert_table_equals_truth(sandbox, pipeline, workdir, deals, "sales__deals")


def test_table_settings_from_config_toml_rename_filter_and_exclude(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    tables = tables_by_name(sandbox)
    deals = tables["Deals"]["id"]
    stage = field_id(sandbox, deals, "Stage")
    (workdir / ".dlt").mkdir()
    (workdir / ".dlt" / "config.toml").write_text(
        f"""
[sources.pitchly.tables."{deals}"]
name = "won_deals"
columns = {{ "{stage}" = "deal_stage" }}

[[sources.pitchly.tables."{deals}".filter.conditions]]
left = {{ type = "field", value = "{stage}" }}
comparison = {{ operator = "is" }}
right = {{ type = "input", value = ["Closed Won"] }}

[sources.pitchly.tables.legal__matters]
include = false
"""
    )

    result = lxp_sync("run", "pitchly", env=pitchly_env(sandbox, workdir), cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "won_deals" in result.stdout and "legal__matters" not in result.stdout
    loaded = duckdb_rows(str(workdir / "lxp_sync.duckdb"), "pitchly", "won_deals")
    truth, _ = expected_rows(sandbox, deals)
    assert 0 < len(loaded) == sum(row.get("stage") == "Closed Won" for row in truth)
    assert {row["deal_stage"] for row in loaded} == {"Closed Won"}
