"""pytest plugin: the `destination` fixture, one test run per warehouse the product loads into.

Load it from tests/conftest.py with `pytest_plugins = ["tests.support.destinations"]`.

- `destination` is parametrized over `duckdb`, `postgres` and `bigquery` (test ids and markers of
  those names: `-k postgres`, `-m "not bigquery"`). It yields a `Warehouse` with a dataset name
  unique to the test, and sets the environment the destination needs for the test's duration.
  To run a test on some destinations only:
  `@pytest.mark.parametrize("destination", ["duckdb", "postgres"], indirect=True)`.
- PostgreSQL and the BigQuery emulator start on first use, once per session, and stop at its end.
  `LXP_TEST_POSTGRES_URL` (a `postgresql://user:password@host:port/db` URL) or
  `LXP_TEST_BIGQUERY_EMULATOR_HOST` (an emulator's `http://host:port`, project
  `LXP_TEST_BIGQUERY_PROJECT`) use a server that is already running instead.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from . import bigquery, postgres
from .warehouse import BigQueryWarehouse, DuckDBWarehouse, PostgresWarehouse, Warehouse

# google-auth reads this when first imported: never probe a cloud metadata server from a test.
os.environ["NO_GCE_CHECK"] = "true"
# dlt would otherwise send anonymous usage telemetry over the internet from every test run.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

DESTINATIONS = ("duckdb", "postgres", "bigquery")


def pytest_configure(config: pytest.Config) -> None:
    for name in DESTINATIONS:
        config.addinivalue_line("markers", f"{name}: the test runs against the {name} destination")
    # dlt[bigquery] reads query results over REST; the Storage API client is optional.
    config.addinivalue_line(
        "filterwarnings", "ignore:Cannot create BigQuery Storage client:UserWarning"
    )


@dataclass(frozen=True)
class EmulatorEndpoint:
    url: str
    project_id: str


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for dlt (with a password, which dlt requires even under trust auth)."""
    url = os.environ.get("LXP_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with postgres.LocalPostgres() as server:
        yield server.url


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[EmulatorEndpoint]:
    """A running BigQuery emulator; its venv is created first when missing (a minute or more)."""
    url = os.environ.get("LXP_TEST_BIGQUERY_EMULATOR_HOST")
    if url:
        yield EmulatorEndpoint(
            url, os.environ.get("LXP_TEST_BIGQUERY_PROJECT", bigquery.PROJECT_ID)
        )
        return
    with bigquery.BigQueryEmulator() as emulator:
        yield EmulatorEndpoint(emulator.url, emulator.project_id)


@pytest.fixture(
    params=[pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in DESTINATIONS]
)
def destination(
    request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Warehouse]:
    """A warehouse of each kind in turn, with a dataset of the test's own."""
    dataset_name = unique_dataset_name(request.node.name)
    workdir = tmp_path / "destination"
    workdir.mkdir()
    warehouse: Warehouse
    if request.param == "duckdb":
        warehouse = DuckDBWarehouse(dataset_name, workdir)
    elif request.param == "postgres":
        warehouse = PostgresWarehouse(
            dataset_name, workdir, request.getfixturevalue("postgres_url")
        )
    elif request.param == "bigquery":
        endpoint: EmulatorEndpoint = request.getfixturevalue("bigquery_emulator")
        warehouse = BigQueryWarehouse(dataset_name, workdir, endpoint.url, endpoint.project_id)
    else:
        raise ValueError(f"unknown destination {request.param!r}; known: {DESTINATIONS}")
    for key, value in warehouse.env.items():
        monkeypatch.setenv(key, value)
    yield warehouse
    warehouse.cleanup()


def unique_dataset_name(test_name: str) -> str:
    """A dataset name that no other test uses, readable in the warehouse: `t_<test>_<random>`."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.split("[")[0].lower()).strip("_")
    slug = slug.removeprefix("test_")[:24].rstrip("_")
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"
