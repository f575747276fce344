"""The analysts' views (`<dataset>_analytics`) on DuckDB and PostgreSQL, made on BigQuery too.

Every number a view shows is computed here again in Python from the sandbox's truth: completion
and overdue per content item and per manager, event attendance, Pluvo's completion per training.
Live-row views leave out rows flagged `is_deleted` and rows the deletes sweep marked gone, child
views carry their root's key, every view has `_lxp_loaded_at`, and names are the current ones,
not the copies PlusPlus REST embeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.views import analytics_dataset, create_views
from lxp_sync.sources.core import arrow
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync, source_env, sync_to
from tests.support.warehouse import Warehouse, normalize_value

ROWS = 600
BOTH = pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """This module's own sandbox: its tests change it, each compares with the truth after."""
    with SandboxProcess(rows=ROWS, seed=31) as process:
        yield process


def read_view(pipeline: Pipeline, view: str) -> list[dict[str, Any]]:
    """Every row of a view in the pipeline's analytics schema, values as Python compares them."""
    with pipeline.sql_client() as client:
        with client.with_alternative_dataset_name(analytics_dataset(client.dataset_name)):
            name = client.make_qualified_table_name(view)
        with client.execute_query(f"SELECT * FROM {name}") as cursor:
            names = [d[0] for d in cursor.description]
            return [
                dict(zip(names, map(normalize_value, row), strict=True))
                for row in cursor.fetchall()
            ]


def keyed(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    found = {row[key]: row for row in rows}
    assert len(found) == len(rows), f"{key} twice"
    return found


# --- the numbers, from the truth -----------------------------------------------------------------


@dataclass
class Tally:
    """Counts of one group (an item, a manager, an event), as the views count them."""

    name: Any = None
    rows: int = 0
    people: set[Any] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, person: Any, **flags: bool) -> None:
        self.rows += 1
        self.people.add(person)
        for flag, on in flags.items():
            self.counts[flag] += int(on)


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def assert_rows_match(
    got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]], view: str
) -> None:
    assert set(got) == set(want), f"{view}: groups differ"
    for key, expected in want.items():
        for column, value in expected.items():
            found = got[key][column]
            if isinstance(value, float):
                assert found is not None and math.isclose(found, value, rel_tol=1e-9), (
                    f"{view} {key}.{column}: {found}, want {value}"
                )
            else:
                assert found == value, f"{view} {key}.{column}: {found!r}, want {value!r}"


def today() -> date:
    return datetime.now(UTC).date()


def completion_rows(
    tallies: dict[Any, Tally], unit: str, label: str, overdue: bool = True, people: bool = False
) -> dict[Any, dict[str, Any]]:
    """A completion view's rows (`people`: with the distinct people, per manager)."""
    out = {}
    for key, tally in tallies.items():
        row: dict[str, Any] = {
            unit: tally.rows,
            "completed": tally.counts["completed"],
            "completion_rate": rate(tally.counts["completed"], tally.rows),
        }
        if label:
            row[label] = tally.name
        if overdue:
            row["overdue"] = tally.counts["overdue"]
            row["overdue_rate"] = rate(tally.counts["overdue"], tally.rows)
        if people:
            row["people"] = len(tally.people)
        out[key] = row
    return out


@dataclass
class Expected:
    """What a source's views must say: view -> its key column and rows by key."""

    views: dict[str, tuple[str, dict[Any, dict[str, Any]]]]


def _assignments(
    assignments: list[dict[str, Any]],
    user_of: Callable[[dict[str, Any]], Any],
    item_of: Callable[[dict[str, Any]], Any],
    item_name: Callable[[Any], Any],
    manager_of: Callable[[Any], Any],
    manager_name: Callable[[Any], Any],
) -> tuple[dict[Any, Tally], dict[Any, Tally]]:
    by_item: dict[Any, Tally] = defaultdict(Tally)
    by_manager: dict[Any, Tally] = defaultdict(Tally)
    for row in assignments:
        state = row["state"].lower()
        if state in ("dropped", "exempted"):
            continue
        due = row["due_date"]
        flags = {
            "completed": state == "completed",
            "overdue": state in ("not_started", "in_progress")
            and due is not None
            and date.fromisoformat(due) < today(),
        }
        user, item = user_of(row), item_of(row)
        by_item[item].add(user, **flags)
        by_item[item].name = item_name(item)
        manager = manager_of(user)
        by_manager[manager].add(user, **flags)
        by_manager[manager].name = manager_name(manager)
    return by_item, by_manager


