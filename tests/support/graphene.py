"""A PlusPlus GraphQL API served by graphene-django itself (`sandbox/graphene_stand_in`).

graphene 3 needs graphql-core < 3.3, the sandbox runs on 3.3: the stand-in lives in a venv of
its own, `.test-env/graphene` (git-ignored), created on first use and reused after. It runs as a
child process on a free 127.0.0.1 port, with a fresh SQLite database seeded from `seed`, so that
introspection, errors, limits and paging are the framework's, not ours. A pytest plugin: the
`standin` (per module) and `fresh_standin` fixtures.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lxp_sync_sandbox.server import free_port

from . import die_with_parent, log_tail, stop_process, venvs, wait_until_ready

REQUIREMENTS = (
    "Django==5.2.19",
    "django-filter==25.2",
    "graphene==3.4.3",
    "graphene-django==3.2.3",
    "graphql-core==3.2.14",
    "graphql-relay==3.2.0",
    "waitress==3.0.2",
    "asgiref==3.13.0",
    "promise==2.3",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "sqlparse==0.6.1",
    "text-unidecode==1.3",
    "typing-extensions==4.16.0",
)
SERVE = venvs.REPO_ROOT / "sandbox" / "graphene_stand_in" / "serve.py"
API_TOKEN = "stand-in-graphql-token"


def ensure_graphene_venv(timeout: float = 600.0) -> Path:
    """The stand-in's venv (`LXP_TEST_GRAPHENE_VENV` overrides `.test-env/graphene`)."""
    venv = venvs.venv_dir("graphene", "LXP_TEST_GRAPHENE_VENV")
    return venvs.ensure_venv(venv, REQUIREMENTS, timeout=timeout)


class GrapheneStandIn:
    """The stand-in in a child process; a context manager. `max_limit`: graphene's page limit."""

    def __init__(self, seed: int = 42, max_limit: int | None = None) -> None:
        self.seed = seed
        self.max_limit = max_limit
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None
        self.log = Path(os.devnull)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        """The endpoint as PlusPlus's examples write it: no trailing slash."""
        return f"{self.url}/graphql"

    def source_args(self) -> dict[str, str]:
        return {"base_url": self.graphql_url, "api_token": API_TOKEN}

    def start(self, timeout: float = 60.0) -> GrapheneStandIn:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> GrapheneStandIn:
        python = ensure_graphene_venv() / "bin" / "python"
        self.root = Path(tempfile.mkdtemp(prefix="lxp-graphene-"))
        self.log = self.root / "standin.log"
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        if self.max_limit is not None:
            env["PP_STANDIN_MAX_LIMIT"] = str(self.max_limit)
        for attempt in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            database = self.root / f"standin-{attempt}.sqlite3"
            cmd = [str(python), str(SERVE), "--port", str(self.port), "--db", str(database)]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [*cmd, "--seed", str(self.seed)],
                    env=env,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(signal.SIGTERM),
                )
            try:
                wait_until_ready(self._ready, self.process, self.log, "graphene stand-in", timeout)
                return self
            except RuntimeError:
                if "address already in use" not in log_tail(self.log).lower():
                    raise
        raise RuntimeError(f"graphene stand-in found no free port:\n{log_tail(self.log)}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> GrapheneStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the stand-in's own endpoints, for tests
    def truth(self, entity: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_truth/{entity}", timeout=60)
        response.raise_for_status()
        return response.json()["data"]

    def mutate(self, **spec: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_mutate", json=spec, timeout=60)
        response.raise_for_status()
        return response.json()

    def requests(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/_requests", timeout=30).json()["requests"]

    def clear_requests(self) -> None:
        httpx.delete(f"{self.url}/_requests", timeout=30).raise_for_status()


@pytest.fixture(scope="module")
def standin() -> Iterator[GrapheneStandIn]:
    """One stand-in per test module, for the tests that only read."""
    with GrapheneStandIn(seed=42) as process:
        yield process


@pytest.fixture
def fresh_standin() -> Iterator[GrapheneStandIn]:
    """A stand-in of its own, for a test that mutates data."""
    with GrapheneStandIn(seed=7) as process:
        yield process
