"""Every source on every destination: DuckDB, PostgreSQL and BigQuery (the emulator).

The same loads must give the same tables everywhere: a full sync equals the sandbox's truth row by
row, an incremental run after changes too (no key twice), a field the API adds becomes a column
(NULL for rows not read again), and each column has the destination's type for what dlt inferred
(timestamps with time zone, booleans, numbers, JSON; lists as child tables). The truth
comparisons are the sources' own (their test modules), reading rows through `destination.rows()`,
which returns the same Python values from every warehouse.

Each source loads the resources that together have every shape it produces (types, nested
objects, lists, JSON, both incremental paths), not all of them: a BigQuery load job takes the
emulator a second, and every resource on DuckDB is what the sources' own suites test.

`scripts/test -k postgres` (or `-m postgres`, `-m "not bigquery"`) runs one destination's share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
import orjson
import pytest
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.plusplus_rest import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests import test_pitchly as pitchly
from tests import test_plusplus_graphql as plusplus_graphql
from tests import test_plusplus_rest as plusplus_rest
from tests import test_pluvo as pluvo
from tests.compare import Rows, diff_table
from tests.helpers import arrow_tables, error_line, lxp_sync, sync_to
from tests.support.warehouse import Warehouse

# Rows across all entities of an API: one page or two per resource, enough for every shape.
ROWS = 600

# dlt's data types as each destination names them (information_schema).
DESTINATION_TYPES = {
    "duckdb": {
        "text": "VARCHAR",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
        "date": "DATE",
        "json": "JSON",
        "decimal": "DECIMAL(38,18)",
    },
    "postgres": {
        "text": "character varying",
        "bigint": "bigint",
        "double": "double precision",
        "bool": "boolean",
        "timestamp": "timestamp with time zone",
        "date": "date",
        "json": "jsonb",
        "decimal": "numeric",
    },
    "bigquery": {
        "text": "STRING",
        "bigint": "INT64",
        "double": "FLOAT64",
        "bool": "BOOL",
        "timestamp": "TIMESTAMP",  # always with a time zone in BigQuery
        "date": "DATE",
        "json": "STRING",  # BigQuery says JSON; the emulator's INFORMATION_SCHEMA says STRING
        "decimal": "NUMERIC",  # dlt creates BIGNUMERIC(38,18); the emulator reports NUMERIC
    },
}


@dataclass(frozen=True)
class Drift:
    """A text field that the API adds, the text column it becomes, and which rows carry it."""

    key: str
    # table -> the column the new field becomes
    columns: dict[str, str]
    # adds the field and changes some rows: table -> the keys of the rows the next run reads
    start: Callable[[SandboxProcess], dict[str, set[Any]]]
    # the API as it was (after a failed test too)
    stop: Callable[[SandboxProcess], None]
    # a drift table's truth rows, keyed, with column names as loaded
    truth: Callable[[SandboxProcess, str], dict[Any, dict[str, Any]]]


@dataclass(frozen=True)
class SourceCase:
    """How the suite checks one source: its truth comparison, changes, types and drift."""

    # the resources loaded: between them, every shape the source produces
    resources: list[str]
    # every table equals the truth; `changed`: after `change` (copies may lag, see the source)
    equals_truth: Callable[[SandboxProcess, Rows, bool], None]
    # inserts and updates (and deletes where the source keeps them as rows) in the sandbox
    change: Callable[[SandboxProcess], None]
    # table -> column -> the dlt data type the source must give it: one of each kind it has
    types: dict[str, dict[str, str]]
    drift: Drift | None = None
    # the tables dlt gets as Arrow tables (the others as rows); None: not checked here
    arrow: set[str] | None = None


# a server-side cursor with a child table, a full scan, a created cursor with a refresh window
REST_RESOURCES = ["content_items", "users", "assignments"]


def _rest_equals_truth(sandbox: SandboxProcess, rows: Rows, changed: bool) -> None:
    ignore = plusplus_rest.EMBEDDED_COPIES if changed else frozenset()
    plusplus_rest.assert_warehouse_equals_truth(
        sandbox, rows, ignore=ignore, resources=REST_RESOURCES
    )


def _rest_change(sandbox: SandboxProcess) -> None:
    api = "plusplus_rest"
    # updates first, so that they touch rows of the first run, not the rows inserted here
    for entity in ["content_items", "users"]:
        sandbox.mutate(api=api, entity=entity, update=3)
        sandbox.mutate(api=api, entity=entity, insert=2)
    # a late state change on old rows, inside the refresh window, and new rows
    sandbox.mutate(api=api, entity="assignments", update=2, created_within_days=5)
    sandbox.mutate(api=api, entity="assignments", insert=3)


# a server-side filter, JSON and two child tables; a client-side filter; dates
GRAPHQL_RESOURCES = ["events", "event_types", "assignments"]


def _graphql_equals_truth(sandbox: SandboxProcess, rows: Rows, changed: bool) -> None:
    for connection in GRAPHQL_RESOURCES:
        plusplus_graphql.assert_connection_equals_truth(sandbox, rows, connection)


def _graphql_change(sandbox: SandboxProcess) -> None:
    # a server-side filter and a client-side one (assignments: from Arrow tables); deletes are
    # soft (rows marked `is_deleted`)
    for connection in GRAPHQL_RESOURCES:
        sandbox.mutate(api="plusplus_graphql", entity=connection, update=3)
        sandbox.mutate(api="plusplus_graphql", entity=connection, insert=2, delete=1)


def _graphql_drift(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    sandbox.configure(api="plusplus_graphql", schema_drift=True)
    return {
        "events": set(sandbox.mutate(api="plusplus_graphql", entity="events", update=5)["updated"])
    }


def _graphql_drift_truth(sandbox: SandboxProcess, table: str) -> dict[Any, dict[str, Any]]:
    return {row["pk"]: row for row in sandbox.truth("plusplus_graphql", table)}


# lists as child tables, the tables that drift, numbers
PLUVO_RESOURCES = ["users", "trainings", "events"]


def _pluvo_equals_truth(sandbox: SandboxProcess, rows: Rows, changed: bool) -> None:
    pluvo.assert_warehouse_equals_truth(sandbox, rows, PLUVO_RESOURCES)


def _pluvo_change(sandbox: SandboxProcess) -> None:
    # no deletes: Pluvo has no deletions feed, a deleted row stays (tests/test_pluvo.py)
    for resource in PLUVO_RESOURCES:
        sandbox.mutate(api="pluvo", entity=pluvo.CONNECTIONS[resource], update=3)
        sandbox.mutate(api="pluvo", entity=pluvo.CONNECTIONS[resource], insert=2)


def _pluvo_drift(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    sandbox.configure(api="pluvo", schema_drift=True)
    return {
        table: set(
            sandbox.mutate(api="pluvo", entity=pluvo.CONNECTIONS[table], update=5)["updated"]
        )
        for table in ["users", "trainings"]
    }


def _pluvo_drift_truth(sandbox: SandboxProcess, table: str) -> dict[Any, dict[str, Any]]:
    truth = sandbox.truth("pluvo", pluvo.CONNECTIONS[table])
    return {row["id"]: pluvo.as_loaded(row) for row in truth}


# typed fields of every kind, references and lookups between tables, a table without Updated At
PITCHLY_RESOURCES = ["sales__companies", "sales__deals", "legal__matters"]
PITCHLY_DRIFT_FIELD = "Region"


def _pitchly_table_id(sandbox: SandboxProcess, table: str) -> str:
    name = next(name for name, loaded in pitchly.TABLES.items() if loaded == table)
    return pitchly.tables_by_name(sandbox)[name]["id"]


def _pitchly_truth(sandbox: SandboxProcess, table: str) -> list[dict[str, Any]]:
    return pitchly.expected_rows(sandbox, _pitchly_table_id(sandbox, table))[0]


def _pitchly_equals_truth(sandbox: SandboxProcess, rows: Rows, changed: bool) -> None:
    for table in PITCHLY_RESOURCES:
        truth, types = pitchly.expected_rows(sandbox, _pitchly_table_id(sandbox, table))
        json_columns = [column for column, kind in types.items() if kind == "json"]
        loaded = []
        for row in rows(table):  # JSON values as the canonical text the truth has
            text = {
                c: orjson.dumps(row[c]).decode() for c in json_columns if row.get(c) is not None
            }
            loaded.append({**row, **text})
        assert truth, table
        problems = diff_table(truth, loaded, "id")
        assert not problems, f"{table}: {problems}"


def _pitchly_change(sandbox: SandboxProcess) -> None:
    # (table, inserts, updates, deletes): a deleted company also changes the deals that
    # referenced it; Matters has no Updated At field, so it is read in full
    for table, insert, update, delete in [
        ("sales__deals", 2, 3, 1),
        ("sales__companies", 0, 2, 1),
        ("legal__matters", 1, 2, 1),
    ]:
        entity = f"records:{_pitchly_table_id(sandbox, table)}"
        sandbox.mutate(api="pitchly", entity=entity, insert=insert, update=update, delete=delete)


def _pitchly_drift(sandbox: SandboxProcess) -> dict[str, set[Any]]:
    deals = _pitchly_table_id(sandbox, "sales__deals")
    field = {"name": PITCHLY_DRIFT_FIELD, "type": "text"}
    sandbox.mutate(api="pitchly", entity=f"fields:{deals}", add=field)
    # records of before have no value in a new field; new records do
    inserted = sandbox.mutate(api="pitchly", entity=f"records:{deals}", insert=4)["inserted"]
    return {"sales__deals": set(inserted)}


def _pitchly_drift_stop(sandbox: SandboxProcess) -> None:
    deals = _pitchly_table_id(sandbox, "sales__deals")
    for field in sandbox.truth("pitchly", f"fields:{deals}"):
        if field["name"] == PITCHLY_DRIFT_FIELD:
            sandbox.mutate(api="pitchly", entity=f"fields:{deals}", remove=field["id"])


def _pitchly_drift_truth(sandbox: SandboxProcess, table: str) -> dict[Any, dict[str, Any]]:
    return {row["id"]: row for row in _pitchly_truth(sandbox, table)}


CASES: dict[str, SourceCase] = {
    "plusplus_rest": SourceCase(
        resources=REST_RESOURCES,
        equals_truth=_rest_equals_truth,
        change=_rest_change,
        types={
            "content_items": {
                "modified": "timestamp",
                "is_archived": "bool",
                "avg_feedback_rating": "double",
                "duration_minutes": "bigint",
                "public_id": "text",
            },
            "assignments": {"due_date": "date", "completed_datetime": "timestamp"},
            "content_items__groups": {"public_id": "text", "name": "text"},
        },
    ),
    "plusplus_graphql": SourceCase(
        resources=GRAPHQL_RESOURCES,
        equals_truth=_graphql_equals_truth,
        change=_graphql_change,
        types={
            "events": {
                "modified": "timestamp",
                "is_online": "bool",
                "price": "double",
                "enrollment_count": "bigint",
                "custom_fields": "json",
                "registration_form": "json",  # JSONString
                "event_type__pk": "bigint",
            },
            "assignments": {"due_date": "date"},
            "events__tags": {"value": "text"},
            "events__presenters": {"pk": "bigint"},
            "event_types__tags": {"value": "text"},
        },
        drift=Drift(
            key="pk",
            columns={"events": "capacity_note"},
            start=_graphql_drift,
            stop=lambda sandbox: sandbox.configure(api="plusplus_graphql", schema_drift=False),
            truth=_graphql_drift_truth,
        ),
        # every table, child tables and JSON fields included
        arrow={"assignments", "event_types", "event_types__tags"}
        | {"events", "events__presenters", "events__tags"},
    ),
    "pluvo": SourceCase(
        resources=PLUVO_RESOURCES,
        equals_truth=_pluvo_equals_truth,
        change=_pluvo_change,
        types={
            "events": {
                "updated_at": "timestamp",
                "score": "double",
                "progress": "bigint",
                "user__id": "text",
            },
            "users": {"is_active": "bool", "last_login_at": "timestamp"},
            "users__roles": {"value": "text"},
            "trainings": {
                "passing_score": "double",
                "is_mandatory": "bool",
                "settings": "json",  # JSON
                "metadata": "json",  # JSONString
            },
            "trainings__tags": {"value": "text"},
        },
        drift=Drift(
            key="id",
            columns={"users": "department", "trainings": "category"},
            start=_pluvo_drift,
            stop=lambda sandbox: sandbox.configure(api="pluvo", schema_drift=False),
            truth=_pluvo_drift_truth,
        ),
        # every table, child tables and JSON fields included
        arrow={"events", "users", "users__roles", "trainings", "trainings__tags"},
    ),
    "pitchly": SourceCase(
        resources=PITCHLY_RESOURCES,
        equals_truth=_pitchly_equals_truth,
        change=_pitchly_change,
        types={
            "sales__deals": {
                "updated_at": "timestamp",
                "won": "bool",
                "deal_size": "decimal",
                "partners": "json",
                "amount__currency": "text",
            },
            "sales__companies": {
                "industries": "json",
                "logo__size": "bigint",
                "public": "bool",
                "market_cap": "decimal",
            },
            "legal__matters": {"opened": "timestamp", "fee": "decimal"},
        },
        drift=Drift(
            key="id",
            columns={"sales__deals": PITCHLY_DRIFT_FIELD.lower()},
            start=_pitchly_drift,
            stop=_pitchly_drift_stop,
            truth=_pitchly_drift_truth,
        ),
    ),
}
DRIFTING = [name for name, case in CASES.items() if case.drift]
# The emulator's INFORMATION_SCHEMA (and table metadata) miss a column added by ALTER TABLE,
# although `SELECT *` returns it: the new column's type cannot be read back there.
STALE_COLUMN_LISTS = {"bigquery"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """A small sandbox that this module's tests only read."""
    with SandboxProcess(rows=ROWS, seed=21) as process:
        yield process


