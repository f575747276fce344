"""Session fixtures: the sandbox in a child process on 127.0.0.1, and a scratch directory per test."""

from __future__ import annotations

import os

# dlt would send usage telemetry to the internet; tests talk to 127.0.0.1 only
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from lxp_sync_sandbox.server import SandboxProcess

# property-based tests (tests/test_generated_schemas.py): `ci` bounds the examples (the default)
# and draws the same ones on every machine, so that a clean clone's CI is reproducible; `long`
# (`--hypothesis-profile=long`) runs hundreds drawn afresh on every run, outside CI, where new
# bugs are found (a bug found is kept as an example of its own, `FOUND...` in the test module)
_SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=20, deadline=None, suppress_health_check=_SLOW, derandomize=True
)
settings.register_profile("long", max_examples=300, deadline=None, suppress_health_check=_SLOW)
# `debug`: the first failure as found, unshrunk (a schema is slow to shrink)
settings.register_profile(
    "debug",
    max_examples=20,
    deadline=None,
    suppress_health_check=_SLOW,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
settings.load_profile("ci")

pytest_plugins = ["tests.support.destinations", "tests.support.graphene"]

# Small enough to keep the suite fast, large enough for many pages per resource.
SANDBOX_ROWS = int(os.environ.get("LXP_TEST_ROWS", "3000"))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One sandbox for the session; tests that mutate it use their own (`fresh_sandbox`)."""
    with SandboxProcess(rows=SANDBOX_ROWS, seed=42) as process:
        yield process


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxProcess]:
    """A sandbox of its own, for a test that mutates data or injects faults."""
    with SandboxProcess(rows=SANDBOX_ROWS, seed=7) as process:
        yield process


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch cwd with its own dlt data dir, so no test sees another's pipeline state."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    return tmp_path


_exit_status = 0
_figures: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # figures a test records (`record_property("lxp_figures", ...)`: the chaos suite's), also
    # from xdist's workers, which print nothing of their own
    if report.when == "call":
        _figures.extend(str(v) for k, v in report.user_properties if k == "lxp_figures")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("figures")
        for block in _figures:
            terminalreporter.write_line(block)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # duckdb 2.0's bindings print pages of "nanobind: leaked ..." at interpreter shutdown, after
    # pytest's summary; every fixture has torn down and the summary is out, so end here instead.
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