def _attendance(
    enrollments: list[dict[str, Any]],
    event_of: Callable[[dict[str, Any]], Any],
    event_name: Callable[[dict[str, Any]], Any],
    checked_in: Callable[[dict[str, Any]], bool],
    waitlisted: str,
    cancelled: str,
) -> dict[Any, dict[str, Any]]:
    tallies: dict[Any, Tally] = defaultdict(Tally)
    for row in enrollments:
        status = row["status"].lower()
        event = event_of(row)
        tallies[event].name = event_name(row)
        registered = status not in (waitlisted, cancelled)
        tallies[event].add(
            None,
            waitlisted=status == waitlisted,
            cancelled=status == cancelled,
            registered=registered,
            checked_in=checked_in(row),
            attended=status == "attended",
            no_show=status == "no_show",
        )
    out = {}
    for event, tally in tallies.items():
        counts = tally.counts
        out[event] = {
            "event_name": tally.name,
            "enrollments": tally.rows,
            **{k: counts[k] for k in ("waitlisted", "cancelled", "registered", "checked_in")},
            "attended": counts["attended"],
            "no_show": counts["no_show"],
            "checked_in_share": rate(counts["checked_in"], counts["registered"]),
            "attended_share": rate(counts["attended"], counts["registered"]),
        }
    return out


def expected_rest(sandbox: SandboxProcess) -> Expected:
    api = "plusplus_rest"
    users = {u["public_id"]: u for u in sandbox.truth(api, "users")}
    items = {c["public_id"]: c for c in sandbox.truth(api, "content_items")}

    def manager_of(user: Any) -> Any:
        manager = (users.get(user) or {}).get("manager")
        return manager["public_id"] if manager else None

    by_item, by_manager = _assignments(
        sandbox.truth(api, "assignments"),
        user_of=lambda a: a["user"]["public_id"],
        item_of=lambda a: a["content_item"]["public_id"],
        item_name=lambda item: items[item]["name"],
        manager_of=manager_of,
        manager_name=lambda m: users[m]["name"] if m in users else None,
    )
    per_item = completion_rows(by_item, "assignments", "content_item_name")
    for key, row in per_item.items():
        row["content_item_type"] = items[key]["content_type"]
    per_manager = completion_rows(by_manager, "assignments", "manager_name", people=True)
    attendance = _attendance(
        sandbox.truth(api, "enrollments"),
        event_of=lambda e: e["event"]["public_id"],
        event_name=lambda e: e["event"]["name"],
        checked_in=lambda e: e["checkin_datetime"] is not None,
        waitlisted="waitlisted",
        cancelled="cancelled",
    )
    return Expected(
        {
            "completion_by_content_item": ("content_item__public_id", per_item),
            "completion_by_manager": ("manager__public_id", per_manager),
            "event_attendance": ("event__public_id", attendance),
        }
    )


