"""Schema contracts: `evolve` by default, `freeze` stops a run on a new API field in one line."""

from __future__ import annotations

from pathlib import Path

from lxp_sync_sandbox.pluvo import ALL_SCOPES, CLIENT_ID, CLIENT_SECRET
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import duckdb_rows
from tests.helpers import error_line, lxp_sync


def pluvo_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PLUVO__BASE_URL": f"{sandbox.url}/pluvo/",
        "SOURCES__PLUVO__CLIENT_ID": CLIENT_ID,
        "SOURCES__PLUVO__CLIENT_SECRET": CLIENT_SECRET,
        "SOURCES__PLUVO__SCOPES": ALL_SCOPES,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


def test_freeze_fails_on_a_new_field_in_one_line_and_evolve_adds_the_column(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    frozen = pluvo_env(fresh_sandbox, workdir, SOURCES__PLUVO__SCHEMA_CONTRACT="freeze")
    first = lxp_sync("run", "pluvo", "--resources", "users", env=frozen, cwd=workdir)
    assert first.returncode == 0, first.stderr  # a new table is allowed on the first run

    fresh_sandbox.configure(api="pluvo", schema_drift=True)
    fresh_sandbox.mutate(api="pluvo", entity="paginatedUsers", update=3)
    refused = lxp_sync("run", "pluvo", "--resources", "users", env=frozen, cwd=workdir)
    assert refused.returncode == 1
    line = error_line(refused.stderr)
    assert "schema contract (freeze) refused a new column 'department'" in line
    assert "schema_contract" in line

    evolve = pluvo_env(fresh_sandbox, workdir)
    accepted = lxp_sync("run", "pluvo", "--resources", "users", env=evolve, cwd=workdir)
    assert accepted.returncode == 0, accepted.stderr
    rows = duckdb_rows(str(workdir / "lxp_sync.duckdb"), "pluvo", "users")
    assert "department" in rows[0]


def test_discard_value_loads_the_rows_without_the_new_field(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    env = pluvo_env(fresh_sandbox, workdir, SOURCES__PLUVO__SCHEMA_CONTRACT="discard_value")
    assert lxp_sync("run", "pluvo", "--resources", "users", env=env, cwd=workdir).returncode == 0
    fresh_sandbox.configure(api="pluvo", schema_drift=True)
    changed = fresh_sandbox.mutate(api="pluvo", entity="paginatedUsers", update=2)["updated"]
    result = lxp_sync("run", "pluvo", "--resources", "users", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in duckdb_rows(str(workdir / "lxp_sync.duckdb"), "pluvo", "users")}
    assert "department" not in next(iter(rows.values()))
    truth = {r["id"]: r for r in fresh_sandbox.truth("pluvo", "paginatedUsers")}
    for user_id in changed:
        assert rows[user_id]["name"] == truth[user_id]["name"]


def test_an_unknown_contract_mode_is_a_setting_error(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = pluvo_env(sandbox, workdir, SOURCES__PLUVO__SCHEMA_CONTRACT="strict")
    result = lxp_sync("run", "pluvo", "--resources", "users", env=env, cwd=workdir)
    assert result.returncode == 2
    assert "schema_contract 'strict' is not one of" in error_line(result.stderr)