@pytest.fixture(scope="module")
def changing() -> Iterator[SandboxProcess]:
    """A small sandbox that tests change. Each compares with the truth as it is after its own
    runs, so the changes of other tests do not matter; switches are turned back off."""
    with SandboxProcess(rows=ROWS, seed=22) as process:
        yield process


def reader(destination: Warehouse, pipeline: Pipeline) -> Rows:
    """The truth comparisons' view of loaded tables: normalized rows, dlt's columns included.

    Each table is read once (the emulator takes a while per query): read after the last run."""
    read: dict[str, list[dict[str, Any]]] = {}

    def rows(table: str) -> list[dict[str, Any]]:
        if table not in read:
            read[table] = destination.rows(pipeline, table, dlt_columns=True)
        return read[table]

    return rows


def root_tables(pipeline: Pipeline) -> list[str]:
    return [t for t in pipeline.default_schema.data_table_names() if "__" not in t]


def assert_no_duplicate_keys(pipeline: Pipeline, read: Rows) -> None:
    schema = pipeline.default_schema
    for table in root_tables(pipeline):
        keys = [c for c, hint in schema.get_table_columns(table).items() if hint.get("primary_key")]
        assert keys, f"{table}: no primary key"
        rows = read(table)
        values = [tuple(row[k] for k in keys) for row in rows]
        assert len(values) == len(set(values)), f"{table}: a key loaded twice"


