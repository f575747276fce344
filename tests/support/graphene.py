"""A PlusPlus GraphQL API served by graphene-django itself (`sandbox/graphene_stand_in`).

graphene 3 needs graphql-core < 3.3, the sandbox runs on 3.3: the stand-in lives in a venv of
its own, `.test-env/graphene` (git-ignored), created on first use and reused after. It runs as a
child process on a free 127.0.0.1 port, with a fresh SQLite database seeded from `seed`, so that
introspection, errors, limits and paging are the framework's, not ours. A pytest plugin: the
`standin` (per module) and `fresh_standin` fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import HttpServerProcess, venvs

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
    venv = venvs.env_dir("graphene", "LXP_TEST_GRAPHENE_VENV")
    return venvs.ensure_venv(venv, REQUIREMENTS, timeout=timeout)


class GrapheneStandIn(HttpServerProcess):
    """The stand-in in a child process; a context manager. `max_limit`: graphene's page limit."""

    what = "graphene-stand-in"
    ready_path = "/_health"

    def __init__(self, seed: int = 42, max_limit: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.max_limit = max_limit

    @property
    def graphql_url(self) -> str:
        """The endpoint as PlusPlus's examples write it: no trailing slash."""
        return f"{self.url}/graphql"

    def source_args(self) -> dict[str, str]:
        return {"base_url": self.graphql_url, "api_token": API_TOKEN}

    def _start(self, timeout: float) -> None:
        assert self.root is not None
        python = ensure_graphene_venv() / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        if self.max_limit is not None:
            env["PP_STANDIN_MAX_LIMIT"] = str(self.max_limit)
        database = self.root / "standin.sqlite3"

        def command(port: int) -> list[str]:
            database.unlink(missing_ok=True)  # a retry seeds a fresh database
            return [str(python), str(SERVE), "--port", str(port), "--db", str(database),
                    "--seed", str(self.seed)]  # fmt: skip

        self._launch(command, env, timeout)

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
