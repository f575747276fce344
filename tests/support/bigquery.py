"""A local BigQuery: the `bqemulator` package (REST on 127.0.0.1), in a virtual env of its own.

The emulator pins duckdb 1.5.5, the project uses duckdb 2.0: the two cannot share a venv, so the
emulator lives in `.test-env/bqemulator` (git-ignored), created on first use and reused after.
DuckDB's `spatial` extension, which the emulator loads at start, comes from the
`duckdb-extension-spatial` wheel rather than from the network, into an extension directory inside
that venv (the emulator runs with HOME set there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx

from lxp_sync_sandbox.server import free_port

from . import die_with_parent, log_tail, stop_process, wait_until_ready
from .venvs import ensure_venv, env_dir, run

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
    return env_dir("bqemulator", "LXP_TEST_BQEMULATOR_VENV")


def ensure_emulator_venv(venv: Path | None = None, timeout: float = 900.0) -> Path:
    """Create the emulator's venv unless it is already there as pinned; return `bqemulator`."""
    venv = ensure_venv(venv or venv_dir(), REQUIREMENTS, finish=_install_spatial, timeout=timeout)
    return venv / "bin" / "bqemulator"


def _install_spatial(venv: Path, deadline: float) -> None:
    (venv / "home").mkdir()
    script = "import duckdb_extensions; duckdb_extensions.import_extension('spatial')"
    run([str(venv / "bin" / "python"), "-c", script], deadline, env=_emulator_env(venv))


def _emulator_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQEMU_", "VIRTUAL_ENV"))}
    # DuckDB keeps extensions under ~/.duckdb: this HOME keeps them inside the venv.
    env["HOME"] = str(venv / "home")
    return env


class BigQueryEmulator:
    """bqemulator in a child process on a free 127.0.0.1 port, in memory; a context manager."""

    def __init__(self, project_id: str = PROJECT_ID) -> None:
        self.project_id = project_id
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None
        self.log = Path(os.devnull)

    @property
    def url(self) -> str:
        """The value for `BIGQUERY_EMULATOR_HOST`."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> BigQueryEmulator:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> BigQueryEmulator:
        executable = ensure_emulator_venv()
        self.root = Path(tempfile.mkdtemp(prefix="lxp-bqemulator-"))
        self.log = self.root / "bqemulator.log"
        env = _emulator_env(executable.parent.parent)
        env.update(
            BQEMU_LOG_LEVEL="warning",
            BQEMU_UPLOAD_STAGING_DIR=str(self.root / "uploads"),
            # Its Avro extension would be downloaded from the network at start: we have none.
            BQEMU_ENABLE_FORMAT_EXTENSIONS="false",
        )
        for _attempt in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            cmd = [
                str(executable),
                "start",
                *("--rest-host", "127.0.0.1", "--rest-port", str(self.port)),
                *("--grpc-host", "127.0.0.1", "--grpc-port", "0"),
                *("--ephemeral", "--project", self.project_id),
            ]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    cmd,
                    env=env,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(signal.SIGTERM),
                )
            try:
                wait_until_ready(self._ready, self.process, self.log, "bqemulator", timeout)
                return self
            except RuntimeError:
                if "address already in use" not in log_tail(self.log).lower():
                    raise
        raise RuntimeError(f"bqemulator found no free port:\n{log_tail(self.log)}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