def assert_destination_types(
    destination: Warehouse, pipeline: Pipeline, expected: dict[str, dict[str, str]]
) -> None:
    """The source types the named columns as `expected`, and every column of every table has the
    destination's type for its dlt type; timestamps keep their time zone."""
    schema = pipeline.default_schema
    names = DESTINATION_TYPES[destination.name]
    for table, columns in expected.items():
        inferred = {c: schema.get_table_columns(table)[c]["data_type"] for c in columns}
        assert inferred == columns, table
    seen = set()
    for table in schema.data_table_names():
        hints = schema.get_table_columns(table)
        found = destination.column_types(pipeline, table)
        assert set(found) == set(hints), f"{table}: columns differ from dlt's schema"
        for column, hint in hints.items():
            seen.add(hint["data_type"])
            assert hint.get("timezone", True), f"{table}.{column}: a timestamp without time zone"
            want = names[hint["data_type"]]
            assert found[column] == want, f"{table}.{column}: {found[column]}, want {want}"
    assert seen >= {t for columns in expected.values() for t in columns.values()}


def staged_rows(pipeline: Pipeline) -> dict[str, int]:
    """Rows left in the staging dataset, per table dlt staged (merges, atomic replaces)."""
    counts = {}
    with pipeline.sql_client() as client, client.with_staging_dataset():
        for table in pipeline.default_schema.data_table_names():
            qualified = client.make_qualified_table_name(table)
            try:
                counts[table] = int(client.execute_sql(f"SELECT COUNT(*) FROM {qualified}")[0][0])
            except Exception:  # a table that was not staged
                continue
    return counts


