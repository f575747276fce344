"""A run's memory, flat in the number of rows it copies.

Measured with the benchmark at 1M rows (`docs/benchmarks.md`): the peak came from the load step,
where DuckDB kept growing its buffer pool towards its default limit, 80% of the machine's memory,
while it merged the staged rows; and the extract step crept up as freed Arrow buffers stayed
with Arrow's jemalloc and freed Python objects with one glibc malloc arena per page thread.

- DuckDB gets a memory limit (`lxp_sync.duckdb_memory_limit`, default below); past it DuckDB
  spills to a temporary file next to the database. The user's own DuckDB `memory_limit` (dlt's
  `[destination.duckdb.credentials] global_config`) wins over it.
- Within lxp-sync's limit, DuckDB loads one job at a time on one thread: each job in flight and
  each DuckDB thread holds buffers of its own (a row group per column being written, a hash
  table per thread): 8 jobs on 2 threads took 330 MB over the limit of 256MB loading 1M rows,
  one job on one thread 190 MB with 128MB, no slower on a small machine (`docs/benchmarks.md`).
  What one job needs grows with its table's columns, not its rows: about 1 MB a column (a
  table of 100 columns loads within 128MB, not within 96MB). A `threads` of the user's own in
  `global_config` wins; no limit (`duckdb_memory_limit = ""`) keeps dlt's parallel load jobs
  and DuckDB's threads.
- dlt's writers keep `WRITER_BUFFER_ROWS` rows per table in memory (dlt's default 5000): every
  table being written holds its buffer, and a source writes many at once (each connection, each
  child table), which came to about 80 MB more at 1M rows than at 10k. `.dlt/config.toml` sets
  `[data_writer] buffer_max_items`; a pipeline lxp-sync opens gets it where it is not set.
- The command (`lxp-sync run`, `reconcile`) hands Arrow's buffers to the system allocator,
  which frees them at once, and lets glibc keep at most two malloc arenas; after each step
  (extract, normalize, load) it returns the memory the step freed to the system, so that the
  load's DuckDB does not come on top of what extract and normalize once held.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import platform
from collections.abc import Mapping
from typing import Any

import dlt
import orjson
from dlt.common.destination import Destination

log = logging.getLogger("lxp_sync")

# Enough for a merge of millions of rows of a table of up to about 100 columns, one job at a
# time on one thread (DuckDB spills the rest), a fraction of what DuckDB would take on its own; `lxp_sync.duckdb_memory_limit` changes
# it, "" leaves DuckDB's default.
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
# DuckDB's threads and dlt's load jobs in flight within lxp-sync's memory limit
BOUNDED_DUCKDB_THREADS = 1
BOUNDED_LOAD_JOBS = 1
# rows dlt's writers keep per table before writing them (`[data_writer] buffer_max_items`)
WRITER_BUFFER_ROWS = 1000
WRITER_BUFFER_SETTING = "data_writer.buffer_max_items"
# Python's cycle collector, for the command's process: a collection of the youngest objects after
# this many new ones (Python's default: 700), a middle one after 20 of those, a full one after
# 10 middle ones. A decoded page is some 100k dicts and lists alive until it is converted; with
# the defaults the collector ran some 140 times per page and, with pages in flight and dlt's
# objects alive, ever more full collections over every object of the process: 20% of a Pitchly
# run's CPU at 100k rows (`docs/benchmarks.md`). What a run drops is freed by reference counts
# at once; only cycles wait, for at most one young generation (and `release_freed_memory`
# collects everything after each step).
GC_THRESHOLDS = (50_000, 20, 10)
# glibc's mallopt parameter for the number of malloc arenas (malloc.h)
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def duckdb_memory_limit() -> str | None:
    """The DuckDB memory limit lxp-sync sets (None: leave DuckDB's own)."""
    value = dlt.config.get("lxp_sync.duckdb_memory_limit")
    if value is None:
        return DEFAULT_DUCKDB_MEMORY_LIMIT
    text = str(value).strip()
    return None if text.lower() in ("", "off", "none", "default") else text


def configured_global_config() -> dict[str, Any]:
    """dlt's `[destination.duckdb.credentials] global_config`, as a dict (it may be JSON text)."""
    value = dlt.config.get("destination.duckdb.credentials.global_config")
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def bound_writer_buffers() -> None:
    """dlt's writers buffer `WRITER_BUFFER_ROWS` rows per table, unless configured otherwise."""
    if dlt.config.get(WRITER_BUFFER_SETTING) is None:
        os.environ.setdefault(
            WRITER_BUFFER_SETTING.upper().replace(".", "__"), str(WRITER_BUFFER_ROWS)
        )


def duckdb_credentials(path: str) -> str | dict[str, Any]:
    """DuckDB credentials for `path`: with lxp-sync's memory limit (and one thread) unless the
    user set a limit.

    A dict keeps dlt resolving every other credentials setting (pragmas, extensions) from its
    config; only `global_config` is given, merged with the user's.
    """
    configured = configured_global_config()
    if not _bounded(configured):
        return path
    bounded = {"memory_limit": duckdb_memory_limit(), "threads": BOUNDED_DUCKDB_THREADS}
    return {"database": path, "global_config": {**bounded, **configured}}


def duckdb_destination(path: str) -> Destination:
    """dlt's DuckDB destination for `path`: within lxp-sync's memory limit, one load job at a time."""
    bounded = _bounded(configured_global_config())
    jobs = {"max_parallel_load_jobs": BOUNDED_LOAD_JOBS} if bounded else {}
    return dlt.destinations.duckdb(duckdb_credentials(path), **jobs)


def _bounded(configured: Mapping[str, Any]) -> bool:
    """Whether lxp-sync's memory limit applies (set, and no `memory_limit` of the user's own)."""
    return duckdb_memory_limit() is not None and "memory_limit" not in configured


def bound_process_memory() -> None:
    """Arrow's buffers from the system allocator, at most `MALLOC_ARENAS` glibc arenas, and
    Python's cycle collector run less often (`GC_THRESHOLDS`).

    For the command's own process (a library does not change its host's allocators).
    """
    import pyarrow as pa

    gc.set_threshold(*GC_THRESHOLDS)
    pa.set_memory_pool(pa.system_memory_pool())
    if platform.system() != "Linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl): nothing to set
        log.debug("memory: no glibc mallopt; malloc arenas left as they are")


def release_freed_memory() -> None:
    """Give the memory a finished step freed back to the system (glibc keeps it otherwise)."""
    gc.collect()
    if platform.system() != "Linux":
        return
    # not glibc (musl): its allocator returns memory its own way
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
