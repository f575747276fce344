"""`lxp-sync discover SOURCE`: what the tenant has, from one small page per resource, loading nothing.

For every source, against the sandbox: the resources are those the API has, each with the row
count the API's truth has, its key, how it reads (the server's filter where the API has one),
and columns with the names and types a real load of the same resources creates; no pipeline
state or warehouse file appears, and each resource costs one request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.sources.plusplus.settings import REST_ENDPOINTS
from lxp_sync_sandbox.plusplus_graphql_data import ENTITIES as GRAPHQL_ENTITIES
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync, source_env, sync
from tests.test_pitchly import TABLES as PITCHLY_TABLES
from tests.test_pluvo import CONNECTIONS as PLUVO_CONNECTIONS

KEYS = {"plusplus_rest": "public_id", "plusplus_graphql": "pk", "pluvo": "id", "pitchly": "id"}


def expected(source: str, sandbox: SandboxProcess) -> dict[str, tuple[int, str, str | None]]:
    """resource -> (rows, how it reads, the server's filter), from the sandbox's own truth."""
    if source == "plusplus_rest":
        return {
            name: (
                len(sandbox.truth(source, name)),
                "server" if e.server_cursor else "client" if e.client_cursor else "full",
                f"{e.server_cursor}_gte" if e.server_cursor else None,
            )
            for name, e in REST_ENDPOINTS.items()
        }
    if source == "plusplus_graphql":
        return {
            e.name: (
                len(sandbox.truth(source, e.name)),
                # a creation time is no cursor (edits move none): such a type reads in full
                "server" if e.incremental else "client" if e.has_modified else "full",
                "modified_gte" if e.incremental else None,
            )
            for e in GRAPHQL_ENTITIES.values()
            if e.root and not e.optional
        }
    if source == "pluvo":
        return {
            name: (len(sandbox.truth(source, connection)), "client", None)
            for name, connection in PLUVO_CONNECTIONS.items()
        }
    found: dict[str, tuple[int, str, str | None]] = {
        kind: (len(sandbox.truth(source, kind)), "replace", None)
        for kind in ("workspaces", "tables", "fields")
    }
    for table in sandbox.truth(source, "tables"):
        if table["name"] not in PITCHLY_TABLES:
            continue  # not ready: skipped
        fields = sandbox.truth(source, f"fields:{table['id']}")
        updated = any(f["type"] == "updatedAt" for f in fields)
        found[PITCHLY_TABLES[table["name"]]] = (
            len(sandbox.truth(source, f"records:{table['id']}")),
            "server" if updated else "replace",
            "filter: Updated At is-on-or-after the cursor" if updated else None,
        )
    return found


def page_requests(sandbox: SandboxProcess, source: str) -> list[str]:
    """What each data request of `source` asked for (REST paths, GraphQL root fields)."""
    found = []
    for request in sandbox.requests(source):
        if source == "plusplus_rest":
            found.append(request["path"])
        else:
            fields = request.get("extra", {}).get("root_fields") or []
            # introspection, and Pitchly's catalog (read when the source is made)
            found += [f for f in fields if f not in ("__schema", "__typename", "workspaces")]
    return found


@pytest.mark.parametrize("source", SOURCES)
def test_discover_lists_resources_counts_keys_reads_and_columns_as_a_load_creates_them(
    sandbox: SandboxProcess, workdir: Path, source: str
) -> None:
    env = source_env(source, sandbox, workdir)
    before = len(page_requests(sandbox, source))
    result = lxp_sync("discover", source, "--json", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    asked = page_requests(sandbox, source)[before:]
    document = json.loads(result.stdout)
    found = {each["resource"]: each for each in document["resources"]}

    assert document["source"] == source
    want = expected(source, sandbox)
    assert set(found) == set(want)
    for name, (rows, mode, server_filter) in want.items():
        got = found[name]
        assert (got["rows"], got["incremental"], got["server_filter"]) == (
            rows,
            mode,
            server_filter,
        ), name
        assert got["primary_key"] == [KEYS[source]], name
        assert (got["cursor"] is None) == (mode in ("full", "replace")), name
    # nothing loaded, no state: the command's own pipeline folder and DuckDB file never appear
    assert not (workdir / "dlt_data").exists() or not list((workdir / "dlt_data").rglob("*state*"))
    assert not (workdir / "warehouse.duckdb").exists()
    # one request per resource read from the API (Pitchly's catalog is read with the source)
    read = [name for name in want if source != "pitchly" or name in PITCHLY_TABLES.values()]
    assert len(asked) == len(read), asked

    # the columns as a real load of the same resources creates them, with dlt's types
    pipeline = sync(source, sandbox, workdir)
    schema = pipeline.default_schema
    for got in found.values():
        tables = {got["table"]: got["columns"]} | {
            child["name"]: child["columns"] for child in got["child_tables"]
        }
        children = {t["name"] for t in schema.data_tables() if t.get("parent") == got["table"]}
        assert set(tables) == {got["table"], *children}, got["resource"]
        for table, columns in tables.items():
            loaded = schema.get_table_columns(table)
            seen = {c["name"]: c["type"].split("(")[0] for c in columns}
            assert seen, f"{table}: no columns"
            assert seen == {
                column: loaded[column]["data_type"] for column in seen if column in loaded
            }, table
            missing = [c for c in loaded if c not in seen and not c.startswith("_dlt")]
            print(table, "missing", missing)
            assert not missing, f"{table}: {missing} not discovered"


@pytest.mark.parametrize("source", SOURCES)
def test_discover_prints_one_line_per_resource_then_its_columns(
    sandbox: SandboxProcess, workdir: Path, source: str
) -> None:
    result = lxp_sync("discover", source, env=source_env(source, sandbox, workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    want = expected(source, sandbox)

    assert lines[0] == f"{source}: {len(want)} resources ({SOURCES[source].description})"
    for name, (rows, mode, server_filter) in want.items():
        header = next(line for line in lines if line.startswith(f"{name}: "))
        assert header.startswith(f"{name}: {rows:,} rows; key {KEYS[source]}; "), header
        said = {
            "server": f"the server filters ({server_filter})",
            "client": "every row read, the new ones kept",
            "full": "every row read on each run and merged on the key",
            "replace": "every row read on each run, the table replaced",
        }
        assert said[mode] in header, header
        # then its columns, indented, the key among them
        columns = lines[lines.index(header) + 1 :]
        assert any(line.split()[:1] == [KEYS[source]] for line in columns[:40]), name
    assert "rows/s" not in result.stderr  # no progress lines for one-page reads


def test_discover_a_subset_reads_only_those_resources(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = source_env("plusplus_rest", sandbox, workdir)
    before = len(page_requests(sandbox, "plusplus_rest"))
    result = lxp_sync("discover", "plusplus_rest", "--resources", "groups", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert [r["resource"] for r in json.loads(result.stdout)["resources"]] == ["groups"]
    assert page_requests(sandbox, "plusplus_rest")[before:] == ["/plusplus_rest/api/v1/groups/"]
