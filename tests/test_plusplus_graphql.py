"""The PlusPlus GraphQL source against the sandbox: discovery, truth, drift, incremental, deletes."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, run_source
from lxp_sync.sources.plusplus import plusplus_graphql_source
from lxp_sync_sandbox.plusplus_graphql import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import Rows, diff_child_table, diff_table, free_form_problems, table_reader
from tests.helpers import error_line, loaded_rows, lxp_sync, sync

API = "plusplus_graphql"
CONNECTIONS = [
    "assignments",
    "badges",
    "enrollments",
    "event_types",
    "events",
    "locations",
    "tags",
    "tracks",
    "users",
]
SERVER_FILTERED = ["events", "users", "enrollments"]  # they take `modified_gte`
CLIENT_SIDE = ["event_types", "tracks"]
READ_IN_FULL = ["badges"]  # `created` but no `modified`: every run reads them in full
DEPRECATED = {"events": {"duration"}, "users": {"username"}}
# free-form columns: name -> whether the API sends JSON text (JSONString) rather than JSON
JSON_COLUMNS = {"events": {"custom_fields": False, "registration_form": True}}
MAX_PAGE = 300


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rows_of(workdir: Path | Rows, table: str) -> list[dict[str, Any]]:
    return table_reader(workdir, API)(table)


def assert_connection_equals_truth(
    sandbox: SandboxProcess,
    workdir: Path | Rows,
    connection: str,
    *,
    hard_delete: bool = False,
    ignore: set[str] | None = None,
) -> None:
    """Row by row: scalars as columns, `{pk}` objects as `x__pk`, lists as child tables.

    Deprecated fields are not loaded; free-form scalars are one JSON column each.
    """
    truth = sandbox.truth(API, connection)
    assert truth, connection
    if hard_delete:
        truth = [row for row in truth if not row["is_deleted"]]
    loaded = rows_of(workdir, connection)
    deprecated = DEPRECATED.get(connection, set())
    assert not deprecated & set(loaded[0]), f"{connection}: deprecated fields were loaded"
    lists = sorted({k for row in truth for k, v in row.items() if isinstance(v, list)})
    json_columns = JSON_COLUMNS.get(connection, {})
    variants = {c for c in loaded[0] if any(c.startswith(f"{j}__v_") for j in json_columns)}
    scalars = [{k: v for k, v in row.items() if k not in {*lists, *json_columns}} for row in truth]
    ignored = {*deprecated, *json_columns, *variants, *(ignore or ())}
    problems = diff_table(scalars, loaded, "pk", ignore=frozenset(ignored))
    assert not problems, f"{connection}: {problems}"
    for column, text in json_columns.items():
        problems = free_form_problems(truth, loaded, "pk", column, text)
        assert not problems, f"{connection}: {problems}"
    for field in lists:
        children = rows_of(workdir, f"{connection}__{field}")
        assert not diff_child_table(truth, loaded, children, "pk", field), (connection, field)
        orphans = {c["_dlt_root_id"] for c in children} - {p["_dlt_id"] for p in loaded}
        assert not orphans, f"{connection}__{field}: rows of parents no longer loaded"


def keyed(table: str, rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Rows by primary key (child rows by `_dlt_id`), without the load id."""
    key = "_dlt_id" if "__" in table else "pk"
    return {row[key]: {k: v for k, v in row.items() if k != "_dlt_load_id"} for row in rows}


