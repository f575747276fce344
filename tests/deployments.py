"""What the deployment tests (Airflow, GitHub Actions) share: reading a scheduler's loads back
from the warehouse the way a fresh worker does, and comparing them with the sandbox's truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlt.pipeline.pipeline import Pipeline

from lxp_sync_sandbox.server import SandboxProcess
from tests.support.warehouse import Warehouse
from tests.test_destinations import CASES, assert_no_duplicate_keys, reader


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
