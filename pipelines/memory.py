"""A run's memory, flat in the number of rows it copies.

Measured with the benchmark at 1M rows (`docs/benchmarks.md`): the peak came from the load step,
where DuckDB kept growing its buffer pool towards its default limit, 80% of the machine's memory,
while it merged the staged rows; and the extract step crept up as freed Arrow buffers stayed
with Arrow's jemalloc and freed Python objects with one glibc malloc arena per page thread.

- DuckDB gets a memory limit (`lxp_sync.duckdb_memory_limit`); past it DuckDB spills to a
  temporary file next to the database. The user's own DuckDB `memory_limit` (dlt's
  `[destination.duckdb.credentials] global_config`) wins over it.
- Within lxp-sync's limit, DuckDB loads one job at a time on one thread: each job in flight and
  each DuckDB thread holds buffers of its own (a row group per column being written, a hash
  table per thread): 8 jobs on 2 threads took 330 MB over the limit of 256MB loading 1M rows,
  one job on one thread 190 MB with 128MB, no slower on a small machine (`docs/benchmarks.md`).
  A `threads` of the user's own in `global_config` wins; no limit (`duckdb_memory_limit = ""`)
  keeps dlt's parallel load jobs and DuckDB's threads.
- What one job needs grows with its table's columns far more than with its rows (a table of 100
  columns loads within 128MB, not within 96MB; a merge of 5,000 rows of 400 text columns needs
  more than 128MB). The load holds a run's peak at 1M rows (the limit and about 15 MB more, on
  top of what the process keeps after normalize), so the base is as small as the sandbox's
  tables at 1M rows allow. A fixed default would fail a wide table (a Pitchly table has a column
  per field) on its first run, so the default, `"auto"`, fits itself: 48MB, or 2 MB a column of
  the widest table of the schema being loaded where that is more (`FittedLimit`), and a load job
  that still runs out of memory is retried by dlt within 1.25 times that, then 4 times, then
  without lxp-sync's limit (DuckDB's own, 80% of the memory). Both: the estimate keeps a wide
  table bounded without a failed attempt, the retry covers what an estimate by columns cannot
  see (long values, many rows, nested tables). With DuckDB 2.0.1, PlusPlus GraphQL's merges of
  `events` and `users` with their nested tables at 1M rows needed more than 48MB in two runs of
  three and not more than 56MB; Pluvo's 600k `events` fit 48MB. A 56MB base cost every source's
  1M-row load 8-11 MB; a retry within 4 times 48MB took the run's peak from 305 to 430 MB; the
  small first raise costs one rolled-back merge and 12 MB more for the rest of that load.
  The retry is exact: DuckDB rolls back the statement (a copy job) or the transaction (a merge)
  that ran out of memory, and the job stays in dlt's package until it completes, once.
  A size the user sets is a hard limit: a load that needs more stops with one line naming it.
- dlt's writers keep `WRITER_BUFFER_ROWS` rows per table in memory (dlt's default 5000): every
  table being written holds its buffer, and a source writes many at once (each connection, each
  child table), which came to about 80 MB more at 1M rows than at 10k. `.dlt/config.toml` sets
  `[data_writer] buffer_max_items`; a pipeline lxp-sync opens gets it where it is not set.
- The command (`lxp-sync run`, `reconcile`) hands Arrow's buffers to the system allocator,
  which frees them at once, and lets glibc keep at most two malloc arenas; after each step
  (extract, normalize, load) it returns the memory the step freed to the system, so that the
  load's DuckDB does not come on top of what extract and normalize once held.
- A decoded GraphQL page is several times its bytes as Python objects (a Pitchly page of 1,000
  records, 1.4 MB of JSON, is 15-20 MB of them). With every read of a run (dlt's extract
  workers) and the pages asked for ahead each holding one, Python's allocator spread them over
  40-odd more 1 MiB arenas at 1M rows than at 10k, which the few objects still alive at the end
  kept: Pitchly's extract peaked 30-40 MB higher for the same live objects. Pages asked for
  ahead now wait as their bytes, and the reads take turns to decode and check a page, Pitchly's
  also to convert it to Arrow (`sources.core.graphql.PageTurn`): one Pitchly page of records is
  alive at a time, whatever the number of tables read at once. PlusPlus GraphQL and Pluvo
  complete a page's nested lists (more requests, which no turn may wait for) and gather its rows
  into Arrow after their turn. The reads still wait for their answers at once; the turn costs
  no time, as decoding and converting hold the GIL anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib.abc
import logging
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dlt
import orjson
from dlt.common.destination import Destination
from dlt.common.schema import Schema

from lxp_sync.pipelines.project import default_setting

log = logging.getLogger("lxp_sync")

# What DuckDB gets by default ("auto"): enough for a merge of hundreds of thousands of rows of a
# table of up to about 24 columns, one job at a time on one thread (DuckDB spills the rest), a
# fraction of what DuckDB would take on its own; raised with the widest table
# (`fitted_limit_bytes`), and a little first when a statement still runs out (`FittedLimit`).
AUTO = "auto"
DEFAULT_DUCKDB_MEMORY_LIMIT = "48MB"
DEFAULT_LIMIT_BYTES = 48 * 10**6
# what a load job needs a column of its table, measured (bench/notes.md, memory section)
BYTES_PER_COLUMN = 2_000_000
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
# DuckDB's words when a statement needs more memory than its memory_limit allows
OUT_OF_MEMORY = "Out of Memory Error"
# glibc's mallopt parameter for the number of malloc arenas (malloc.h)
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def duckdb_memory_limit() -> str | None:
    """The DuckDB memory limit lxp-sync sets: `AUTO`, the user's own, or None (DuckDB's own)."""
    value = dlt.config.get("lxp_sync.duckdb_memory_limit")
    if value is None:
        return AUTO
    text = str(value).strip()
    if text.lower() == AUTO:
        return AUTO
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
    default_setting(WRITER_BUFFER_SETTING, str(WRITER_BUFFER_ROWS))


def duckdb_credentials(path: str) -> str | dict[str, Any]:
    """DuckDB credentials for `path`: with lxp-sync's memory limit (and one thread) unless the
    user set a limit.

    A dict keeps dlt resolving every other credentials setting (pragmas, extensions) from its
    config; only `global_config` is given, merged with the user's.
    """
    configured = configured_global_config()
    if not _bounded(configured):
        return path
    limit = duckdb_memory_limit()
    bounded = {
        "memory_limit": DEFAULT_DUCKDB_MEMORY_LIMIT if limit == AUTO else limit,
        "threads": BOUNDED_DUCKDB_THREADS,
    }
    return {"database": path, "global_config": {**bounded, **configured}}


def duckdb_destination(path: str) -> Destination:
    """dlt's DuckDB destination for `path`: within lxp-sync's memory limit, one load job at a time.

    With the limit `AUTO`, each client dlt opens (one per load job) gets a limit that fits the
    widest table of its schema, and after a statement that ran out of memory the next one (dlt's
    retry of that job) gets none (`FittedLimit`).
    """
    configured = configured_global_config()
    bounded = _bounded(configured)
    jobs = {"max_parallel_load_jobs": BOUNDED_LOAD_JOBS} if bounded else {}
    destination = dlt.destinations.duckdb(duckdb_credentials(path), **jobs)
    if bounded and duckdb_memory_limit() == AUTO:
        FittedLimit(destination)
    return destination


def widest_table_columns(schema: Schema) -> int:
    """The most columns of any table of `schema` (dlt's own columns included)."""
    return max((len(t.get("columns") or {}) for t in schema.tables.values()), default=0)


def fitted_limit_bytes(columns: int) -> int:
    """lxp-sync's DuckDB limit for a load whose widest table has `columns` columns."""
    return max(DEFAULT_LIMIT_BYTES, columns * BYTES_PER_COLUMN)


def unbounded_limit_bytes() -> int:
    """DuckDB's own default limit: 80% of the machine's memory."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)


class FittedLimit:
    """The `AUTO` limit of a DuckDB destination: fitted to the widest table, raised each time a
    statement ran out of memory within it.

    dlt opens a client per load job (and per retry of one) through the destination's `client`;
    DuckDB applies `global_config` to each connection it opens, so the limit a client carries is
    the one its job runs within. A job that ran out of memory was rolled back (one statement, or
    one transaction for a merge) and stays in the package; dlt retries it (up to 5 times), and
    that retry and the jobs after it run within the fitted limit times the next of `RAISED`,
    then without lxp-sync's limit (DuckDB's own, 80% of the memory). The first step is small: a
    statement that ran out of memory within the fitted limit mostly needed a little more (with
    DuckDB 2.0.1, PlusPlus GraphQL's merges of `events` and `users` with their nested tables
    at 1M rows needed more than 48MB, not more than 56MB), and each step's memory stays with
    the rest of the load.
    """

    RAISED = (1.25, 4)

    def __init__(self, destination: Destination) -> None:
        self.ran_out = 0
        self._client = destination.client
        destination.client = self.client  # type: ignore[method-assign]

    def limit_bytes(self, schema: Schema) -> int:
        fitted = fitted_limit_bytes(widest_table_columns(schema))
        if self.ran_out == 0:
            return fitted
        if self.ran_out <= len(self.RAISED):
            return min(int(self.RAISED[self.ran_out - 1] * fitted), unbounded_limit_bytes())
        return unbounded_limit_bytes()

    def client(self, schema: Schema, initial_config: Any = None) -> Any:
        client = self._client(schema, initial_config)
        credentials = client.config.credentials
        limit = self.limit_bytes(schema)
        credentials.global_config = {
            **(credentials.global_config or {}),
            "memory_limit": f"{limit // 10**6}MB",
        }
        sql_client = client.sql_client
        execute_sql = sql_client.execute_sql

        def noting_out_of_memory(sql: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return execute_sql(sql, *args, **kwargs)
            except Exception as error:
                if OUT_OF_MEMORY in str(error) and limit < unbounded_limit_bytes():
                    self.ran_out += 1
                    log.warning(
                        "DuckDB ran out of memory within %s MB (lxp-sync's limit for tables of "
                        "%s columns); the load goes on within %s MB",
                        limit // 10**6,
                        widest_table_columns(schema),
                        self.limit_bytes(schema) // 10**6,
                    )
                raise

        sql_client.execute_sql = noting_out_of_memory
        return client


def _bounded(configured: Mapping[str, Any]) -> bool:
    """Whether lxp-sync's memory limit applies (set, and no `memory_limit` of the user's own)."""
    return duckdb_memory_limit() is not None and "memory_limit" not in configured


def bound_process_memory() -> None:
    """Arrow's buffers from the system allocator, at most `MALLOC_ARENAS` glibc arenas, and
    Python's cycle collector run less often (`GC_THRESHOLDS`) over fewer objects (`gc.freeze`).

    For the command's own process (a library does not change its host's allocators).
    """
    import pyarrow as pa

    gc.set_threshold(*GC_THRESHOLDS)
    pyarrow_without_pandas()
    # what is alive now (dlt's and pyarrow's modules, some 130k objects) lives as long as the
    # process: full collections (one after each step) no longer walk it every time
    gc.freeze()
    pa.set_memory_pool(pa.system_memory_pool())
    if platform.system() != "Linux":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl): nothing to set
        log.debug("memory: no glibc mallopt; malloc arenas left as they are")


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def pyarrow_without_pandas() -> None:
    """pyarrow's check, on its first `pa.array` of Python objects, whether they are pandas
    objects, made once without pandas.

    Where pandas is installed (BigQuery's extras bring it), that check imports it: about 0.3 s
    and 30 MB of a run, for lists of rows that are never pandas objects. pyarrow then takes
    lists as lists; what asks pyarrow for pandas itself (`to_pandas`) still imports it then.
    """
    if "pandas" in sys.modules:
        return
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        import pyarrow as pa

        pa.array([])
    finally:
        sys.meta_path.remove(finder)


def process_memory_mb() -> dict[str, float]:
    """The process's resident memory now (`VmRSS`) and at its peak so far (`VmHWM`), in MB."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found


def release_freed_memory() -> None:
    """Give the memory a finished step freed back to the system (glibc keeps it otherwise)."""
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Give the heap's free pages back to the system now: glibc keeps what a step frees (pages
    decoded, then converted) and hands it out again only as it fits, so a long step's resident
    memory creeps up with its rows unless trimmed while it runs (`RunProgress`)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's `malloc_trim`, opened once; None off Linux, or on another libc (musl: its
    allocator returns memory its own way)."""
    if platform.system() != "Linux":
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