# --- Full sync -----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", CASES)
def test_full_sync_equals_truth_and_columns_get_the_destination_types(
    destination: Warehouse, sandbox: SandboxProcess, source: str
) -> None:
    case = CASES[source]
    pipeline = sync_to(destination, source, sandbox, resources=case.resources)

    read = reader(destination, pipeline)
    case.equals_truth(sandbox, read, False)
    assert_no_duplicate_keys(pipeline, read)
    assert_destination_types(destination, pipeline, case.types)
    # the rows went through staging tables, which keep no copy of them after the load
    staged = staged_rows(pipeline)
    assert staged and set(staged.values()) == {0}, staged
    if case.arrow is not None:
        assert arrow_tables(pipeline) == case.arrow


def test_pitchly_numbers_keep_every_digit(destination: Warehouse, sandbox: SandboxProcess) -> None:
    """Integers past 2**53 and decimals with more digits than a double holds, unchanged."""
    table = "sales__companies"
    pipeline = sync_to(destination, "pitchly", sandbox, resources=[table])

    truth = {row["id"]: row for row in _pitchly_truth(sandbox, table)}
    rows = destination.rows(pipeline, table)
    assert sorted(row["id"] for row in rows) == sorted(truth)
    columns = ["employees", "market_cap", "growth_rate"]
    for row in rows:
        for column in columns:
            want, got = truth[row["id"]].get(column), row[column]
            assert got == want, f"{row['id']}.{column}: {got!r}, want {want!r}"
            assert got is None or isinstance(got, Decimal), f"{column}: {got!r}"
    big = [
        row["market_cap"] for row in rows if row["market_cap"] and abs(row["market_cap"]) > 2**53
    ]
    long = [row["growth_rate"] for row in rows if row["growth_rate"] is not None]
    assert big and any(len(value.normalize().as_tuple().digits) > 17 for value in long)


