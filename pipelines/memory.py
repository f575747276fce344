"""A run's memory, flat in the number of rows it copies.

Measured with the benchmark at 1M rows (`docs/benchmarks.md`): the peak came from the load step,
where DuckDB kept growing its buffer pool towards its default limit, 80% of the machine's memory,
while it merged the staged rows; and the extract step crept up as freed Arrow buffers stayed
with Arrow's jemalloc and freed Python objects with one glibc malloc arena per page thread.

- DuckDB gets a memory limit (`lxp_sync.duckdb_memory_limit`, default below); past it DuckDB
  spills to a temporary file next to the database. The user's own DuckDB `memory_limit` (dlt's
  `[destination.duckdb.credentials] global_config`) wins over it.
- The command (`lxp-sync run`, `reconcile`) hands Arrow's buffers to the system allocator,
  which frees them at once, and lets glibc keep at most two malloc arenas.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from collections.abc import Mapping
from typing import Any

import dlt
import orjson

log = logging.getLogger("lxp_sync")

# Enough for a merge of millions of rows (DuckDB spills the rest), a fraction of what DuckDB
# would take on its own; `lxp_sync.duckdb_memory_limit` changes it, "" leaves DuckDB's default.
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"
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


def duckdb_credentials(path: str) -> str | dict[str, Any]:
    """DuckDB credentials for `path`: with lxp-sync's memory limit unless the user set one.

    A dict keeps dlt resolving every other credentials setting (pragmas, extensions) from its
    config; only `global_config` is given, merged with the user's.
    """
    configured = configured_global_config()
    limit = duckdb_memory_limit()
    if limit is None or "memory_limit" in configured:
        return path
    return {"database": path, "global_config": {**configured, "memory_limit": limit}}


def bound_process_memory() -> None:
    """Arrow's buffers from the system allocator, and at most `MALLOC_ARENAS` glibc arenas.

    For the command's own process (a library does not change its host's allocators).
    """
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    if platform.system() != "Linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl): nothing to set
        log.debug("memory: no glibc mallopt; malloc arenas left as they are")
