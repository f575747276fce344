"""The run report as a user sees it: `lxp-sync run`'s table, `--report-json`, the kept history,
`lxp-sync status`, and Slack alerts, through the real command against the sandbox."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lxp_sync.pipelines.report import RunRecorder
from lxp_sync.pipelines.run_history import RUNS_TABLE, history, keep, local_path, read_warehouse
from lxp_sync.pipelines.runner import pipeline_name
from lxp_sync_sandbox.plusplus_graphql import API_TOKEN as GRAPHQL_TOKEN
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import error_line, lxp_sync
from tests.support.warehouse import Warehouse
from tests.test_cli import rest_env

RESOURCES = "users,content_items"
# the documented shape of `--report-json` (README: "Run report")
REPORT_KEYS = {
    "format",
    "run_id",
    "source",
    "destination",
    "warehouse",
    "dataset",
    "pipeline",
    "started_at",
    "finished_at",
    "seconds",
    "status",
    "error",
    "exit_code",
    "load_id",
    "first_load",
    "full_refresh",
    "nothing_new",
    "totals",
    "resources",
    "other_requests",
}
RESOURCE_KEYS = {
    "name",
    "tables",
    "rows_read",
    "pages",
    "requests",
    "retries",
    "rate_limited",
    "seconds",
    "cursors",
    "new_tables",
    "new_columns",
}
TABLE_KEYS = {"name", "nested", "written", "inserted", "updated", "unchanged", "deleted"}


def run(
    env: dict[str, str], workdir: Path, name: str, *args: str, source: str = "plusplus_rest"
) -> tuple[Any, dict[str, Any]]:
    """`lxp-sync run` with `--report-json`; (the finished process, the report)."""
    path = workdir / f"{name}.json"
    result = lxp_sync("run", source, *args, "--report-json", str(path), env=env, cwd=workdir)
    return result, json.loads(path.read_text())


def table(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for r in report["resources"] for t in r["tables"] if t["name"] == name)


def keyed(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["public_id"]: row for row in rows}


def truth_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    both = before.keys() & after.keys()
    return {
        "inserted": len(after.keys() - before.keys()),
        "updated": sum(before[key] != after[key] for key in both),
        "deleted": len(before.keys() - after.keys()),
    }


@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)
def test_run_report_says_exactly_what_each_run_inserted_updated_and_deleted(
    destination: Warehouse, fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    env = {
        **rest_env(sandbox, workdir),
        **destination.env,
        "SOURCES__PLUSPLUS_REST__RECONCILE_EVERY": "1",  # every run sweeps: deletes are seen
    }
    args = ("--resources", RESOURCES, "--destination", destination.name)
    args += ("--dataset", destination.dataset_name)
    truth = {e: keyed(sandbox.truth("plusplus_rest", e)) for e in RESOURCES.split(",")}

    first, report = run(env, workdir, "first", *args)
    assert first.returncode == 0, first.stderr
    assert set(report) == REPORT_KEYS and report["format"] == "lxp-sync.run-report/1"
    assert all(set(r) == RESOURCE_KEYS for r in report["resources"])
    assert all(set(t) == TABLE_KEYS for r in report["resources"] for t in r["tables"])
    assert report["status"] == "ok" and report["first_load"]
    for entity, rows in truth.items():
        assert table(report, entity) | {"nested": False} == {
            "name": entity,
            "nested": False,
            "written": len(rows),
            "inserted": len(rows),
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
        }
    users = next(r for r in report["resources"] if r["name"] == "users")
    assert users["pages"] == users["requests"] == -(-len(truth["users"]) // 100)
    assert not re.search(r"^  groups ", first.stdout, re.MULTILINE)  # not selected: not shown
    assert f"{len(truth['users']):,} new" not in first.stdout  # the total is both tables'
    assert f"{len(truth['users']) + len(truth['content_items']):,} new" in first.stdout

    again, report = run(env, workdir, "again", *args)
    assert again.returncode == 0, again.stderr
    assert report["nothing_new"] and ": nothing new (" in again.stdout.splitlines()[0]
    assert table(report, "users")["unchanged"] == len(truth["users"])  # read in full, the same

    sandbox.mutate(api="plusplus_rest", entity="users", insert=3, update=4, delete=2)
    sandbox.mutate(api="plusplus_rest", entity="content_items", insert=2, update=3, delete=1)
    after = {e: keyed(sandbox.truth("plusplus_rest", e)) for e in RESOURCES.split(",")}
    changed, report = run(env, workdir, "changed", *args)

    assert changed.returncode == 0, changed.stderr
    for entity in truth:
        counts = table(report, entity)
        expected = truth_diff(truth[entity], after[entity])
        assert {k: counts[k] for k in expected} == expected, entity
    assert (
        table(report, "users")["unchanged"]
        == len(truth["users"]) - 2 - table(report, "users")["updated"]
    )
    totals = report["totals"]
    headline = changed.stdout.splitlines()[0]
    assert headline.endswith(
        f"{totals['inserted']:,} new, {totals['updated']:,} updated, {totals['deleted']:,} deleted"
    )
    # every run is kept in the warehouse too, with its counts
    pipeline = destination.pipeline(pipeline_name("plusplus_rest", destination.name))
    with pipeline.sql_client() as client:
        kept = client.execute_sql(
            f"SELECT run_id, status, inserted, deleted FROM "
            f"{client.make_qualified_table_name(RUNS_TABLE)} ORDER BY started_at"
        )
    assert [row[0] for row in kept][-1] == report["run_id"]
    assert [(row[1], row[2], row[3]) for row in kept] == [
        ("ok", len(truth["users"]) + len(truth["content_items"]), 0),
        ("ok", 0, 0),
        ("ok", totals["inserted"], totals["deleted"]),
    ]


def test_a_failed_run_is_reported_and_status_exits_non_zero_until_a_run_succeeds(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    env = rest_env(sandbox, workdir, SOURCES__PLUSPLUS_REST__MAX_RETRIES="1")
    ok, _ = run(env, workdir, "ok", "--resources", "groups")
    assert ok.returncode == 0, ok.stderr
    sandbox.fault(api="plusplus_rest", path_contains="groups", status=503, count=100)

    failed, report = run(env, workdir, "failed", "--resources", "groups")

    assert failed.returncode == 1
    said = error_line(failed.stderr).removeprefix("lxp-sync: error: ")
    assert failed.stderr.strip().splitlines()[-1].startswith("lxp-sync: error:")
    assert report["status"] == "failed" and report["error"] == said and report["exit_code"] == 1
    groups = next(r for r in report["resources"] if r["name"] == "groups")
    assert groups["requests"] == 2 and groups["retries"] == 1  # the first try and one retry
    assert failed.stdout.startswith("plusplus_rest: failed after ")

    status = lxp_sync("status", env=env, cwd=workdir)
    assert status.returncode == 1, status.stdout + status.stderr
    assert f"FAILED after {report['seconds']:.1f}s (exit 1): {said}" in status.stdout
    assert "last ok run " in status.stdout

    sandbox.clear_requests()  # and the faults
    fixed, _ = run(env, workdir, "fixed", "--resources", "groups")
    assert fixed.returncode == 0, fixed.stderr
    status = lxp_sync("status", "plusplus_rest", env=env, cwd=workdir)
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"last run \S+Z: ok in [\d.]+s: nothing new", status.stdout), status.stdout
    history = local_path(workdir / "dlt_data" / "pipelines", "lxp_sync_plusplus_rest")
    assert [json.loads(line)["status"] for line in history.read_text().splitlines()] == [
        "ok",
        "failed",
        "ok",
    ]


@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_status_shows_every_source_and_warehouse_without_a_secret_and_reads_the_warehouse(
    destination: Warehouse, sandbox: SandboxProcess, workdir: Path
) -> None:
    env = {**rest_env(sandbox, workdir), **destination.env}
    duckdb_run = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env, cwd=workdir)
    assert duckdb_run.returncode == 0, duckdb_run.stderr
    postgres = ("--destination", "postgres", "--dataset", destination.dataset_name)
    pg_run = lxp_sync(
        "run", "plusplus_rest", "--resources", "content_items", *postgres, env=env, cwd=workdir
    )
    assert pg_run.returncode == 0, pg_run.stderr

    status = lxp_sync("status", env=env, cwd=workdir)

    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert f"plusplus_rest -> duckdb {workdir / 'lxp_sync.duckdb'}, dataset plusplus_rest" in out
    password = destination.url.split("@")[0].rsplit(":", 1)[1]
    redacted = destination.url.replace(f":{password}@", ":***@")
    assert f"plusplus_rest -> postgres {redacted}, dataset {destination.dataset_name}" in out
    assert f":{password}@" not in out and "<dlt." not in out
    cursors = re.findall(r"^  (\w+): (\w+) >= (\S+)$", out, re.MULTILINE)
    assert {(r, c) for r, c, _ in cursors} == {
        ("groups", "modified"),
        ("content_items", "modified"),
    }
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", v) for *_, v in cursors)

    # a new machine (a CI runner): no local files, the warehouse has the runs
    fresh = {**env, "DLT_DATA_DIR": str(workdir / "elsewhere")}
    remote = lxp_sync("status", "plusplus_rest", *postgres, env=fresh, cwd=workdir)
    assert remote.returncode == 0, remote.stderr
    assert re.search(r"last run \S+Z: ok in [\d.]+s: [\d,]+ new", remote.stdout), remote.stdout
    assert "content_items: modified >= " in remote.stdout
    assert not (workdir / "elsewhere" / "pipelines").exists() or not any(
        (workdir / "elsewhere" / "pipelines").iterdir()
    )


def test_status_with_a_malformed_config_is_a_settings_error_naming_file_and_line(
    workdir: Path,
) -> None:
    settings = workdir / ".dlt" / "config.toml"
    settings.parent.mkdir()
    settings.write_text('[sources.plusplus_rest]\npage_size = 100\nbroken = = "x"\n')

    result = lxp_sync("status", cwd=workdir, env={"DLT_DATA_DIR": str(workdir / "dlt_data")})

    assert result.returncode == 2
    line = error_line(result.stderr)
    assert str(settings) in line and "line 3" in line
    assert "no runs yet" not in result.stdout


class SlackStandIn(ThreadingHTTPServer):
    """An incoming webhook on 127.0.0.1 that keeps what it was sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/hook"


