"""A local BigQuery: the `bqemulator` package (REST on 127.0.0.1), in a virtual env of its own.

The emulator pins duckdb 1.5.5, the project uses duckdb 2.0: the two cannot share a venv, so the
emulator lives in `.test-env/bqemulator` (git-ignored), created on first use and reused after.
DuckDB's `spatial` extension, which the emulator loads at start, comes from the
`duckdb-extension-spatial` wheel rather than from the network, into an extension directory inside
that venv (the emulator runs with HOME set there).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import HttpServerProcess, venvs

# numpy is needed by the emulator (DuckDB Python UDFs) but not declared by it.
REQUIREMENTS = (
    "bqemulator==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extensions==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "numpy==2.4.6",
)
PROJECT_ID = "test-project"  # the emulator's default project
LOCATION = "US"


def venv_dir() -> Path:
    """Where the emulator's venv lives (`LXP_TEST_BQEMULATOR_VENV` overrides)."""
    return venvs.env_dir("bqemulator", "LXP_TEST_BQEMULATOR_VENV")


def ensure_emulator_venv(venv: Path | None = None, timeout: float = 900.0) -> Path:
    """Create the emulator's venv unless it is already there as pinned; return `bqemulator`."""

    def spatial_extension(venv: Path, deadline: float) -> None:
        (venv / "home").mkdir()
        script = "import duckdb_extensions; duckdb_extensions.import_extension('spatial')"
        python = str(venv / "bin" / "python")
        venvs.run([python, "-c", script], deadline, env=_emulator_env(venv))

    venv = venvs.ensure_venv(
        venv or venv_dir(), REQUIREMENTS, finish=spatial_extension, timeout=timeout
    )
    return venv / "bin" / "bqemulator"


def _emulator_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQEMU_", "VIRTUAL_ENV"))}
    # DuckDB keeps extensions under ~/.duckdb: this HOME keeps them inside the venv.
    env["HOME"] = str(venv / "home")
    return env


class BigQueryEmulator(HttpServerProcess):
    """bqemulator in a child process on a free 127.0.0.1 port, in memory; a context manager.

    `url` is the value for `BIGQUERY_EMULATOR_HOST`.
    """

    what = "bqemulator"
    ready_path = "/readyz"

    def __init__(self, project_id: str = PROJECT_ID) -> None:
        super().__init__()
        self.project_id = project_id

    def _start(self, timeout: float) -> None:
        assert self.root is not None
        executable = ensure_emulator_venv()
        env = _emulator_env(executable.parent.parent)
        env.update(
            BQEMU_LOG_LEVEL="warning",
            BQEMU_UPLOAD_STAGING_DIR=str(self.root / "uploads"),
            # Its Avro extension would be downloaded from the network at start: we have none.
            BQEMU_ENABLE_FORMAT_EXTENSIONS="false",
        )
        self._launch(
            lambda port: [
                str(executable),
                "start",
                *("--rest-host", "127.0.0.1", "--rest-port", str(port)),
                *("--grpc-host", "127.0.0.1", "--grpc-port", "0"),
                *("--ephemeral", "--project", self.project_id),
            ],
            env,
            timeout,
        )


def emulator_credentials(project_id: str = PROJECT_ID):  # -> GcpOAuthCredentials
    """dlt credentials holding a ready OAuth token: nothing is fetched from Google.

    dlt's BigQuery client is built from these; it reaches the emulator through
    `BIGQUERY_EMULATOR_HOST`, which google-cloud-bigquery reads when it has no explicit endpoint.
    """
    from dlt.common.configuration.specs import GcpOAuthCredentials
    from google.oauth2.credentials import Credentials

    credentials = GcpOAuthCredentials()
    credentials.parse_native_representation(
        Credentials(token="emulator", quota_project_id=project_id)
    )
    return credentials


def bigquery_client(url: str, project_id: str = PROJECT_ID):  # -> google.cloud.bigquery.Client
    """A google-cloud-bigquery client for the emulator at `url`."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(
        project=project_id,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=url),
    )


def drop_datasets(url: str, prefix: str, project_id: str = PROJECT_ID) -> None:
    """Delete every dataset whose id starts with `prefix`, with its tables."""
    client = bigquery_client(url, project_id)
    try:
        for dataset in client.list_datasets(project_id, timeout=30):
            if dataset.dataset_id.startswith(prefix):
                client.delete_dataset(dataset.reference, delete_contents=True, timeout=30)
    finally:
        client.close()