# two Pitchly field names past PostgreSQL's 63 bytes that differ only at their end
LONG_NAME = "Quarterly revenue forecast adjusted for seasonal effects and currency moves in"


@pytest.fixture
def long_fields(changing: SandboxProcess) -> Iterator[dict[str, str]]:
    """Two fields with long names in Deals (field id -> name), and records that have them."""
    deals = _pitchly_table_id(changing, "sales__deals")
    added = {}
    for suffix, kind in (("EMEA", "text"), ("APAC", "number")):
        spec = {"name": f"{LONG_NAME} {suffix}", "type": kind}
        field = changing.mutate(api="pitchly", entity=f"fields:{deals}", add=spec)["added"]
        added[field["id"]] = field["name"]
    changing.mutate(api="pitchly", entity=f"records:{deals}", insert=3)
    yield added
    for field_id in added:
        changing.mutate(api="pitchly", entity=f"fields:{deals}", remove=field_id)


def test_pitchly_field_names_past_63_bytes_land_as_distinct_stable_columns(
    destination: Warehouse, changing: SandboxProcess, long_fields: dict[str, str]
) -> None:
    table = "sales__deals"
    sync_to(destination, "pitchly", changing, resources=["fields", table])
    pipeline = sync_to(destination, "pitchly", changing, resources=["fields", table])  # again

    fields = {row["id"]: row for row in destination.rows(pipeline, "fields")}
    columns = {fid: fields[fid]["columns"] for fid in long_fields}
    names = [name for found in columns.values() for name in found]
    assert len(set(names)) == len(names) == 2, columns
    assert all(len(name.encode()) <= 63 for name in names), names
    found = destination.column_types(pipeline, table)
    assert set(names) <= set(found), f"{names} not among the columns {sorted(found)}"
    records = changing.truth("pitchly", f"records:{_pitchly_table_id(changing, table)}", True)
    truth = {n["id"]: {e["fieldId"]: e["value"]["val"] for e in n["fields"]} for n in records}
    filled = dict.fromkeys(names, 0)
    for row in destination.rows(pipeline, table):
        for field_id, [column] in columns.items():
            want = truth[row["id"]].get(field_id)
            assert row[column] == want, f"{row['id']}.{column}"
            filled[column] += want is not None
    assert min(filled.values()) >= 3, filled  # the new records have both (and older ones may)


