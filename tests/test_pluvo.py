"""The Pluvo source against the sandbox: full syncs, page sizes, tokens, scopes, counts, secrets."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.pipeline.exceptions import PipelineStepFailed

from lxp_sync.pipelines.errors import explain
from lxp_sync.sources.core.errors import ConfigurationError
from lxp_sync.sources.pluvo.helpers import organization_root
from lxp_sync_sandbox.pluvo import CLIENT_ID, CLIENT_SECRET, MAX_PAGE_SIZE
from lxp_sync_sandbox.server import SandboxProcess
from tests.compare import (
    Rows,
    diff_child_table,
    diff_table,
    duckdb_rows,
    free_form_problems,
    table_reader,
)
from tests.helpers import error_line, loaded_rows, lxp_sync, sync

# resource (table) -> the sandbox's connection
CONNECTIONS = {
    "users": "paginatedUsers",
    "groups": "paginatedGroups",
    "trainings": "paginatedTrainings",
    "events": "paginatedEvents",
}
LIST_FIELDS = {"users": "roles", "trainings": "tags"}
# free-form columns: name -> whether the API sends JSON text (JSONString) rather than JSON
JSON_COLUMNS = {"trainings": {"settings": False, "metadata": True}}
DEPRECATED = {"users": "username", "groups": "size", "trainings": "name", "events": "user_id"}
TOKEN_PATH = "/pluvo/oauth/token/"
GRAPHQL_PATH = "/pluvo/graphql/"
NAMING = NamingConvention()


@pytest.fixture(scope="module")
def switched() -> Iterator[SandboxProcess]:
    """A small sandbox of this module's own, for tests that flip its switches (and reset them)."""
    with SandboxProcess(rows=1000, seed=11) as process:
        yield process


@pytest.fixture
def pluvo_switches(switched: SandboxProcess) -> Iterator[SandboxProcess]:
    """The switched sandbox with a clean request log, every switch back to normal afterwards."""
    switched.clear_requests()
    yield switched
    switched.configure(
        api="pluvo",
        latency_ms=0,
        token_lifetime_s=86400,
        refuse_client=False,
        page_size_mode="cap",
        schema_drift=False,
        count_extra=0,
        revoke_tokens_after=None,
        token_redirect=None,
    )


def as_loaded(row: dict[str, Any]) -> dict[str, Any]:
    """A truth row with the column names dlt gives it (`updatedAt` -> `updated_at`)."""
    return {NAMING.normalize_identifier(key): value for key, value in row.items()}


def table_problems(
    resource: str, truth: list[dict[str, Any]], loaded: list[dict[str, Any]]
) -> list[str]:
    """Differences between a table's truth rows and its loaded rows, free-form columns too."""
    free_form = JSON_COLUMNS.get(resource, {})
    variants = {
        c for row in loaded for c in row if any(c.startswith(f"{j}__v_") for j in free_form)
    }
    scalars = [{k: v for k, v in row.items() if k not in free_form} for row in truth]
    problems = diff_table(scalars, loaded, "id", ignore=frozenset({*free_form, *variants}))
    for column, text in free_form.items():
        problems += free_form_problems(truth, loaded, "id", column, text)
    return problems


def assert_warehouse_equals_truth(
    sandbox: SandboxProcess,
    workdir: Path | Rows,
    resources: list[str] | None = None,
    dataset: str = "pluvo",
) -> None:
    rows = table_reader(workdir, dataset)
    for resource in resources or CONNECTIONS:
        truth = [as_loaded(row) for row in sandbox.truth("pluvo", CONNECTIONS[resource])]
        loaded = rows(resource)
        assert truth, resource
        problems = table_problems(resource, truth, loaded)
        assert not problems, f"{resource}: {problems}"
        if resource in LIST_FIELDS:
            children = rows(f"{resource}__{LIST_FIELDS[resource]}")
            problems = diff_child_table(truth, loaded, children, "id", LIST_FIELDS[resource])
            assert not problems, f"{resource}: {problems}"


def graphql_requests(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("pluvo") if r["path"] == GRAPHQL_PATH]


def token_requests(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("pluvo") if r["path"] == TOKEN_PATH]


def pluvo_env(sandbox: SandboxProcess, workdir: Path, **extra: str) -> dict[str, str]:
    return {
        "SOURCES__PLUVO__BASE_URL": f"{sandbox.url}/pluvo/",
        "SOURCES__PLUVO__CLIENT_ID": CLIENT_ID,
        "SOURCES__PLUVO__CLIENT_SECRET": CLIENT_SECRET,
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
        **extra,
    }


def failed_run_line(env: dict[str, str], workdir: Path, *args: str) -> str:
    """`lxp-sync run pluvo` that fails: exit 1, one error line (returned), no client secret."""
    result = lxp_sync("run", "pluvo", *args, env=env, cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert CLIENT_SECRET not in result.stdout + result.stderr
    return error_line(result.stderr)


def files_containing(root: Path, needle: str, skip: Path | None = None) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path != skip and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(root)))
    return found


# --- Full syncs ----------------------------------------------------------------------------------


