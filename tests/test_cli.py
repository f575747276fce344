"""The `lxp-sync` command as a user runs it: run, check, smoke, demo, status, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from lxp_sync.sources.plusplus.settings import REST_ENDPOINTS
from lxp_sync_sandbox.plusplus_rest import API_TOKEN
from lxp_sync_sandbox.server import SandboxProcess, free_port
from tests.helpers import error_line, lxp_sync

REPO = Path(__file__).resolve().parents[1]


def rest_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PLUSPLUS_REST__BASE_URL": f"{sandbox.url}/plusplus_rest/api/v1",
        "SOURCES__PLUSPLUS_REST__API_TOKEN": API_TOKEN,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


def test_help_documents_every_command() -> None:
    result = lxp_sync("--help")
    assert result.returncode == 0
    for command in ("run", "demo", "sandbox", "check", "status"):
        assert command in result.stdout
    run_help = lxp_sync("run", "--help").stdout
    for option in ("--resources", "--destination", "--dataset", "--full-refresh", "--smoke"):
        assert option in run_help


def test_only_pitchlys_jwt_sign_in_imports_pyjwt() -> None:
    # PyJWT brings `cryptography` (45 ms of every run's imports); only the JWT sign-in needs it.
    # In a process of its own, so that no other test has imported it first.
    script = textwrap.dedent(
        """
        import importlib.util
        import sys

        assert importlib.util.find_spec("jwt")  # installed, so its absence below means something
        import lxp_sync.pipelines.cli, lxp_sync.sources.plusplus, lxp_sync.sources.pluvo
        import lxp_sync.sources.pitchly
        from lxp_sync.sources.core.auth import PitchlyJWTAuth

        imported = "jwt" in sys.modules
        token, _ = PitchlyJWTAuth("app-1", "a" * 32).fetch_token()
        import jwt

        claims = jwt.decode(token, "a" * 32, algorithms=["HS256"])
        print(imported, claims["iss"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False app-1"


def test_run_loads_into_duckdb_and_status_shows_cursors(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir)
    result = lxp_sync(
        "run", "plusplus_rest", "--resources", "groups,content_items", env=env, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "content_items" in result.stdout
    assert "content_items: " in result.stderr  # progress lines
    with duckdb.connect(str(workdir / "lxp_sync.duckdb"), read_only=True) as con:
        count = con.execute("SELECT COUNT(*) FROM plusplus_rest.groups").fetchone()[0]
        staged = con.execute("SELECT COUNT(*) FROM plusplus_rest_staging.content_items")
        staged_rows = staged.fetchone()[0]
    assert count == len(sandbox.truth("plusplus_rest", "groups"))
    # without the project's settings too, dlt's staging tables keep no copy of the load
    assert staged_rows == 0
    status = lxp_sync("status", "plusplus_rest", env=env, cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert "content_items: modified >=" in status.stdout


def test_check_proves_the_token_with_one_request(sandbox: SandboxProcess, workdir: Path) -> None:
    result = lxp_sync("check", "plusplus_rest", env=rest_env(sandbox, workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "plusplus_rest: ok" in result.stdout


def test_bad_token_fails_check_and_run_in_one_line_without_the_token(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    secret = "pp_wrong_but_secret_1234567890"
    env = rest_env(sandbox, workdir, SOURCES__PLUSPLUS_REST__API_TOKEN=secret)
    for args in (("check", "plusplus_rest"), ("run", "plusplus_rest")):
        result = lxp_sync(*args, env=env, cwd=workdir)
        assert result.returncode == 1
        line = error_line(result.stderr)
        assert "refused the credentials" in line and "HTTP 401" in line
        assert "request_id req_" in line
        assert secret not in result.stdout + result.stderr


def test_missing_setting_says_which_and_where(workdir: Path) -> None:
    env = {"DLT_DATA_DIR": str(workdir / "dlt_data"), "SOURCES__PLUSPLUS_REST__API_TOKEN": "pp_x"}
    result = lxp_sync("check", "plusplus_rest", env=env, cwd=workdir)
    assert result.returncode == 2
    line = error_line(result.stderr)
    assert "base_url" in line and "SOURCES__PLUSPLUS_REST__BASE_URL" in line


def test_retries_exhausted_fail_in_one_line_with_resource_status_and_request_id(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    fresh_sandbox.fault(api="plusplus_rest", path_contains="enrollments", status=503, count=100)
    env = rest_env(fresh_sandbox, workdir, SOURCES__PLUSPLUS_REST__MAX_RETRIES="1")
    result = lxp_sync("run", "plusplus_rest", env=env, cwd=workdir)
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert "plusplus_rest.enrollments page 1" in line
    assert "HTTP 503" in line and "request_id req_" in line


def test_smoke_run_loads_a_page_of_everything_and_leaves_no_state(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir)
    result = lxp_sync("run", "plusplus_rest", "--smoke", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "smoke ok" in result.stdout
    for resource in REST_ENDPOINTS:
        assert f"{resource} " in result.stdout
    assert not (workdir / "lxp_sync.duckdb").exists()
    assert not list((workdir / "dlt_data").glob("**/lxp_sync_plusplus_rest*"))
    pages = [e for e in sandbox.requests("plusplus_rest") if "page=1" in e["query"]]
    assert pages


def test_smoke_run_against_a_wrong_url_fails_in_one_line(workdir: Path) -> None:
    env = {
        "SOURCES__PLUSPLUS_REST__BASE_URL": f"http://127.0.0.1:{free_port()}/api/v1",
        "SOURCES__PLUSPLUS_REST__API_TOKEN": "pp_x",
        "SOURCES__PLUSPLUS_REST__MAX_RETRIES": "1",
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
    }
    result = lxp_sync("run", "plusplus_rest", "--smoke", env=env, cwd=workdir)
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert "no answer from" in line and "base_url" in line


def test_demo_loads_every_source_into_duckdb(workdir: Path) -> None:
    result = lxp_sync("demo", "--rows", "2000", "--out", str(workdir / "demo"), cwd=workdir)
    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(workdir / "demo" / "lxp_sync_demo.duckdb"), read_only=True) as con:
        for resource in REST_ENDPOINTS:
            count = con.execute(f"SELECT COUNT(*) FROM plusplus_rest.{resource}").fetchone()[0]
            assert count > 0, resource
            assert resource in result.stdout
        for table in ("users", "groups", "trainings", "events"):
            count = con.execute(f"SELECT COUNT(*) FROM pluvo.{table}").fetchone()[0]
            assert count > 0, f"pluvo.{table}"
        graphql = "events users event_types locations enrollments assignments tracks tags"
        for connection in graphql.split():
            count = con.execute(f"SELECT COUNT(*) FROM plusplus_graphql.{connection}").fetchone()
            assert count[0] > 0, f"plusplus_graphql.{connection}"
        pitchly = "workspaces tables fields sales__companies sales__deals legal__matters"
        for table in pitchly.split():
            count = con.execute(f"SELECT COUNT(*) FROM pitchly.{table}").fetchone()[0]
            assert count > 0, f"pitchly.{table}"
        # and the analysts' views
        for view in (
            "plusplus_rest_analytics.completion_by_content_item",
            "pitchly_analytics.tables",
        ):
            assert con.execute(f"SELECT COUNT(*) FROM {view}").fetchone()[0] > 0, view
    assert "pluvo (Pluvo GraphQL API" in result.stdout
    assert "pitchly (Pitchly GraphQL API" in result.stdout


def test_sandbox_command_serves_and_prints_urls_and_demo_credentials() -> None:
    import subprocess
    import time

    import httpx

    from tests.helpers import LXP_SYNC

    port = free_port()
    process = subprocess.Popen(
        [LXP_SYNC, "sandbox", "--port", str(port), "--rows", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the sandbox did not answer")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in output
    assert "plusplus_rest: base_url=" in output and API_TOKEN in output


# --- one run per pipeline --------------------------------------------------------------------------


def hold_a_run(env: dict[str, str], cwd: Path, seconds: float) -> subprocess.Popen[str]:
    """`lxp-sync run plusplus_rest` held on its first page for `seconds` (killpoints)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.killpoints", "extract.page", "--hold", str(seconds)]
        + ["--", "run", "plusplus_rest", "--resources", "groups"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "killpoint extract.page reached" in line:
            return process
    raise AssertionError(f"the held run ended early ({process.wait()})")


def test_a_second_run_of_a_pipeline_fails_at_once_and_a_killed_run_leaves_no_lock(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir)
    holder = hold_a_run(env, workdir, seconds=120)
    try:
        started = time.monotonic()
        second = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env, cwd=workdir)
        seconds = time.monotonic() - started
    finally:
        holder.kill()  # kill -9: the kernel drops its lock
        holder.wait()

    assert second.returncode == 1
    line = error_line(second.stderr)
    assert f"another run of lxp_sync_plusplus_rest is in progress (pid {holder.pid})" in line
    assert seconds < 15  # at once: no extract, no wait (most of it is the interpreter's start)
    third = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env, cwd=workdir)
    assert third.returncode == 0, third.stderr
    with duckdb.connect(str(workdir / "lxp_sync.duckdb"), read_only=True) as con:
        count = con.execute("SELECT COUNT(*) FROM plusplus_rest.groups").fetchone()[0]
    assert count == len(sandbox.truth("plusplus_rest", "groups"))


def test_with_lock_wait_a_second_run_waits_for_the_first_to_end(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = rest_env(sandbox, workdir)
    holder = hold_a_run(env, workdir, seconds=3)

    second = lxp_sync(
        "run", "plusplus_rest", "--resources", "groups", "--lock-wait", "60", env=env, cwd=workdir
    )

    assert holder.wait(5) == 0  # the first ended before the second could run
    assert second.returncode == 0, second.stderr
    assert "loaded into duckdb" in second.stdout


def test_a_duckdb_file_open_in_another_process_fails_in_one_line_saying_so(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    path = workdir / "lxp_sync.duckdb"
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
            "print('open', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "open"
        result = lxp_sync(
            "run",
            "plusplus_rest",
            "--resources",
            "groups",
            env=rest_env(sandbox, workdir),
            cwd=workdir,
        )
    finally:
        other.kill()
        other.wait()

    assert result.returncode == 1
    line = error_line(result.stderr)
    assert f"the DuckDB file {path} is in use by another process (pid {other.pid}" in line
    assert "credentials" not in line
