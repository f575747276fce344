"""One run per pipeline at a time: an OS lock on a file next to the pipeline's working folder.

`fcntl.flock` belongs to the open file: the kernel releases it when its process ends, however
it ends, so a run killed with `kill -9` never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lxp_sync.sources.core.errors import LxpSyncError
from lxp_sync.sources.core.stop import sleep as stoppable_sleep

POLL_S = 0.2


class RunInProgressError(LxpSyncError):
    """Another run of the same pipeline holds its lock."""


def lock_path(pipelines_dir: Path, pipeline_name: str) -> Path:
    return pipelines_dir / f".{pipeline_name}.lock"


@contextmanager
def run_lock(pipelines_dir: Path, pipeline_name: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the pipeline's lock for the block; fail at once if another run holds it, or after
    waiting up to `wait_s` seconds for it to end."""
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(pipelines_dir, pipeline_name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(fd, pipeline_name, wait_s) from None
                stoppable_sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _busy(fd: int, pipeline_name: str, wait_s: float) -> RunInProgressError:
    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
    pid = f" (pid {holder})" if holder.isdigit() else ""
    waited = f" after waiting {wait_s:g}s" if wait_s > 0 else ""
    return RunInProgressError(
        f"another run of {pipeline_name} is in progress{pid}{waited}",
        hint="Let it finish, or wait for it: --lock-wait SECONDS (or lock_wait_s under "
        "[lxp_sync] in .dlt/config.toml)",
    )
