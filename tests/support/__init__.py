"""Test support: real warehouses (DuckDB, PostgreSQL, a BigQuery emulator) started by the tests.

`destinations.py` is the pytest plugin; `warehouse.py` reads loaded tables back the same way on
every destination; `postgres.py` and `bigquery.py` run the servers as child processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import httpx

from lxp_sync_sandbox.server import free_port

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


class HttpServerProcess:
    """A test server in a child process on a free 127.0.0.1 port, with a scratch directory that
    holds its log; a context manager. Subclasses say how to start it (`_start`, calling
    `_launch`), its name (`what`) and the path that answers 200 once it is ready (`ready_path`)."""

    what = "server"
    ready_path = "/"

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.root: Path | None = None
        self.log = Path(os.devnull)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Self:
        try:
            self.root = Path(tempfile.mkdtemp(prefix=f"lxp-{self.what}-"))
            self.log = self.root / f"{self.what}.log"
            self._start(timeout)
            return self
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        raise NotImplementedError

    def _launch(
        self, command: Callable[[int], list[str]], env: dict[str, str], timeout: float
    ) -> None:
        """Run `command(port)` until it answers; another process may take the free port first."""
        assert self.root is not None
        for _attempt in range(3):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    command(self.port),
                    env=env,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent(signal.SIGTERM),
                )
            try:
                wait_until_ready(self._ready, self.process, self.log, self.what, timeout)
                return
            except RuntimeError:
                if "address already in use" not in log_tail(self.log).lower():
                    raise
        raise RuntimeError(f"{self.what} found no free port:\n{log_tail(self.log)}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}{self.ready_path}", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
