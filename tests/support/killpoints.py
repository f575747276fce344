"""The `lxp-sync` command, ended at a chosen point of a run as `kill -9` would end it, or held there.

    python -m tests.support.killpoints POINT [--nth N] [--hold SECONDS] -- run plusplus_rest ...

patches one function of dlt (or of lxp-sync) so that its N-th matching call (default 1) ends the
process with SIGKILL; with `--hold` it prints `killpoint POINT reached` on stderr and sleeps in
that thread instead (a slow page or load job), for a test to send a signal meanwhile. Then it
runs the command as the `lxp-sync` script does. The points are the boundaries where dlt moves a
run's files from one phase to the next (read from dlt 1.31's code): see `POINTS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Point:
    module: str
    owner: str
    function: str
    when: str  # "before" or "after" the call
    matches: Callable[..., bool] = lambda self, *args, **kwargs: True
    # done first when the point is hit (before the kill)
    prepare: Callable[..., None] = lambda self, *args, **kwargs: None


def _sql_job(job: Any, *args: Any, **kwargs: Any) -> bool:
    return str(job.file_name()).endswith(".sql")


def _committed(job: Any, next_state: str, *args: Any, **kwargs: Any) -> bool:
    return next_state == "completed"


def _extracted(storage: Any, *args: Any, **kwargs: Any) -> bool:
    return str(storage.storage.storage_path).rstrip("/").endswith("extracted")


def _half_delete(storage: Any, load_id: str, *args: Any, **kwargs: Any) -> None:
    # a recursive delete killed half way: the package folder is there, its schema is gone
    (Path(storage.storage.storage_path) / load_id / "schema.json").unlink(missing_ok=True)


POINTS = {
    # a page read, its rows in the extract's temporary folder, nothing committed
    "extract.page": Point("lxp_sync.sources.core.http", "ApiClient", "request_json", "after"),
    # the package moved to normalize/extracted, the new state (cursors) not yet saved
    "extract.committed": Point(
        "dlt.extract.storage", "ExtractStorage", "commit_new_load_package", "after"
    ),
    # extract done and its state saved; normalize not begun
    "extract.done": Point("dlt.pipeline.pipeline", "Pipeline", "extract", "after"),
    # load/new/<id> just created: a half-written normalize
    "normalize.started": Point(
        "dlt.common.storages.load_storage", "LoadStorage", "import_extracted_package", "after"
    ),
    # every file normalized into load/new/<id>, not yet renamed to load/normalized
    "normalize.written": Point(
        "dlt.common.storages.load_storage", "LoadStorage", "commit_new_load_package", "before"
    ),
    # renamed to load/normalized, the input in normalize/extracted not yet deleted
    "normalize.committed": Point(
        "dlt.common.storages.load_storage", "LoadStorage", "commit_new_load_package", "after"
    ),
    # deleting the input: its schema gone, the rest still there
    "normalize.deleting": Point(
        "dlt.common.storages.load_package",
        "PackageStorage",
        "delete_package",
        "before",
        matches=_extracted,
        prepare=_half_delete,
    ),
    # a load job started, nothing of it in the warehouse
    "load.job_started": Point(
        "dlt.common.destination.client", "RunnableLoadJob", "run_managed", "before"
    ),
    # a load job committed in the warehouse, its outcome not yet recorded by dlt
    "load.job_committed": Point(
        "dlt.common.destination.client",
        "RunnableLoadJob",
        "_release",
        "before",
        matches=_committed,
    ),
    # a load job's outcome recorded, the job not yet moved to completed_jobs
    "load.job_recorded": Point(
        "dlt.common.storages.load_package", "PackageStorage", "save_pending_transition", "after"
    ),
    # every file of a table in staging; its merge or replace SQL about to run
    "load.sql_job": Point(
        "dlt.common.destination.client",
        "RunnableLoadJob",
        "run_managed",
        "before",
        matches=_sql_job,
    ),
    # a table's merge or replace SQL committed, not yet recorded
    "load.sql_committed": Point(
        "dlt.common.destination.client",
        "RunnableLoadJob",
        "_release",
        "before",
        matches=lambda job, state, *a, **k: _sql_job(job) and state == "completed",
    ),
    # the load recorded in _dlt_loads, the package not yet moved to load/loaded
    "load.completed": Point(
        "dlt.destinations.job_client_impl", "SqlJobClientBase", "complete_load", "after"
    ),
}


def install(name: str, nth: int = 1, hold_s: float | None = None) -> None:
    """Patch the point `name`: its `nth` matching call kills the process (or holds it)."""
    point = POINTS[name]
    owner = getattr(importlib.import_module(point.module), point.owner)
    original = getattr(owner, point.function)
    lock = threading.Lock()
    seen = [0]

    def hit(*args: Any, **kwargs: Any) -> None:
        if not point.matches(*args, **kwargs):
            return
        with lock:
            seen[0] += 1
            if seen[0] != nth:
                return
        point.prepare(*args, **kwargs)
        if hold_s is None:
            os.kill(os.getpid(), signal.SIGKILL)
        os.write(2, f"killpoint {name} reached\n".encode())
        time.sleep(hold_s)

    def patched(*args: Any, **kwargs: Any) -> Any:
        if point.when == "before":
            hit(*args, **kwargs)
        result = original(*args, **kwargs)
        if point.when == "after":
            hit(*args, **kwargs)
        return result

    setattr(owner, point.function, patched)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m tests.support.killpoints")
    parser.add_argument("point", choices=sorted(POINTS))
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--hold", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    install(args.point, args.nth, args.hold)
    from lxp_sync.pipelines.cli import main as lxp_sync_main

    lxp_sync_main(command)


if __name__ == "__main__":
    main()
