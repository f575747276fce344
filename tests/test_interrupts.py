"""Waits that end: the pacer at one request per window, SIGINT and SIGTERM, a second run at once.

Real `lxp-sync run` processes against the sandbox: each must end (or stop) in bounded time, and
leave the pipeline so that the next plain run equals the truth.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxp_sync.pipelines.interrupts import GRACE_S
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.sources.core import stop
from lxp_sync.sources.core.errors import Interrupted
from lxp_sync.sources.core.http import MIN_RECHECK_S, STOP_CHECK_S, RateLimitPacer
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import LXP_SYNC, lxp_sync, source_env
from tests.support.runs import run_args, warehouse_rows
from tests.test_destinations import CASES

ROWS = 600
WINDOW_S = 0.05


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=32) as process:
        yield process


@pytest.fixture
def one_request_per_window(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox.configure(rate_limit=1, rate_window_s=WINDOW_S)
    try:
        yield sandbox
    finally:
        sandbox.configure(rate_limit=0, rate_window_s=1.0)


@pytest.mark.parametrize("source", list(SOURCES))
def test_every_source_completes_at_one_request_per_window_and_equals_truth(
    source: str,
    one_request_per_window: SandboxProcess,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = one_request_per_window
    sandbox.clear_requests()
    started = time.monotonic()

    result = lxp_sync(*run_args(source), env=source_env(source, sandbox, workdir), timeout=90)

    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    CASES[source].equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), False)
    requests = sandbox.requests(source)
    refused = sum(1 for entry in requests if entry["status"] == 429)
    print(f"{source}: {len(requests)} requests ({refused} refused) in {elapsed:.1f}s")
    # paced, not hammering: most requests find their slot
    assert refused <= len(requests) // 2, f"{refused} of {len(requests)} requests refused"


# --- the pacer's bounds, on the real class ------------------------------------------------------


def test_pacer_rechecks_a_wait_longer_than_the_window_it_knows_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = RateLimitPacer()
    ticket = pacer.acquire()
    pacer.release(
        ticket, {"x-ratelimit-limit": "5", "x-ratelimit-remaining": "4", "x-ratelimit-reset": "0.5"}
    )
    ticket = pacer.acquire()
    pacer.release(ticket, None, retry_after=3600)  # a 429 that says: come back in an hour

    started = time.monotonic()
    pacer.acquire()

    waited = time.monotonic() - started
    # a timed wait may wake a fraction of a millisecond early (0.9993 s once, under load)
    assert MIN_RECHECK_S - 0.01 <= waited < MIN_RECHECK_S + 1, waited
    assert "longer than the 0.5s window the API announced" in caplog.text


def test_pacer_and_backoff_end_at_once_on_a_stop_request() -> None:
    pacer = RateLimitPacer()
    ticket = pacer.acquire()
    pacer.release(ticket, None, retry_after=3600)
    threading.Timer(0.3, stop.request_stop, args=("SIGINT",)).start()
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            pacer.acquire()
        assert time.monotonic() - started < 0.3 + STOP_CHECK_S + 0.2
        with pytest.raises(Interrupted):
            stop.sleep(60)
    finally:
        stop.reset()


# --- signals to a real run -----------------------------------------------------------------------


def start(
    args: list[str], env: dict[str, str], cwd: Path, hold: str | None = None
) -> subprocess.Popen:
    """The command in the background; `hold`: `POINT:SECONDS`, held there (killpoints)."""
    command = [LXP_SYNC, *args]
    if hold:
        point, seconds = hold.split(":")
        command = [
            sys.executable,
            "-m",
            "tests.support.killpoints",
            point,
            "--hold",
            seconds,
            "--",
            *args,
        ]
    return subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 120) -> list[str]:
    """Stderr lines up to the one containing `text`."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            raise AssertionError(f"the run ended before {text!r}:\n{''.join(lines)}")
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s")


def stop_with(process: subprocess.Popen, sig: int) -> tuple[float, str]:
    """Send `sig`; returns the seconds until the process ended and the rest of its stderr."""
    started = time.monotonic()
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    return time.monotonic() - started, stderr


def assert_stopped_in_one_line(stderr: str, sig: int) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("lxp-sync:")]
    name = signal.Signals(sig).name
    assert lines == [f"lxp-sync: interrupted ({name}); the next run resumes safely"], stderr
    assert "Traceback" not in stderr


def test_sigint_during_extract_stops_within_seconds_and_the_next_run_equals_truth(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    sandbox.configure(latency_ms=300)  # pages take a while: the signal lands mid-extract
    try:
        process = start(run_args(source), env, workdir)
        wait_for_line(process, "rows, ")  # the first progress line: paging under way
        seconds, stderr = stop_with(process, signal.SIGINT)
    finally:
        sandbox.configure(latency_ms=0)

    print(f"SIGINT during extract: exited in {seconds:.2f}s")
    assert process.returncode == 130
    assert seconds < 3
    assert_stopped_in_one_line(stderr, signal.SIGINT)
    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    CASES[source].equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), False)


def test_sigterm_during_load_stops_within_seconds_and_the_next_run_equals_truth(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "plusplus_rest"
    env = source_env(source, sandbox, workdir)
    process = start(run_args(source), env, workdir, hold="load.job_started:2")  # a slow job
    wait_for_line(process, "killpoint load.job_started reached")

    seconds, stderr = stop_with(process, signal.SIGTERM)

    print(f"SIGTERM during load (a 2s job running): exited in {seconds:.2f}s")
    assert process.returncode == 143
    assert seconds < GRACE_S + 1
    assert_stopped_in_one_line(stderr, signal.SIGTERM)
    rerun = lxp_sync(*run_args(source), env=env, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    CASES[source].equals_truth(sandbox, warehouse_rows(source, workdir, monkeypatch), False)


@pytest.mark.parametrize("waiting_on", ["pacer", "backoff"])
def test_sigint_while_waiting_on_the_pacer_or_a_backoff_stops_at_once(
    waiting_on: str, sandbox: SandboxProcess, workdir: Path
) -> None:
    source = "plusplus_rest"
    sandbox.clear_requests()
    if waiting_on == "pacer":
        sandbox.configure(rate_limit=1, rate_window_s=120)  # one request, then two minutes
    else:
        sandbox.fault(api=source, path_contains="users", status=503, count=5, retry_after=60)
    try:
        process = start(run_args(source), source_env(source, sandbox, workdir), workdir)
        deadline = time.monotonic() + 60
        while not sandbox.requests(source) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # well into the wait
        seconds, stderr = stop_with(process, signal.SIGINT)
    finally:
        sandbox.configure(rate_limit=0, rate_window_s=1.0)
        sandbox.clear_requests()  # and the faults left

    print(f"SIGINT while waiting on the {waiting_on}: exited in {seconds:.2f}s")
    assert process.returncode == 130
    assert seconds < 5  # not the 60 s the server asked to wait (a busy machine takes a second)
    assert_stopped_in_one_line(stderr, signal.SIGINT)