# --- Incremental ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", CASES)
def test_incremental_run_after_changes_equals_truth_without_duplicate_keys(
    destination: Warehouse, changing: SandboxProcess, source: str
) -> None:
    case = CASES[source]
    sync_to(destination, source, changing, resources=case.resources)
    case.change(changing)

    pipeline = sync_to(destination, source, changing, resources=case.resources)

    read = reader(destination, pipeline)
    case.equals_truth(changing, read, True)
    assert_no_duplicate_keys(pipeline, read)
    if case.arrow is not None:
        assert arrow_tables(pipeline) == case.arrow


# --- Schema drift --------------------------------------------------------------------------------


@pytest.fixture
def drift(changing: SandboxProcess, request: pytest.FixtureRequest) -> Iterator[Drift]:
    """The source's drift; the API is put back as it was after the test."""
    drift = CASES[request.node.callspec.params["source"]].drift
    assert drift is not None
    try:
        yield drift
    finally:
        drift.stop(changing)


@pytest.mark.parametrize("source", DRIFTING)
def test_a_new_api_field_becomes_a_column_that_is_null_for_rows_not_read_again(
    destination: Warehouse, changing: SandboxProcess, drift: Drift, source: str
) -> None:
    tables = list(drift.columns)
    sync_to(destination, source, changing, resources=tables)
    read_again = drift.start(changing)

    pipeline = sync_to(destination, source, changing, resources=tables)

    text = DESTINATION_TYPES[destination.name]["text"]
    for table, column in drift.columns.items():
        assert pipeline.default_schema.get_table_columns(table)[column]["data_type"] == "text"
        if destination.name not in STALE_COLUMN_LISTS:
            assert destination.column_types(pipeline, table)[column] == text, table
        truth = drift.truth(changing, table)
        rows = destination.rows(pipeline, table)
        assert sorted(row[drift.key] for row in rows) == sorted(truth), table
        for row in rows:
            key = row[drift.key]
            want = truth[key].get(column) if key in read_again[table] else None
            assert row[column] == want, f"{table} {key}.{column}"
        assert any(row[column] for row in rows), f"{table}: the test needs some values"


# --- The command ---------------------------------------------------------------------------------


def rest_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PLUSPLUS_REST__BASE_URL": f"{sandbox.url}/plusplus_rest/api/v1",
        "SOURCES__PLUSPLUS_REST__API_TOKEN": API_TOKEN,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_run_command_loads_into_postgres_with_credentials_from_the_environment(
    destination: Warehouse, sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir, **destination.env)  # DESTINATION__POSTGRES__CREDENTIALS
    pipelines = str(workdir / "pipelines")
    args = ("--destination", "postgres", "--pipelines-dir", pipelines)
    result = lxp_sync(
        "run",
        "plusplus_rest",
        "--resources",
        "groups,content_items",
        "--dataset",
        destination.dataset_name,
        *args,
        env=env,
        cwd=workdir,
    )

    assert result.returncode == 0, result.stderr
    assert f"loaded into postgres dataset {destination.dataset_name}" in result.stdout
    pipeline = dlt.attach(pipeline_name("plusplus_rest", "postgres"), pipelines_dir=pipelines)
    for table in ["groups", "content_items"]:
        loaded = destination.rows(pipeline, table)
        truth = sandbox.truth("plusplus_rest", table)
        assert not diff_table(truth, loaded, "public_id"), table
    status = lxp_sync("status", "plusplus_rest", *args, env=env, cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert "content_items: modified >=" in status.stdout


@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_failed_postgres_connection_is_one_line_without_the_password(
    destination: Warehouse, sandbox: SandboxProcess, workdir: Path
) -> None:
    password = "s3cret-Pa55word"
    server = urlsplit(destination.url)
    wrong = f"postgresql://{server.username}:{password}@{server.netloc.split('@')[-1]}/no_such_db"
    env = rest_env(sandbox, workdir, DESTINATION__POSTGRES__CREDENTIALS=wrong)

    for verbose in ([], ["-v"]):
        result = lxp_sync(
            *verbose,
            "run",
            "plusplus_rest",
            "--resources",
            "groups",
            "--destination",
            "postgres",
            env=env,
            cwd=workdir,
        )
        assert result.returncode == 1, result.stderr
        assert password not in result.stdout + result.stderr
        if not verbose:
            line = error_line(result.stderr)
            assert 'database "no_such_db" does not exist' in line, line
            assert "DESTINATION__<NAME>__CREDENTIALS" in line


def test_every_source_is_in_the_suite() -> None:
    assert set(CASES) == set(SOURCES)
