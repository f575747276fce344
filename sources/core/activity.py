"""What each resource did in this process: pages, rows, requests, retries, 429s, time.

Counted where it happens (`ApiClient` for requests, retries and 429s; `Progress` for pages and
rows) into one process-wide tally, keyed by the label that requests and errors carry
(`<source>.<resource>`, `<source>.<resource> keys` for the deletes sweep's listing). A run starts
a new tally (`start`); its report and its overall progress line read it (`snapshot`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace


@dataclass
class ResourceActivity:
    """One label's counters; times are `time.monotonic()` seconds."""

    pages: int = 0
    rows: int = 0
    total: int | None = None  # the rows the API said the list has, where it says
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # answers with HTTP 429
    first_at: float | None = None
    last_at: float | None = None
    done: bool = False

    @property
    def seconds(self) -> float:
        """From the first request or page to the last."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at


@dataclass
class Tally:
    """The counters of one run, by label; thread-safe."""

    started: float = field(default_factory=time.monotonic)
    _labels: dict[str, ResourceActivity] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _touch(self, label: str | None) -> ResourceActivity:
        entry = self._labels.setdefault(label or "", ResourceActivity())
        now = time.monotonic()
        if entry.first_at is None:
            entry.first_at = now
        entry.last_at = now
        return entry

    def request(self, label: str | None) -> None:
        with self._lock:
            self._touch(label).requests += 1

    def retry(self, label: str | None) -> None:
        with self._lock:
            self._touch(label).retries += 1

    def rate_limited(self, label: str | None) -> None:
        with self._lock:
            self._touch(label).rate_limited += 1

    def page(self, label: str, rows: int, total: int | None) -> None:
        with self._lock:
            entry = self._touch(label)
            entry.pages += 1
            entry.rows += rows
            entry.total = total

    def finish(self, label: str) -> None:
        with self._lock:
            self._touch(label).done = True

    def snapshot(self) -> dict[str, ResourceActivity]:
        """A copy of every label's counters."""
        with self._lock:
            return {label: replace(entry) for label, entry in self._labels.items()}


_current = Tally()


def current() -> Tally:
    return _current


def start() -> Tally:
    """A new tally for a run that starts now."""
    global _current
    _current = Tally()
    return _current
