"""Test support: real warehouses (DuckDB, PostgreSQL, a BigQuery emulator) started by the tests.

`destinations.py` is the pytest plugin; `warehouse.py` reads loaded tables back the same way on
every destination; `postgres.py` and `bigquery.py` run the servers as child processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that has the kernel signal the child when the test run dies (Linux)."""

    def _set() -> None:
        # Not Linux: no prctl, and the session's teardown alone stops the server.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))

    return _set


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a server's log, for an error message."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_until_ready(
    probe: Callable[[], bool],
    process: subprocess.Popen,
    log: Path,
    what: str,
    timeout: float,
) -> None:
    """Poll `probe` until it is true; fail early if the process exits, and after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        if probe():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s:\n{log_tail(log)}")


def stop_process(process: subprocess.Popen, sig: int, timeout: float = 15.0) -> None:
    """Ask a server to stop with `sig`, and kill it if it has not stopped after `timeout` s."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
