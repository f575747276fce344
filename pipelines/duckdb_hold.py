"""A DuckDB file held open through a run's load step.

dlt opens a client for each load job (`memory.FittedLimit`), and each client a connection of
its own; when a job's connection closes and no other is open, DuckDB closes the database, which
writes a checkpoint, and the next job opens it again and reads its catalog. PlusPlus GraphQL's
first load of 100k rows did that for each of its 24 jobs: 0.9 s of an 8 s run (the benchmark's
notes). While one connection stays open, DuckDB keeps the database open and every connection dlt
opens to the same file, with the same connect-time settings, shares it; each still applies its
own `global_config` (the memory limit of its job) when it opens.

The file is held only while dlt loads, when it is open all but continuously anyway: while a run
reads its API, another process (a DuckDB shell, a notebook) may still open the file. Holding is
only ever a speed-up: where the file cannot be held (another process has it, a setting DuckDB
takes at connect time), dlt opens it as it would have, and fails as it would have.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from dlt.common.runtime.collector import NullCollector

log = logging.getLogger("lxp_sync")

_held: dict[str, Any] = {}  # database path -> the connection holding it open
_lock = threading.Lock()


class LoadHoldingCollector(NullCollector):
    """dlt's progress hook, which is where dlt says that a step starts and ends: a DuckDB
    destination's file stays open through the load step (`hold_for_load`), however it ends.
    Every pipeline a run opens has one (`RunProgress` is one that also speaks)."""

    def on_start_trace_step(self, trace: Any, step: str, pipeline: Any) -> None:
        if step == "load":
            hold_for_load(pipeline)

    def on_end_trace_step(self, trace: Any, step: Any, pipeline: Any, *args: Any) -> None:
        if getattr(step, "step", None) == "load":  # however it ended
            release()


def hold_for_load(pipeline: Any) -> None:
    """Hold the pipeline's DuckDB file open (until `release`), if its destination is DuckDB."""
    if pipeline.destination is None or pipeline.destination.destination_name != "duckdb":
        return
    try:
        credentials = pipeline.destination_client().config.credentials
        # dlt's pool hands the file a connection it opened (`_external_conn`), or opens one with
        # these settings at connect time: another value there would refuse dlt's connection
        if getattr(credentials, "_external_conn", None) is not None:
            return
        if "custom_user_agent" in (credentials.global_config or {}):
            return
        path = credentials._conn_str()
        if path == ":memory:" or credentials.read_only:
            return
        import duckdb

        with _lock:
            if path not in _held:
                _held[path] = duckdb.connect(database=path, read_only=False)
    except Exception as error:  # dlt opens the file as it would have, and says what is wrong
        log.debug("the DuckDB file is not held open for the load: %s", error)


def release() -> None:
    """Close what `hold_for_load` held: DuckDB writes its checkpoint and lets the file go."""
    with _lock:
        held = list(_held.values())
        _held.clear()
    for connection in held:
        with contextlib.suppress(Exception):
            connection.close()