def without_dlt_id(rows: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {key: {c: v for c, v in row.items() if c != "_dlt_id"} for key, row in rows.items()}


def cursor_value(row: dict[str, Any]) -> datetime:
    """The row's cursor: `modified`, or `created` for a type without it (badges)."""
    return moment(row.get("modified") or row["created"])


def last_modified(sandbox: SandboxProcess, connection: str) -> datetime:
    return max(cursor_value(row) for row in sandbox.truth(API, connection))


def requests_by_connection(sandbox: SandboxProcess) -> dict[str, list[dict[str, Any]]]:
    """The arguments of every query, per root field (from the sandbox's request log)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in sandbox.requests(API):
        extra = entry["extra"]
        for root in extra.get("root_fields") or []:
            out.setdefault(root, []).append((extra.get("args") or {}).get(root) or {})
    return out


def cursor_state(pipeline: Any, connection: str) -> Any:
    resources = pipeline.state["sources"][API]["resources"]
    return resources[connection]["incremental"]["modified"]["last_value"]


def test_full_sync_loads_every_connection_found_by_introspection_and_equals_truth(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync(API, sandbox, workdir)

    schema = pipeline.default_schema
    assert sorted(t for t in schema.data_table_names() if "__" not in t) == CONNECTIONS
    for connection in CONNECTIONS:
        assert_connection_equals_truth(sandbox, workdir, connection)
    deleted = [row for row in rows_of(workdir, "events") if row["is_deleted"]]
    assert deleted, "soft-deleted rows are kept by default"
    events = schema.get_table_columns("events")
    assert events["modified"]["data_type"] == "timestamp"
    assert events["event_type__pk"]["data_type"] == "bigint"
    assert events["custom_fields"]["data_type"] == "json"
    assert events["registration_form"]["data_type"] == "json"  # JSONString: JSON text, parsed
    assert events["registration_form__v_text"]["data_type"] == "text"  # a lone string
    assert events["status"]["data_type"] == "text"  # an enum
    assert events["pk"].get("primary_key")
    assert schema.get_table_columns("assignments")["due_date"]["data_type"] == "date"
    assert schema.get_table_columns("events__presenters")["pk"]["data_type"] == "bigint"
    assert "events__tags" in schema.tables and "users__tags" in schema.tables


@pytest.mark.parametrize("page_size", [7, 1000])
def test_page_size_is_clamped_to_300_and_any_size_pages_correctly(
    sandbox: SandboxProcess, workdir: Path, page_size: int
) -> None:
    sandbox.clear_requests()
    sync(API, sandbox, workdir, resources=["tags"], page_size=page_size)

    assert_connection_equals_truth(sandbox, workdir, "tags")
    pages = requests_by_connection(sandbox)["tags"]
    size = min(page_size, MAX_PAGE)
    assert {args["first"] for args in pages} == {size}
    assert len(pages) == math.ceil(len(sandbox.truth(API, "tags")) / size)


def test_schema_drift_adds_a_column_that_only_rows_read_again_fill(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    first = sync(API, sandbox, workdir)
    tables = [t for t in first.default_schema.data_table_names() if not t.startswith("_dlt")]
    before = {table: keyed(table, rows_of(workdir, table)) for table in tables}
    event_columns = set(first.default_schema.get_table_columns("events"))

    drift = sandbox.configure(api=API, schema_drift=True)
    assert drift["fields"] == {"EventType": ["capacity_note"]}
    updated = set(sandbox.mutate(api=API, entity="events", update=12)["updated"])
    pipeline = sync(API, sandbox, workdir)

    columns = pipeline.default_schema.get_table_columns("events")
    assert columns["capacity_note"]["data_type"] == "text"
    # the sandbox gives every event a value; only the rows this run read again carry it
    truth = {row["pk"]: row for row in sandbox.truth(API, "events")}
    after = keyed("events", rows_of(workdir, "events"))
    for pk, row in after.items():
        want = truth[pk]["capacity_note"] if pk in updated else None
        assert row["capacity_note"] == want, pk
    assert any(after[pk]["capacity_note"] for pk in updated), "the test needs some values"
    # nothing else changed: no other column, the other events, the other tables
    assert set(columns) - event_columns == {"capacity_note"}
    assert_connection_equals_truth(sandbox, workdir, "events", ignore={"capacity_note"})
    for pk, row in after.items():
        if pk not in updated:
            assert {k: v for k, v in row.items() if k != "capacity_note"} == before["events"][pk]
    for table in tables:
        if table in READ_IN_FULL:  # loaded again, the same values
            assert without_dlt_id(keyed(table, rows_of(workdir, table))) == without_dlt_id(
                before[table]
            ), table
        elif table != "events" and not table.startswith("events__"):
            assert keyed(table, rows_of(workdir, table)) == before[table], table


def test_incremental_run_after_mutations_equals_truth_by_both_paths(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync(API, sandbox, workdir)
    previous = {c: last_modified(sandbox, c) for c in CONNECTIONS}

    for connection in [*SERVER_FILTERED, *CLIENT_SIDE]:
        sandbox.mutate(api=API, entity=connection, update=4)
        sandbox.mutate(api=API, entity=connection, insert=3, delete=2)
    sandbox.clear_requests()
    pipeline = sync(API, sandbox, workdir)

    for connection in CONNECTIONS:
        assert_connection_equals_truth(sandbox, workdir, connection)
    requests = requests_by_connection(sandbox)
    assert len(requests["__schema"]) == 1, "one introspection a run"
    loaded = loaded_rows(pipeline)
    for connection in CONNECTIONS:
        truth = sandbox.truth(API, connection)
        changed = sum(cursor_value(r) > previous[connection] for r in truth)
        if connection in READ_IN_FULL:
            changed = len(truth)  # every row again: an edit would show no timestamp
        assert loaded.get(connection, 0) == changed, connection
        pages = requests[connection]
        if connection in SERVER_FILTERED:
            # only the pages of rows at or after the cursor (the row at the cursor is re-read)
            since = sum(moment(r["modified"]) >= previous[connection] for r in truth)
            assert len(pages) == math.ceil(since / MAX_PAGE), connection
            assert len(pages) < math.ceil(len(truth) / MAX_PAGE), connection
            assert {moment(args["modified_gte"]) for args in pages} == {previous[connection]}
        else:
            assert len(pages) == math.ceil(len(truth) / MAX_PAGE), connection
            assert all("modified_gte" not in args for args in pages), connection

    # a run without changes loads nothing and asks one page of each filtered connection
    sandbox.clear_requests()
    pipeline = sync(API, sandbox, workdir)
    assert {
        t: n
        for t, n in loaded_rows(pipeline).items()
        if not t.startswith("_dlt") and t not in READ_IN_FULL
    } == {}
    requests = requests_by_connection(sandbox)
    for connection in SERVER_FILTERED:
        assert len(requests[connection]) == 1, connection


def test_cursor_compares_moments_not_texts_across_offsets(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    # changes a few seconds apart are written in offsets from -05:00 to +05:30: as text, an older
    # change can sort after a newer one, and the newer one would be skipped as already loaded
    sandbox = fresh_sandbox
    connections = ["users", "event_types"]  # a server filter and a client-side one
    sync(API, sandbox, workdir, resources=connections)
    for _ in range(3):
        for connection in connections:
            sandbox.mutate(api=API, entity=connection, update=6)
        pipeline = sync(API, sandbox, workdir, resources=connections)
        for connection in connections:
            assert_connection_equals_truth(sandbox, workdir, connection)
            assert cursor_state(pipeline, connection) == last_modified(sandbox, connection)


def test_hard_delete_removes_rows_that_became_deleted(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    connections = ["events", "event_types"]  # a server filter and a client-side one
    sync(API, sandbox, workdir, resources=connections, hard_delete=True)
    for connection in connections:
        assert_connection_equals_truth(sandbox, workdir, connection, hard_delete=True)
        assert not [row for row in rows_of(workdir, connection) if row["is_deleted"]]

    deleted = {
        c: sandbox.mutate(api=API, entity=c, delete=3, update=2)["deleted"] for c in connections
    }
    sync(API, sandbox, workdir, resources=connections, hard_delete=True)

    for connection in connections:
        assert_connection_equals_truth(sandbox, workdir, connection, hard_delete=True)
        pks = {row["pk"] for row in rows_of(workdir, connection)}
        assert not pks & set(deleted[connection]), connection


def test_query_error_with_http_200_ends_the_run_in_one_line(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    # the schema changes between introspection and paging: the API answers 200 with `errors`
    sandbox.configure(api=API, schema_drift=True)
    spec = SOURCES[API]
    source = plusplus_graphql_source(**spec.sandbox_args(sandbox.url), resources=["events"])
    assert list(source.resources) == ["events"]  # introspected now, with the drift
    sandbox.configure(api=API, schema_drift=False)
    options = RunOptions(
        duckdb_path=str(workdir / "warehouse.duckdb"), pipelines_dir=str(workdir / "pipelines")
    )
    with pytest.raises(Exception) as failure:
        run_source(spec, source, options)
    line, code = explain(failure.value, API)
    assert code == 1
    assert line.startswith("plusplus_graphql.events page 1: query error")
    assert "capacity_note" in line and "HTTP 200" in line and "\n" not in line

    # the same through the command, for an error with a path
    sandbox.fault(
        api=API,
        path_contains="graphql",
        status=200,
        body={"errors": [{"message": "Internal failure", "path": ["__schema"]}], "data": None},
    )
    env = {
        "SOURCES__PLUSPLUS_GRAPHQL__BASE_URL": f"{sandbox.url}/plusplus_graphql/graphql/",
        "SOURCES__PLUSPLUS_GRAPHQL__API_TOKEN": API_TOKEN,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
    }
    result = lxp_sync("run", API, env=env, cwd=workdir)
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert "plusplus_graphql.schema: query error: Internal failure (at __schema)" in line
    assert "HTTP 200" in line


def cli_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PLUSPLUS_GRAPHQL__BASE_URL": f"{sandbox.url}/plusplus_graphql/graphql/",
        "SOURCES__PLUSPLUS_GRAPHQL__API_TOKEN": API_TOKEN,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


def test_bad_token_fails_check_and_run_in_one_line_without_the_token(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    secret = "wrong-but-secret-graphql-token-123"
    env = cli_env(sandbox, workdir, SOURCES__PLUSPLUS_GRAPHQL__API_TOKEN=secret)
    for args in (("check", API), ("run", API)):
        result = lxp_sync(*args, env=env, cwd=workdir)
        assert result.returncode == 1
        line = error_line(result.stderr)
        assert "refused the credentials" in line and "HTTP 401" in line
        assert secret not in result.stdout + result.stderr


def test_unknown_connection_in_the_config_names_it_and_lists_the_available_ones(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = cli_env(sandbox, workdir, SOURCES__PLUSPLUS_GRAPHQL__RESOURCES='["events", "webinars"]')
    result = lxp_sync("run", API, env=env, cwd=workdir)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "unknown resources ['webinars']" in line
    assert str(CONNECTIONS) in line
    assert not (workdir / "lxp_sync.duckdb").exists()


def test_check_and_smoke_run_succeed_against_the_sandbox(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = cli_env(sandbox, workdir)
    check = lxp_sync("check", API, env=env, cwd=workdir)
    assert check.returncode == 0, check.stderr
    assert "plusplus_graphql: ok" in check.stdout
    smoke = lxp_sync("run", API, "--smoke", env=env, cwd=workdir)
    assert smoke.returncode == 0, smoke.stderr
    for connection in CONNECTIONS:
        assert f"{connection} " in smoke.stdout


def test_the_endpoint_url_is_used_exactly_as_given(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    # PlusPlus's examples post to `https://<domain>/graphql`; a Django server that routes only
    # that path answers 404 to `/graphql/`, so the client must not add (or drop) the slash
    sandbox = fresh_sandbox
    assert sandbox.configure(api=API, strict_url=True)["strict_url"] is True
    sandbox.clear_requests()
    sync(API, sandbox, workdir, resources=["tags"], base_url=f"{sandbox.url}/{API}/graphql")

    assert_connection_equals_truth(sandbox, workdir, "tags")
    paths = {entry["path"] for entry in sandbox.requests(API)}
    assert paths == {f"/{API}/graphql"}

    # the other spelling is the user's to fix: one line with the 404, not a silent rewrite
    env = cli_env(sandbox, workdir)  # `.../graphql/`
    result = lxp_sync("check", API, env=env, cwd=workdir)
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert "HTTP 404" in line, line
    assert {entry["path"] for entry in sandbox.requests(API)} - paths == {f"/{API}/graphql/"}


def test_a_server_that_silently_serves_fewer_rows_than_asked_loses_none(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    # a server with a lower limit may cap `first` without an error; relay cursors are offsets
    # of the rows served, so paging on from `endCursor` must still read every row once
    sandbox = fresh_sandbox
    sandbox.configure(api=API, page_limit=120, page_size_mode="cap")
    sandbox.clear_requests()
    sync(API, sandbox, workdir, resources=["events", "tags"])

    for connection in ("events", "tags"):
        assert_connection_equals_truth(sandbox, workdir, connection)
    pages = requests_by_connection(sandbox)["events"]
    # the first page shows the cap; the rest of the read asks for what the server serves
    assert pages[0]["first"] == MAX_PAGE
    assert {args["first"] for args in pages[1:]} == {120}
    assert len(pages) == math.ceil(len(sandbox.truth(API, "events")) / 120)
