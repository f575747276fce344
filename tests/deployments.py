"""What the deployment tests (Airflow, GitHub Actions) share: reading a scheduler's loads back
from the warehouse the way a fresh worker does, and comparing them with the sandbox's truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tomlkit
from dlt.pipeline.pipeline import Pipeline

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync_sandbox.server import SandboxProcess
from tests.support.warehouse import Warehouse
from tests.test_destinations import CASES, assert_no_duplicate_keys, reader

REPO = Path(__file__).resolve().parents[1]
SECRETS = {"api_token", "client_secret"}  # of the sandbox's settings, the secret ones


def write_project(folder: Path, sandbox: SandboxProcess, *, with_secrets: bool) -> Path:
    """A project folder as a user sets one up: the repository's .dlt/config.toml with every
    source's settings filled in (the sandbox's; the resources tests/test_destinations.py checks),
    and, `with_secrets`, .dlt/secrets.toml from its example with the secrets filled in."""
    (folder / ".dlt").mkdir(parents=True)
    config = tomlkit.parse((REPO / ".dlt" / "config.toml").read_text())
    secrets = tomlkit.parse((REPO / ".dlt" / "secrets.toml.example").read_text())
    for name, spec in SOURCES.items():
        for key, value in spec.sandbox_args(sandbox.url).items():
            if key in SECRETS:  # the example names every secret a source needs
                assert key in secrets["sources"][name], f"secrets.toml.example: {name}.{key}"
            (secrets if key in SECRETS else config)["sources"][name][key] = value
        config["sources"][name]["resources"] = CASES[name].resources
    (folder / ".dlt" / "config.toml").write_text(tomlkit.dumps(config))
    if with_secrets:
        (folder / ".dlt" / "secrets.toml").write_text(tomlkit.dumps(secrets))
    return folder


def repository_secrets(sandbox: SandboxProcess) -> dict[str, str]:
    """The sandbox's secrets under the names the GitHub Actions templates give them."""
    return {
        f"{name.upper()}_{key.upper()}": str(value)
        for name, spec in SOURCES.items()
        for key, value in spec.sandbox_args(sandbox.url).items()
        if key in SECRETS
    }


def restored_pipeline(warehouse: Warehouse, name: str, dataset: str, schema: str) -> Pipeline:
    """The pipeline `name`, its state and schema `schema` taken from the warehouse alone."""
    pipeline = warehouse.pipeline(name, dataset_name=dataset)
    pipeline.sync_destination()
    assert pipeline.default_schema_name == schema, f"{name}: no schema {schema} in the warehouse"
    return pipeline


def assert_sources_equal_truth(
    warehouse: Warehouse,
    sandbox: SandboxProcess,
    pipelines: Mapping[str, Sequence[Pipeline]],
    *,
    changed: bool,
) -> None:
    """Each source's tables (read through its pipelines) equal the truth of its test case in
    tests/test_destinations.py; no key is loaded twice."""
    for source, loaded_by in pipelines.items():
        readers = {}
        for pipeline in loaded_by:
            read = reader(warehouse, pipeline)
            assert_no_duplicate_keys(pipeline, read)
            readers.update(dict.fromkeys(pipeline.default_schema.data_table_names(), read))
        CASES[source].equals_truth(sandbox, lambda t, readers=readers: readers[t](t), changed)