def test_full_sync_equals_truth_for_every_connection(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pluvo", sandbox, workdir)

    tables = set(pipeline.default_schema.data_table_names())
    assert set(CONNECTIONS) <= tables
    assert {"me", "organisation"}.isdisjoint(tables), "plain root fields are not resources"
    assert_warehouse_equals_truth(sandbox, workdir)
    for table, field in DEPRECATED.items():
        assert field not in pipeline.default_schema.get_table_columns(table), table
    trainings = pipeline.default_schema.get_table_columns("trainings")
    assert trainings["settings"]["data_type"] == "json"  # the JSON scalar, never flattened
    assert trainings["metadata"]["data_type"] == "json"  # JSONString: JSON text, parsed
    assert trainings["settings__v_bigint"]["data_type"] == "bigint"  # a lone number
    assert trainings["metadata__v_text"]["data_type"] == "text"  # a lone string
    columns = pipeline.default_schema.get_table_columns("events")
    assert columns["updated_at"]["data_type"] == "timestamp"
    assert columns["user__id"]["data_type"] == "text"
    assert columns["score"]["data_type"] == "double"


@pytest.mark.parametrize(
    ("mode", "page_size"), [("cap", 500), ("error", MAX_PAGE_SIZE), ("error", 500)]
)
def test_pages_never_ask_for_more_than_50_and_sync_equals_truth(
    pluvo_switches: SandboxProcess, workdir: Path, mode: str, page_size: int
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", page_size_mode=mode)

    sync("pluvo", sandbox, workdir, page_size=page_size)

    assert_warehouse_equals_truth(sandbox, workdir)
    pages = [r["extra"]["args"] for r in graphql_requests(sandbox) if r["extra"].get("args")]
    assert len(pages) >= sum(
        -(-len(sandbox.truth("pluvo", c)) // MAX_PAGE_SIZE) for c in CONNECTIONS.values()
    )
    assert {args["first"] for args in pages} == {MAX_PAGE_SIZE}


def test_base_url_without_trailing_slash_works(sandbox: SandboxProcess, workdir: Path) -> None:
    sync("pluvo", sandbox, workdir, base_url=f"{sandbox.url}/pluvo", resources=["groups"])

    assert_warehouse_equals_truth(sandbox, workdir, ["groups"])


def test_base_url_is_normalised_to_the_organization_root() -> None:
    root = "https://acme.pluvo.com/"
    assert organization_root("https://acme.pluvo.com") == root
    assert organization_root(" https://acme.pluvo.com/ ") == root
    assert organization_root("https://acme.pluvo.com/graphql/") == root
    assert organization_root("https://acme.pluvo.com/graphql") == root
    assert organization_root("https://acme.pluvo.com/oauth/token/") == root
    assert organization_root("http://127.0.0.1:8765/pluvo") == "http://127.0.0.1:8765/pluvo/"
    with pytest.raises(ConfigurationError, match="not an http"):
        organization_root("acme.pluvo.com")


def test_resources_subset_by_table_or_connection_name_and_unknown_names_listed(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("pluvo", sandbox, workdir, resources=["paginatedGroups", "users"])
    assert {"groups", "users"} <= set(pipeline.default_schema.data_table_names())
    assert "events" not in pipeline.default_schema.data_table_names()

    with pytest.raises(ConfigurationError) as error:
        sync("pluvo", sandbox, workdir, resources=["users", "certificates"])
    assert "['certificates']" in str(error.value)
    assert "['events', 'groups', 'trainings', 'users']" in str(error.value)


def test_a_field_the_vendor_adds_becomes_a_column_without_code_changes(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", schema_drift=True)

    pipeline = sync("pluvo", sandbox, workdir, resources=["users"])

    assert "department" in pipeline.default_schema.get_table_columns("users")
    assert_warehouse_equals_truth(sandbox, workdir, ["users"])


# --- Incremental ---------------------------------------------------------------------------------


def test_incremental_run_after_mutations_loads_only_changes_and_equals_truth(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("pluvo", sandbox, workdir)
    changed: dict[str, set[str]] = {name: set() for name in CONNECTIONS}
    for name, connection in CONNECTIONS.items():
        result = sandbox.mutate(api="pluvo", entity=connection, update=3, insert=2)
        changed[name] |= {*result["updated"], *result["inserted"]}
    deleted = sandbox.mutate(api="pluvo", entity="paginatedTrainings", delete=1)
    changed["trainings"] -= set(deleted["deleted"])
    for name, ids in deleted["cascaded"].items():
        changed[name] |= set(ids)  # events that pointed at the deleted training
    assert deleted["cascaded"].get("events"), "the test needs a delete that touches other rows"

    pipeline = sync("pluvo", sandbox, workdir)

    loaded = loaded_rows(pipeline)
    for name, ids in changed.items():
        assert loaded.get(name) == len(ids), name
    assert_warehouse_equals_truth(sandbox, workdir, ["users", "groups", "events"])
    # a deleted row stays in the warehouse (the API has no deletions feed; README says so)
    warehouse = str(workdir / "warehouse.duckdb")
    truth = [as_loaded(row) for row in sandbox.truth("pluvo", "paginatedTrainings")]
    trainings = duckdb_rows(warehouse, "pluvo", "trainings")
    kept = [row for row in trainings if row["id"] in deleted["deleted"]]
    assert len(kept) == 1
    assert not table_problems("trainings", truth, [row for row in trainings if row not in kept])


# --- Tokens --------------------------------------------------------------------------------------


def test_token_expiring_during_a_sync_is_renewed_and_the_sync_completes(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", token_lifetime_s=1, latency_ms=10)
    started = time.monotonic()

    sync("pluvo", sandbox, workdir, resources=["events"], page_size=4)

    assert time.monotonic() - started > 2, "the sync must outlive a token or two"
    assert len(token_requests(sandbox)) >= 2
    assert_warehouse_equals_truth(sandbox, workdir, ["events"])


def test_token_revoked_between_pages_is_renewed_once_on_401(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", revoke_tokens_after=6)  # introspection, then pages 1-4 ...

    sync("pluvo", sandbox, workdir, resources=["events"])

    statuses = [r["status"] for r in graphql_requests(sandbox)]
    assert statuses.count(401) == 1
    assert statuses.index(401) == 5
    assert len(token_requests(sandbox)) == 2
    assert_warehouse_equals_truth(sandbox, workdir, ["events"])


def test_one_token_serves_every_resource_of_a_run(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sync("pluvo", pluvo_switches, workdir)

    assert len(token_requests(pluvo_switches)) == 1


def test_token_cache_file_reuses_the_token_across_runs_until_it_is_refused(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    cache = workdir / "cache" / "pluvo-token.json"

    sync("pluvo", sandbox, workdir, resources=["groups"], token_cache_path=str(cache))
    sync("pluvo", sandbox, workdir, resources=["groups"], token_cache_path=str(cache))

    assert len(token_requests(sandbox)) == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert CLIENT_SECRET not in cache.read_text()
    sandbox.configure(api="pluvo", revoke_tokens=True)

    sync("pluvo", sandbox, workdir, resources=["groups"], token_cache_path=str(cache))

    assert len(token_requests(sandbox)) == 2
    assert [r["status"] for r in graphql_requests(sandbox)].count(401) == 1
    os.chmod(cache, 0o644)  # readable by others: not trusted, replaced by a private file

    sync("pluvo", sandbox, workdir, resources=["groups"], token_cache_path=str(cache))

    assert len(token_requests(sandbox)) == 3
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_token_endpoint_refusing_the_client_fails_in_one_line(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", refuse_client=True)

    line = failed_run_line(pluvo_env(sandbox, workdir), workdir)

    assert "pluvo.token" in line and "HTTP 401" in line
    assert "invalid_client: Client authentication failed." in line


def test_missing_scope_fails_in_one_line_naming_the_scope_and_the_tokens_scopes(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = pluvo_env(sandbox, workdir, SOURCES__PLUVO__SCOPES="users.read events.read")

    line = failed_run_line(env, workdir)

    assert "pluvo.trainings page 1" in line and "HTTP 403" in line
    assert "Missing required scope: trainings.read" in line
    assert "the token has users.read events.read" in line
    assert "`scopes`" in line


def test_check_fetches_a_token_and_says_which_scopes_were_granted(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = pluvo_env(sandbox, workdir, SOURCES__PLUVO__SCOPES="users.read events.read")

    result = lxp_sync("check", "pluvo", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "pluvo: ok, token granted with scopes users.read events.read" in result.stdout
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_secrets_never_reach_output_state_or_tables(sandbox: SandboxProcess, workdir: Path) -> None:
    cache = workdir / "private" / "pluvo-token.json"
    env = pluvo_env(sandbox, workdir, SOURCES__PLUVO__TOKEN_CACHE_PATH=str(cache))

    result = lxp_sync("-v", "run", "pluvo", "--resources", "users", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    access_token = next(iter(orjson.loads(cache.read_bytes()).values()))["access_token"]
    for secret in (CLIENT_SECRET, access_token):
        assert secret not in result.stdout + result.stderr
        assert not files_containing(workdir, secret, skip=cache)
    assert (workdir / "lxp_sync.duckdb").exists()
    assert list((workdir / "dlt_data").rglob("*state*")), "the pipeline state was searched"


# --- Counts --------------------------------------------------------------------------------------


def test_fewer_rows_than_the_count_fail_the_run_with_both_numbers(
    pluvo_switches: SandboxProcess, workdir: Path
) -> None:
    sandbox = pluvo_switches
    sandbox.configure(api="pluvo", count_extra=3)
    groups = len(sandbox.truth("pluvo", "paginatedGroups"))

    with pytest.raises(PipelineStepFailed) as failure:
        sync("pluvo", sandbox, workdir, resources=["groups"], max_retries=1)

    line, code = explain(failure.value, "pluvo")
    assert code == 1
    assert line.startswith(
        f"pluvo.groups page 1: hasNextPage is false after {groups} rows where count is {groups + 3}"
    )