def expected_graphql(sandbox: SandboxProcess) -> Expected:
    api = "plusplus_graphql"

    def live(entity: str) -> list[dict[str, Any]]:
        return [row for row in sandbox.truth(api, entity) if not row["is_deleted"]]

    users = {u["pk"]: u for u in live("users")}
    events = {e["pk"]: e for e in live("events")}

    def pk(row: dict[str, Any], field_name: str) -> Any:
        return (row.get(field_name) or {}).get("pk")

    def manager_of(user: Any) -> Any:
        return pk(users[user], "manager") if user in users else None

    by_item, by_manager = _assignments(
        live("assignments"),
        user_of=lambda a: pk(a, "user"),
        item_of=lambda a: pk(a, "content_item"),
        item_name=lambda item: None,  # no content items connection: no names
        manager_of=manager_of,
        manager_name=lambda m: users[m]["name"] if m in users else None,
    )
    per_item = completion_rows(by_item, "assignments", "")
    per_manager = completion_rows(by_manager, "assignments", "manager_name", people=True)
    attendance = _attendance(
        live("enrollments"),
        event_of=lambda e: pk(e, "event"),
        event_name=lambda e: events[pk(e, "event")]["name"] if pk(e, "event") in events else None,
        checked_in=lambda e: bool(e["checked_in"]),
        waitlisted="waitlist",
        cancelled="not_going",
    )
    return Expected(
        {
            "completion_by_content_item": ("content_item__pk", per_item),
            "completion_by_manager": ("manager__pk", per_manager),
            "event_attendance": ("event__pk", attendance),
        }
    )


def expected_pluvo(sandbox: SandboxProcess) -> Expected:
    users = {u["id"]: u for u in sandbox.truth("pluvo", "paginatedUsers")}
    trainings = {t["id"]: t for t in sandbox.truth("pluvo", "paginatedTrainings")}
    completed: dict[tuple[Any, Any], bool] = {}
    for event in sandbox.truth("pluvo", "paginatedEvents"):
        if event.get("user") and event.get("training"):
            pair = (event["user"]["id"], event["training"]["id"])
            completed[pair] = completed.get(pair, False) or event["type"] == "COMPLETED"
    by_training: dict[Any, Tally] = defaultdict(Tally)
    by_manager: dict[Any, Tally] = defaultdict(Tally)
    for (user, training), done in completed.items():
        by_training[training].add(user, completed=done)
        by_training[training].name = trainings[training]["title"] if training in trainings else None
        manager = (users.get(user) or {}).get("manager")
        key = manager["id"] if manager else None
        by_manager[key].add(user, completed=done)
        by_manager[key].name = users[key]["name"] if key in users else None
    per_manager = completion_rows(
        by_manager, "learners", "manager_name", overdue=False, people=True
    )
    return Expected(
        {
            "completion_by_training": (
                "training__id",
                completion_rows(by_training, "learners", "training_name", overdue=False),
            ),
            "completion_by_manager": ("manager__id", per_manager),
        }
    )


EXPECTED = {
    "plusplus_rest": expected_rest,
    "plusplus_graphql": expected_graphql,
    "pluvo": expected_pluvo,
}


def assert_views_equal_truth(pipeline: Pipeline, source: str, sandbox: SandboxProcess) -> None:
    for view, (key, want) in EXPECTED[source](sandbox).views.items():
        assert want, f"{view}: the test needs rows"
        assert_rows_match(keyed(read_view(pipeline, view), key), want, view)


def assert_every_row_has_a_load_time(pipeline: Pipeline) -> None:
    for table in pipeline.default_schema.data_table_names(seen_data_only=True):
        rows = read_view(pipeline, table)
        assert rows, table
        assert all(row["_lxp_loaded_at"] is not None for row in rows), table
        assert not any(column.startswith("_dlt") for column in rows[0]), table


# --- DuckDB and PostgreSQL -----------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("source", list(EXPECTED))
def test_views_count_completion_overdue_and_attendance_as_the_truth_does(
    destination: Warehouse, sandbox: SandboxProcess, source: str
) -> None:
    pipeline = sync_to(destination, source, sandbox)

    line = create_views(pipeline)

    assert f"views in {destination.dataset_name}_analytics" in line
    assert_views_equal_truth(pipeline, source, sandbox)
    assert_every_row_has_a_load_time(pipeline)


