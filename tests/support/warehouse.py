"""One way to load into, and read back from, every destination the product supports.

`rows()` returns plain, comparable Python values whatever the destination: timestamps as aware
UTC `datetime`s, decimals as `Decimal` (exact: a test can see a lost digit), JSON parsed, binary
as bytes. So a test writes its expected
rows once and compares them with every warehouse.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination

from . import bigquery, postgres

DLT_COLUMN_PREFIX = "_dlt_"


class Warehouse:
    """A destination for one test: its name, a fresh dataset, and readers for loaded tables."""

    name: str = ""
    #: What the destination loads best, without extra packages.
    file_format: str = "parquet"

    def __init__(self, dataset_name: str, workdir: Path) -> None:
        #: Unique to the test; `cleanup()` drops every dataset whose name starts with it.
        self.dataset_name = dataset_name
        self.workdir = workdir
        #: Environment a pipeline run needs (set by the `destination` fixture for the test;
        #: pass it to a child process that runs a pipeline).
        self.env: dict[str, str] = {}

    def make(self, dataset_name: str | None = None, **options: Any) -> Destination:
        """The dlt destination to load into; `options` go to dlt's destination factory."""
        raise NotImplementedError

    def pipeline(
        self, pipeline_name: str = "test", dataset_name: str | None = None, **kwargs: Any
    ) -> dlt.Pipeline:
        """A dlt pipeline into this warehouse, its local state in the test's own directory."""
        dataset_name = dataset_name or self.dataset_name
        return dlt.pipeline(
            pipeline_name=pipeline_name,
            destination=self.make(dataset_name),
            dataset_name=dataset_name,
            pipelines_dir=str(self.workdir / "pipelines"),
            **kwargs,
        )

    def rows(
        self,
        pipeline: dlt.Pipeline,
        table: str,
        *,
        dlt_columns: bool = False,
        order_by: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of a loaded table, values normalized (see the module's docstring).

        dlt's `_dlt_*` columns are left out unless `dlt_columns`. Rows are sorted by `order_by`,
        else by the table's primary key, else by their whole content.
        """
        schema = pipeline.default_schema
        table = _table_name(pipeline, table)
        columns = schema.get_table_columns(table) if table in schema.tables else {}
        with pipeline.sql_client() as client:
            sql = f"SELECT * FROM {client.make_qualified_table_name(table)}"
            with client.execute_query(sql) as cursor:
                names = [description[0] for description in cursor.description]
                records = cursor.fetchall()
        result = []
        for record in records:
            row = {
                name: normalize_value(value, columns.get(name, {}).get("data_type"))
                for name, value in zip(names, record, strict=True)
                if dlt_columns or not name.startswith(DLT_COLUMN_PREFIX)
            }
            result.append(row)
        if order_by is None:
            order_by = [name for name, column in columns.items() if column.get("primary_key")]
        return sorted(result, key=_sort_key(order_by))

    def column_types(self, pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
        """Each column of a loaded table and its type, as the destination names it."""
        table = _table_name(pipeline, table)
        with pipeline.sql_client() as client:
            found = client.execute_sql(self._columns_sql(client, table))
        return {name: data_type for name, data_type in found}

    def _columns_sql(self, client: Any, table: str) -> str:
        return (
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = {_literal(client.dataset_name)}"
            f" AND table_name = {_literal(table)} ORDER BY ordinal_position"
        )

    def cleanup(self) -> None:
        """Drop the datasets this test made (servers are shared by the whole session)."""


class DuckDBWarehouse(Warehouse):
    name = "duckdb"

    def __init__(self, dataset_name: str, workdir: Path) -> None:
        super().__init__(dataset_name, workdir)
        # Never named like a dataset: "Ambiguous reference to catalog or schema" otherwise.
        self.path = workdir / "warehouse.duckdb"
        self.env = {"DESTINATION__DUCKDB__CREDENTIALS": str(self.path)}

    def make(self, dataset_name: str | None = None, **options: Any) -> Destination:
        return dlt.destinations.duckdb(str(self.path), **options)


class PostgresWarehouse(Warehouse):
    name = "postgres"
    # dlt loads parquet into Postgres only through an ADBC driver, which the project does not use.
    file_format = "csv"

    def __init__(self, dataset_name: str, workdir: Path, url: str) -> None:
        super().__init__(dataset_name, workdir)
        self.url = url
        self.env = {"DESTINATION__POSTGRES__CREDENTIALS": url}

    def make(self, dataset_name: str | None = None, **options: Any) -> Destination:
        return dlt.destinations.postgres(self.url, **options)

    def cleanup(self) -> None:
        postgres.drop_schemas(self.url, self.dataset_name)


class BigQueryWarehouse(Warehouse):
    """The bqemulator; its known faults are worked around here, not in the product.

    - A table name that is not qualified with project and dataset reads as empty: every query
      here names `project.dataset.table`.
    - A load job's `output_rows` counts the whole table, not the rows loaded: do not assert on it.
    """

    name = "bigquery"
    # dlt cannot load JSON columns into BigQuery from parquet.
    file_format = "jsonl"

    def __init__(self, dataset_name: str, workdir: Path, url: str, project_id: str) -> None:
        super().__init__(dataset_name, workdir)
        self.url, self.project_id = url, project_id
        self.env = {
            "BIGQUERY_EMULATOR_HOST": url,
            # google-auth reads this once, at import, and only the lowercase "true" counts.
            "NO_GCE_CHECK": "true",
            # The emulator does not read gzip-compressed load files.
            "NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION": "true",
        }

    def make(self, dataset_name: str | None = None, **options: Any) -> Destination:
        options.setdefault("location", bigquery.LOCATION)
        credentials = bigquery.emulator_credentials(self.project_id)
        return dlt.destinations.bigquery(credentials=credentials, **options)

    def _columns_sql(self, client: Any, table: str) -> str:
        return (
            "SELECT column_name, data_type FROM"
            f" {client.fully_qualified_dataset_name()}.INFORMATION_SCHEMA.COLUMNS"
            f" WHERE table_name = {_literal(table)} ORDER BY ordinal_position"
        )

    def cleanup(self) -> None:
        bigquery.drop_datasets(self.url, self.dataset_name, self.project_id)


def normalize_value(value: Any, data_type: str | None = None) -> Any:
    """A value read from any destination, as the one Python value a test expects."""
    if value is None or isinstance(value, bool):
        return value
    if data_type == "json" and isinstance(value, str | bytes):
        return json.loads(value)
    if isinstance(value, Decimal):
        return value  # compares by value: Decimal("2.5") == Decimal("2.500")
    if isinstance(value, dt.datetime):
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        # A plain datetime (not pendulum's, nor carrying pytz's UTC), so that reprs match too.
        return dt.datetime(*value.timetuple()[:6], value.microsecond, tzinfo=dt.UTC)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def _table_name(pipeline: dlt.Pipeline, table: str) -> str:
    """The table's name in the warehouse: as given if the schema has it, else normalized."""
    schema = pipeline.default_schema
    return table if table in schema.tables else schema.naming.normalize_table_identifier(table)


def _sort_key(order_by: Sequence[str]):
    if order_by:
        return lambda row: tuple((row.get(name) is None, row.get(name)) for name in order_by)
    return lambda row: json.dumps(row, sort_keys=True, default=str)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
