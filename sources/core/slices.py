"""A long read split into disjoint time windows, read at the same time.

A list whose cursors are opaque (a record's place, a key) can only be read one page after the
other. Where the API filters on a time that never changes (a record's creation time), the list
splits into windows that share no row: `time_windows` cuts the span from the oldest row seen to
the run's start at whole seconds, the first window open below and the last open above, so that
every row with a time falls in exactly one window whatever the boundaries are. `read_together`
reads the windows at once, each checked as any read is (its own count, its own passes), and
hands their pages on as they come.

Whether the windows do share no row and miss none is the API's to say: the caller compares the
counts of the windows with the count of the whole list before reading them (a filter the API
ignores or treats otherwise shows as a sum that differs) and reads the list whole if they
disagree.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from lxp_sync.sources.core.stop import raise_if_stopped

T = TypeVar("T")

# A window is worth its own reader only with at least this many pages in it.
MIN_WINDOW_PAGES = 5

Window = tuple[datetime | None, datetime | None]  # [start, end); None: open on that side


def window_count(total: int, page_size: int, most: int) -> int:
    """How many windows a read of `total` rows, `page_size` a page, is split into (1: none)."""
    return max(1, min(most, total // max(1, page_size * MIN_WINDOW_PAGES)))


def time_windows(oldest: datetime, until: datetime, count: int) -> list[Window]:
    """`count` windows of equal length from `oldest` to `until`, cut at whole seconds; the first
    open below and the last open above (rows older than `oldest` or newer than `until` still fall
    in one). Fewer when the span has fewer whole seconds than windows."""
    start = oldest.replace(microsecond=0) + timedelta(seconds=1)
    step = (until - start) / max(1, count)
    cuts: list[datetime] = []
    for i in range(1, count):
        cut = (start + step * i).replace(microsecond=0)
        if cut > start and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    edges: list[datetime | None] = [None, *cuts, None]
    return list(zip(edges[:-1], edges[1:], strict=True))


class _Done:
    """A reader's last word: it ended, with `error` if it failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def read_together(reads: Sequence[Callable[[], Iterable[T]]], name: str) -> Iterator[T]:
    """The items of every read in `reads`, each read in a thread of its own, as they come.

    One item waits to be taken, and each read holds at most the one it is handing on, so that
    reading at once keeps few pages in memory (a page of records decoded can be 10 MB). The
    first read that fails ends the others (each stops at its next item) and its error is raised
    here; so does a read stopped by the user. Closing the iterator stops every read too.
    """
    if len(reads) == 1:
        yield from reads[0]()
        return
    waiting: queue.Queue[T | _Done] = queue.Queue(maxsize=1)
    ended = threading.Event()

    def put(item: T | _Done) -> bool:
        while not ended.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(read: Callable[[], Iterable[T]]) -> None:
        try:
            for item in read():
                if not put(item):
                    return
        except BaseException as error:  # handed to the reader's thread, raised there
            put(_Done(error))
            return
        put(_Done())

    threads = [
        threading.Thread(target=run, args=(read,), name=f"lxp-window-{name}-{i}", daemon=True)
        for i, read in enumerate(reads)
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            try:
                item = waiting.get(timeout=0.5)
            except queue.Empty:
                raise_if_stopped(name)
                continue
            if isinstance(item, _Done):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield item
    finally:
        ended.set()
