"""A run's progress on stderr: an overall line while it reads, then the normalize and load phases.

Each resource logs its own lines (`core.paging.Progress`). This adds, every `every_s` seconds,
one line for the whole run: while dlt extracts, the rows read of all resources, the share of the
rows the APIs counted, the rate over the run and the time left where every started resource has
a count; while it normalizes and loads, the phase, its files or jobs and its time. Each phase
ends with one line, so a long final load is never silent. It is dlt's own progress hook (a
`Collector`, passed as `dlt.pipeline(progress=...)`); a ticker thread speaks while dlt works.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from lxp_sync.pipelines.duckdb_hold import LoadHoldingCollector
from lxp_sync.pipelines.memory import process_memory_mb, release_freed_memory, trim_heap
from lxp_sync.sources.core import activity

log = logging.getLogger("lxp_sync")

# the overall rate and time left need this long of reading to mean something
MIN_RATE_S = 2.0
SWEEP_LABEL = " keys"
# seconds between two trims of the heap while a step runs (`trim_heap`)
TRIM_EVERY_S = 1.0


class RunProgress(LoadHoldingCollector):
    """dlt's progress hook for one run of `source` (see the module docstring); as every run's
    hook, it holds a DuckDB file open through the load step (`duckdb_hold`)."""

    def __init__(self, source: str, every_s: float = 2.0) -> None:
        self.source = source
        self.every_s = every_s
        self.step = ""
        self._phase = ""
        self._started = 0.0
        self._counters: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._quiet = threading.Event()  # set: the ticker stops
        self._ticker: threading.Thread | None = None

    # dlt's Collector interface
    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        if label:
            return  # dlt's sub-counters (failed jobs, completed resources): the totals suffice
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + inc
            if total is not None:
                self._totals[name] = total
            if inc_total:
                self._totals[name] = self._totals.get(name, 0) + inc_total

    def _start(self, step: str) -> None:
        with self._lock:
            self._phase = (step or "").split(" ", 1)[0].lower()
            self._started = time.monotonic()
            self._counters, self._totals = {}, {}
        self._quiet.clear()
        self._ticker = threading.Thread(target=self._tick, name="lxp-progress", daemon=True)
        self._ticker.start()

    def _stop(self) -> None:
        """End of a dlt step: the ticker stops, the phase says how it went, and the memory the
        step freed goes back to the system (the next step's DuckDB does not come on top of it)."""
        self._quiet.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            phase, counters = self._phase, dict(self._counters)
            spent = time.monotonic() - self._started
            self._phase = ""
        line = self.end_line(phase, counters, spent)
        if line:
            log.info("%s", line)
        before = process_memory_mb()
        release_freed_memory()
        if before:  # where a run's peak memory comes from (`-v`; Linux)
            log.debug(
                "%s: memory after %s: peak %.0f MB, %.0f MB held, %.0f MB after giving back",
                self.source,
                phase,
                before["VmHWM"],
                before["VmRSS"],
                process_memory_mb()["VmRSS"],
            )

    def __deepcopy__(self, memo: dict[int, Any]) -> RunProgress:
        return RunProgress(self.source, self.every_s)  # dlt copies a pipeline's collector

    # the lines
    def _tick(self) -> None:
        """A line every `every_s`, and the heap trimmed every `TRIM_EVERY_S` meanwhile."""
        said = time.monotonic()
        while not self._quiet.wait(min(self.every_s, TRIM_EVERY_S)):
            trim_heap()
            if time.monotonic() - said < self.every_s:
                continue
            said = time.monotonic()
            line = self.line()
            if line:
                log.info("%s", line)

    def line(self) -> str | None:
        """The current phase's line (None when there is nothing to say)."""
        with self._lock:
            phase, counters, totals = self._phase, dict(self._counters), dict(self._totals)
            spent = time.monotonic() - self._started
        if phase == "extract":
            return overall_line(self.source, activity.current())
        if phase == "normalize":
            files = _of(counters.get("Files", 0), totals.get("Files"))
            rows = sum(v for k, v in counters.items() if k not in ("Files", "Items"))
            return f"{self.source}: normalizing, {files} files, {rows:,} rows, {spent:.0f}s"
        if phase == "load":
            jobs = _of(counters.get("Jobs", 0), totals.get("Jobs"))
            return f"{self.source}: loading, {jobs} jobs done, {spent:.0f}s"
        return None

    def end_line(self, phase: str, counters: dict[str, int], spent: float) -> str | None:
        if phase == "extract":
            return None  # each resource said `done`
        if phase == "normalize":
            rows = sum(v for k, v in counters.items() if k not in ("Files", "Items"))
            return f"{self.source}: normalized {rows:,} rows in {spent:.1f}s"
        if phase == "load":
            jobs = counters.get("Jobs", 0)
            return f"{self.source}: loaded {jobs} jobs in {spent:.1f}s"
        return None


def _of(done: int, total: int | None) -> str:
    return f"{done:,}/{total:,}" if total else f"{done:,}"


def overall_line(source: str, tally: activity.Tally) -> str | None:
    """`<source>: 41,230/52,000 rows (79%), 9,120 rows/s, about 1s left` over every resource."""
    reads = {
        label: entry
        for label, entry in tally.snapshot().items()
        if label.startswith(f"{source}.") and not label.endswith(SWEEP_LABEL) and entry.pages
    }
    if not reads:
        return None
    rows = sum(entry.rows for entry in reads.values())
    spent = time.monotonic() - tally.started
    rate = rows / spent if spent >= MIN_RATE_S else None
    counted = [entry for entry in reads.values() if entry.total is not None]
    line = f"{source}: {rows:,}"
    if counted and len(counted) == len(reads):
        total = sum(max(entry.total or 0, entry.rows) for entry in counted)
        line += f"/{total:,} rows ({rows / max(total, 1):.0%})"
    elif counted:
        done = sum(entry.rows for entry in counted)
        total = sum(max(entry.total or 0, entry.rows) for entry in counted)
        line += f" rows ({done / max(total, 1):.0%} of the {total:,} the API counted)"
    else:
        line += " rows"
    line += f" in {len(reads)} resources"
    if rate:
        line += f", {rate:,.0f} rows/s"
        left = sum(max((entry.total or 0) - entry.rows, 0) for entry in counted)
        if counted and len(counted) == len(reads) and left:
            line += f", about {_duration(max(left / rate, 1.0))} left"
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