@BOTH
def test_live_views_leave_out_deleted_rows_and_child_views_carry_the_roots_key(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    api = "plusplus_graphql"
    pipeline = sync_to(destination, api, sandbox, resources=["events", "users"])
    create_views(pipeline)

    events = sandbox.truth(api, "events")
    live = {e["pk"]: e for e in events if not e["is_deleted"]}
    assert len(live) < len(events), "the test needs deleted events"
    assert {row["pk"] for row in read_view(pipeline, "events")} == set(live)
    tags = {
        (row["events__pk"], row["_lxp_list_index"], row["value"])
        for row in read_view(pipeline, "events__tags")
    }
    assert tags == {(pk, i, tag) for pk, e in live.items() for i, tag in enumerate(e["tags"])}
    presenters = {(r["events__pk"], r["pk"]) for r in read_view(pipeline, "events__presenters")}
    assert presenters == {(pk, p["pk"]) for pk, e in live.items() for p in e["presenters"]}


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_current_names_replace_the_copies_rest_embeds(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    api = "plusplus_rest"
    resources = ["users", "content_items", "assignments"]
    sync_to(destination, api, sandbox, resources=resources)
    renamed = sandbox.mutate(api=api, entity="users", update=20)["updated"]
    pipeline = sync_to(destination, api, sandbox, resources=resources)  # incremental
    create_views(pipeline)

    users = {u["public_id"]: u for u in sandbox.truth(api, "users")}
    raw = destination.rows(pipeline, "assignments")
    stale = [a for a in raw if a["user__name"] != users[a["user__public_id"]]["name"]]
    assert stale, "the test needs copies that went stale (rows outside the refresh window)"
    current = read_view(pipeline, "assignments_current")
    assert len(current) == len(raw)
    for row in current:
        user = users[row["user__public_id"]]
        assert row["user_name"] == user["name"] and row["user_email"] == user["email"]
        manager = user["manager"]
        assert row["manager_name"] == (users[manager["public_id"]]["name"] if manager else None)
        assert "user__name" not in row  # the copy is left out
    assert {a["user__public_id"] for a in stale} <= set(renamed)


@BOTH
def test_tables_loaded_as_arrow_before_they_had_a_load_id_gain_one_and_keep_their_rows(
    destination: Warehouse, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, resources = "plusplus_rest", ["groups", "users"]
    setting = "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"
    # as every load before the setting was: Arrow tables without `_dlt_load_id`
    monkeypatch.setenv(setting, "false")
    with monkeypatch.context() as older:
        older.setattr(arrow, "add_load_id", lambda table: table)
        sync_to(destination, api, sandbox, resources=resources)
    changed = set(sandbox.mutate(api=api, entity="groups", update=3)["updated"])
    monkeypatch.setenv(setting, "true")

    pipeline = sync_to(destination, api, sandbox, resources=resources)
    create_views(pipeline)

    groups = read_view(pipeline, "groups")
    assert len(groups) == len(sandbox.truth(api, "groups"))
    assert {g["public_id"] for g in groups if g["_lxp_loaded_at"] is not None} == changed
    users = read_view(pipeline, "users")  # a full scan: every row loaded again
    assert users and all(user["_lxp_loaded_at"] is not None for user in users)


@pytest.mark.parametrize("destination", ["duckdb"], indirect=True)
def test_arrow_tables_carry_their_load_id_without_dlts_setting(
    destination: Warehouse, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "false")
    for api, args in (("plusplus_rest", {"resources": ["groups"]}), ("pitchly", {})):
        pipeline = sync_to(destination, api, sandbox, **args)
        (load_id,) = pipeline.last_trace.last_load_info.loads_ids
        for table in pipeline.default_schema.data_table_names():
            rows = destination.rows(pipeline, table, dlt_columns=True)
            assert rows and {row["_dlt_load_id"] for row in rows} == {load_id}, (api, table)


@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_postgres_remakes_views_whose_columns_changed_and_keeps_a_users_view_built_on_them(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    api = "plusplus_rest"
    pipeline = sync_to(
        destination, api, sandbox, resources=["users", "content_items", "assignments"]
    )
    create_views(pipeline)
    ours, theirs = f"{destination.dataset_name}_analytics", f"{destination.dataset_name}_reports"
    with pipeline.sql_client() as client:
        # an analyst's own view on one of ours, and views of an older version with other columns
        client.execute_sql(f"CREATE SCHEMA {theirs}")
        client.execute_sql(f"CREATE VIEW {theirs}.people AS SELECT name FROM {ours}.users")
        for view in ("completion_by_manager", "completion_by_content_item", "assignments_current"):
            client.execute_sql(f"DROP VIEW {ours}.{view}")
        client.execute_sql(f"CREATE VIEW {ours}.assignments_current AS SELECT 1 AS x")
        client.execute_sql(
            f"CREATE VIEW {ours}.completion_by_content_item AS "
            f"SELECT x FROM {ours}.assignments_current"
        )

    create_views(pipeline)

    assert len(read_view(pipeline, "assignments_current")) == len(sandbox.truth(api, "assignments"))
    key, want = expected_rest(sandbox).views["completion_by_content_item"]
    view = "completion_by_content_item"
    assert_rows_match(keyed(read_view(pipeline, view), key), want, view)
    with pipeline.sql_client() as client:
        people = client.execute_sql(f"SELECT COUNT(*) FROM {theirs}.people")[0][0]
    assert people == len(sandbox.truth(api, "users"))


def test_runs_make_the_views_when_set_and_rows_the_deletes_sweep_marks_leave_them(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    api = "plusplus_rest"
    args = ("--resources", "users,content_items,assignments")
    off = lxp_sync("run", api, *args, env=source_env(api, sandbox, workdir))
    assert off.returncode == 0, off.stderr
    assert f"{api}_analytics" not in schemas(workdir)  # off by default

    env = source_env(api, sandbox, workdir, SOURCES__PLUSPLUS_REST__VIEWS="true")
    first = lxp_sync("run", api, *args, env=env)
    again = lxp_sync("run", api, *args, env=env)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert f"{api}: 7 views in {api}_analytics" in first.stderr
    assert f"{api}: views in {api}_analytics up to date (7 views)" in again.stderr

    gone = sandbox.mutate(api=api, entity="assignments", delete=4)["deleted"]
    swept = lxp_sync("reconcile", api, *args, env=env)
    assert swept.returncode == 0, swept.stderr
    assert "4 rows deleted at the source marked" in swept.stdout
    made = lxp_sync("views", api, env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"{api}: 7 views in {api}_analytics"

    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        marked = con.execute(
            f"SELECT public_id FROM {api}.assignments WHERE _lxp_deleted_at IS NOT NULL"
        ).fetchall()
        listed = con.execute(f"SELECT public_id FROM {api}_analytics.assignments").fetchall()
        per_item = con.execute(
            f"SELECT SUM(assignments) FROM {api}_analytics.completion_by_content_item"
        ).fetchone()[0]
    assert {row[0] for row in marked} == set(gone)
    truth = sandbox.truth(api, "assignments")
    assert {row[0] for row in listed} == {a["public_id"] for a in truth}
    assert per_item == sum(a["state"] not in ("dropped", "exempted") for a in truth)


def schemas(workdir: Path) -> set[str]:
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {row[0] for row in rows}


# --- BigQuery (the emulator) -----------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["bigquery"], indirect=True)
def test_bigquery_creates_and_queries_every_view(
    destination: Warehouse, sandbox: SandboxProcess
) -> None:
    api = "plusplus_rest"
    resources = ["users", "content_items", "assignments", "enrollments"]
    pipeline = sync_to(destination, api, sandbox, resources=resources)

    create_views(pipeline)

    for view in [
        "users",
        "content_items",
        "content_items__groups",
        "assignments_current",
        "enrollments_current",
    ]:
        assert read_view(pipeline, view), view
    view = "completion_by_content_item"
    key, want = expected_rest(sandbox).views[view]
    assert_rows_match(keyed(read_view(pipeline, view), key), want, view)
    assert read_view(pipeline, "completion_by_manager") and read_view(pipeline, "event_attendance")
