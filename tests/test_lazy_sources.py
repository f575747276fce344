"""Making a source sends no request: introspection, tokens and catalogs wait for the run.

Airflow parses DAG files every few seconds; each parse that made a source would call the
vendor (and, in Pitchly's refresh_token mode, spend the one-time refresh token). The same
source objects then load the warehouse equal to the truth, finding their resources once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.sources.core.errors import ConnectionFailedError
from lxp_sync.sources.core.lazy import LazySource
from lxp_sync_sandbox.pitchly import INITIAL_REFRESH_TOKEN
from lxp_sync_sandbox.server import SandboxProcess, free_port
from tests import test_pitchly as pitchly
from tests.helpers import sync
from tests.support.warehouse import DuckDBWarehouse
from tests.test_destinations import CASES, reader

# a few resources per source: between them every shape (tests/test_destinations.py)
RESOURCES = {name: case.resources for name, case in CASES.items()}
LAZY = ["plusplus_graphql", "pluvo", "pitchly"]  # plusplus_rest's resources are settings


@pytest.fixture
def quiet(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox, its request log empty and Pitchly's initial refresh token live."""
    sandbox.configure(api="pitchly", reset_refresh_token=True)
    sandbox.clear_requests()
    yield sandbox
    sandbox.configure(api="pitchly", reset_refresh_token=True)


def causes(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def make(name: str, url: str, **extra: object) -> object:
    return SOURCES[name].factory(**{**SOURCES[name].sandbox_args(url), **extra})


@pytest.mark.parametrize("name", list(SOURCES))
def test_a_source_is_made_without_a_request_even_with_the_api_unreachable(
    name: str, quiet: SandboxProcess, workdir: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    unreachable = make(name, closed, max_retries=0)
    made = make(name, quiet.url, resources=RESOURCES[name])

    assert quiet.requests() == []
    assert unreachable.name == made.name == name
    if name in LAZY:
        assert isinstance(made, LazySource) and not made.discovered

    # the same objects, run: the unreachable one fails (never an empty, successful load) ...
    (workdir / "closed").mkdir()
    with pytest.raises(Exception) as failed:
        sync(name, quiet, workdir / "closed", source=unreachable)
    assert any(isinstance(e, ConnectionFailedError) for e in causes(failed.value)), failed.value
    # ... and the reachable one loads the warehouse equal to the truth
    pipeline = sync(name, quiet, workdir, source=made)
    assert set(RESOURCES[name]) <= set(pipeline.default_schema.data_table_names())
    warehouse = DuckDBWarehouse(name, workdir)  # JSON columns parsed, as every warehouse reads
    CASES[name].equals_truth(quiet, reader(warehouse, pipeline), False)


def test_pitchly_in_refresh_token_mode_spends_the_token_only_when_the_run_starts(
    quiet: SandboxProcess, workdir: Path
) -> None:
    settings = {
        "auth_mode": "refresh_token",
        "refresh_token": INITIAL_REFRESH_TOKEN,
        "refresh_token_path": str(workdir / "private" / "pitchly.json"),
        "resources": ["sales__companies"],
    }
    made = [make("pitchly", quiet.url, **settings) for _ in range(3)]  # three DAG parses

    assert pitchly.token_grants(quiet) == []
    assert quiet.requests() == []

    pipeline = sync("pitchly", quiet, workdir, source=made[-1])
    assert pitchly.token_grants(quiet) == ["refresh_token"]
    companies = pitchly.tables_by_name(quiet)["Companies"]["id"]
    pitchly.assert_table_equals_truth(quiet, pipeline, workdir, companies, "sales__companies")


@pytest.mark.parametrize("name", LAZY)
def test_resources_are_found_once_and_listed_like_a_made_source(
    name: str, quiet: SandboxProcess
) -> None:
    made = make(name, quiet.url)
    assert quiet.requests() == []

    listed = list(made.resources)
    asked = len(quiet.requests())
    again = list(made.selected_resources)

    assert listed == again and set(RESOURCES[name]) <= set(listed)
    assert asked > 0 and len(quiet.requests()) == asked  # the second look asks nothing
    for resource in made.resources.values():  # every hint a run needs, as before
        assert resource.compute_table_schema().get("write_disposition")