def test_slack_alerts_on_a_schema_change_and_on_a_failure_but_not_on_a_first_load(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    slack = SlackStandIn()
    env = {
        "SOURCES__PLUSPLUS_GRAPHQL__BASE_URL": f"{sandbox.url}/plusplus_graphql/graphql/",
        "SOURCES__PLUSPLUS_GRAPHQL__API_TOKEN": GRAPHQL_TOKEN,
        "SOURCES__PLUSPLUS_GRAPHQL__MAX_RETRIES": "1",
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
    }
    hooked = {**env, "RUNTIME__SLACK_INCOMING_HOOK": slack.url}
    args = ("--resources", "events")
    where = "lxp-sync `plusplus_graphql` into duckdb dataset `plusplus_graphql`"
    try:
        first = lxp_sync("run", "plusplus_graphql", *args, env=hooked, cwd=workdir)
        assert first.returncode == 0, first.stderr
        assert slack.messages == []  # a first load creates the tables: no change to alert on

        sandbox.configure(api="plusplus_graphql", schema_drift=True)
        sandbox.mutate(api="plusplus_graphql", entity="events", update=3)
        drift, report = run(hooked, workdir, "drift", *args, source="plusplus_graphql")
        assert drift.returncode == 0, drift.stderr
        assert report["resources"][0]["new_columns"] == {"events": ["capacity_note"]}
        assert "  schema: new column events.capacity_note" in drift.stdout.splitlines()
        assert [m["text"] for m in slack.messages] == [
            f":large_yellow_circle: {where}: the schema changed: new column `events.capacity_note`"
        ]

        again = lxp_sync("run", "plusplus_graphql", *args, env=hooked, cwd=workdir)
        assert again.returncode == 0, again.stderr
        assert len(slack.messages) == 1  # the column is there now: nothing changed

        sandbox.fault(api="plusplus_graphql", body_contains="events", status=503, count=50)
        failed, report = run(hooked, workdir, "failed", *args, source="plusplus_graphql")
        assert failed.returncode == 1
    finally:
        slack.shutdown()
    said = error_line(failed.stderr).removeprefix("lxp-sync: error: ")
    assert slack.messages[1:] == [
        {
            "text": f":red_circle: {where} failed after {report['seconds']:.0f}s: {said}",
            "mrkdwn": True,
        }
    ]
    assert GRAPHQL_TOKEN not in json.dumps(slack.messages)


def test_the_runs_table_keeps_a_report_on_every_warehouse(
    destination: Warehouse, tmp_path: Path
) -> None:
    """`_lxp_runs` is made and read with plain SQL: the same on DuckDB, PostgreSQL and BigQuery."""
    pipeline = destination.pipeline("runs_table")
    pipeline.run([{"id": 1}], table_name="rows", loader_file_format=destination.file_format)
    reports = []
    for started, error in [("2026-01-02T03:04:05Z", 'users page 2: it\'s "broken"'), (None, None)]:
        recorder = RunRecorder("plusplus_rest", destination.name, destination.dataset_name, "runs")
        recorder.report.started_at = started or recorder.report.started_at
        reports.append(recorder.finish(error, 1 if error else 0))

    assert all(keep(report, tmp_path, pipeline) is None for report in reports)

    kept = read_warehouse(pipeline, "plusplus_rest")
    assert [r.to_json() for r in reversed(kept)] == [r.to_json() for r in reports]
    assert [json.loads(line) for line in local_path(tmp_path, "runs").read_text().splitlines()] == [
        r.to_json() for r in reports
    ]
    assert [r.run_id for r in history(tmp_path, "runs", pipeline, "plusplus_rest")] == [
        r.run_id for r in reports
    ]
