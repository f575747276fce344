"""Paging mechanics every source shares: ordered concurrent page fetches, pages requested ahead
and progress lines."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Generic, TypeVar

import pendulum

from lxp_sync.sources.core import activity

# the one timestamp parser lives in `timestamps`; callers of these names import them from here too
from lxp_sync.sources.core.timestamps import parse_datetimes, parse_iso  # noqa: F401

log = logging.getLogger("lxp_sync")


def iso_text(value: Any) -> str:
    """A cursor value (datetime or ISO text) as an ISO-8601 filter argument."""
    if isinstance(value, str):
        value = pendulum.parse(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


T = TypeVar("T")


def fetch_in_order(
    fetch: Callable[[int], T], pages: Iterable[int], concurrency: int
) -> Iterator[T]:
    """Fetch pages with up to `concurrency` requests in flight; yield results in page order.

    Up to `2 * concurrency` pages are queued, so the workers keep fetching while the consumer
    converts a batch; no more wait in memory, so a long resource streams instead of piling up.
    """
    if concurrency <= 1:
        for page in pages:
            yield fetch(page)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lxp-page") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for page in pages:
                pending.append(pool.submit(fetch, page))
                if len(pending) >= 2 * concurrency:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class Ahead(Generic[T]):
    """Pages requested before their turn, each with what it was asked with (`ask`).

    For lists whose next request is known before the current page is used: a cursor that came
    with the page, or offsets that can be counted on. The reader takes a page's answer only if
    it was asked with exactly what the reader would ask now; anything else is dropped and asked
    again, so nothing read ahead can differ from a read one page at a time. Checks stay with the
    reader, in page order.
    """

    def __init__(self, send: Callable[[Hashable, int], T], workers: int) -> None:
        self._send = send
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lxp-ahead")
        self._sent: dict[int, tuple[Hashable, Future[T]]] = {}

    def send(self, page: int, ask: Hashable) -> None:
        """Request `page` with `ask` now, unless it is on its way with the same."""
        sent = self._sent.get(page)
        if sent is not None and sent[0] == ask:
            return
        if sent is not None:
            sent[1].cancel()
        self._sent[page] = (ask, self._pool.submit(self._send, ask, page))

    def take(self, page: int, ask: Hashable) -> Callable[[], T] | None:
        """The answer to `page` asked with `ask` (a call that waits for it); None when it was not
        asked so, and then every page read ahead is dropped (they were planned on other facts)."""
        sent = self._sent.pop(page, None)
        if sent is None or sent[0] != ask:
            self.drop()
            return None
        return sent[1].result

    def drop(self) -> None:
        for _, future in self._sent.values():
            future.cancel()
        self._sent.clear()

    def close(self) -> None:
        """Drop what is pending; requests on their way finish in the background, unread."""
        self.drop()
        self._pool.shutdown(wait=False, cancel_futures=True)


class Progress:
    """Progress of one resource on the `lxp_sync` logger: pages and rows, out of the total if known.

    Every page also goes to the run's tally (`activity`), for the overall line and the report.
    A rate shows only once it means something: two pages or more, over a second or more.
    """

    MIN_RATE_S = 1.0

    def __init__(self, resource: str, total: int | None = None, every_s: float = 2.0) -> None:
        self.resource = resource
        self.total = total
        self.pages = 0
        self.rows = 0
        self.passes = 1  # reads of a list that changed while it was read
        self.every_s = every_s
        self._tally = activity.current()
        self._started = time.monotonic()
        self._last = self._started
        self.parts_lock = threading.Lock()  # for `part`s read at the same time

    def add(self, rows: int) -> None:
        self.pages += 1
        self.rows += rows
        self._tally.page(self.resource, rows, self.total)
        now = time.monotonic()
        complete = self.total is not None and self.rows >= self.total
        if now - self._last >= self.every_s and not complete:  # complete: `done` says it
            self._last = now
            log.info("%s", self.line())

    def line(self) -> str:
        of = f"/{self.total:,}" if self.total is not None else ""
        spent = time.monotonic() - self._started
        rate = ""
        if self.pages >= 2 and spent >= self.MIN_RATE_S:
            rate = f" ({self.rows / spent:,.0f} rows/s)"
        passes = f" in {self.passes} passes" if self.passes > 1 else ""
        pages = "1 page" if self.pages == 1 else f"{self.pages:,} pages"
        return f"{self.resource}: {self.rows:,}{of} rows, {pages}{passes}{rate}"

    def done(self) -> None:
        self._tally.finish(self.resource)
        log.info("%s, done", self.line())

    def part(self) -> Progress:
        """The progress of one of several reads that make up this one (`slices`), read at the
        same time: its pages count here; its count and its end are this read's to say."""
        return _Part(self)


class _Part(Progress):
    def __init__(self, whole: Progress) -> None:
        self.whole = whole
        self.total = whole.total if whole.total is not None else 0
        self.passes = 1

    def add(self, rows: int) -> None:
        with self.whole.parts_lock:
            self.whole.add(rows)

    def done(self) -> None:
        pass
