"""Completeness of paged reads: every page checked, every read reconciled with the API's count.

A list API can lose rows without any error: a page that comes back short or empty, an answer
without the field asked for, `hasNextPage: false` before the end, null rows. And a list that
changes while it is paged shifts under the reader: with page numbers (PlusPlus REST) or offset
cursors (graphene's `arrayconnection:N`), a row deleted before the reader's position moves every
later row up by one, so the row on the next page boundary is never read, and the counts can
still agree. This module is the one mechanism every source uses against both; a vendor folder
only says how to read one page and where its count is.

**Per page** (`fetch_checked`): a page that cannot be right raises `PageAnomaly`; it is fetched
again with the client's backoff (`max_retries`), then the resource fails with
`DataMismatchError`, one line with the resource, the page, the numbers (expected against
received) and the vendor's request id. Nothing of a failed resource is committed: dlt's extract
step fails, its load package is discarded and no cursor moves (dlt rolls its state back), so a
replace table is never replaced by a partial read.

**Per read** (`ReadLedger`), in passes. A pass reads the list from a start to its end and records
the count every page reports. It is *clean* when every page reported the same count `T` and the
pass received exactly the `T` distinct keys (from its start) that the count promises. A clean
pass has read every row of the list. Otherwise the list moved while it was read (rows inserted,
deleted, or moved by an update in a list ordered by modification time), and another pass reads
it again: page numbers from the page before the first one whose count moved (after checking that
the first page read again holds a row already accepted, so that no gap opens at the seam, else
one page further back), relay cursors from the start. A pass yields only rows whose key was not
yielded yet, so a row read twice reaches the warehouse once; where the table is merged and its
cursor says the row changed during the read (`changed_since`), the later copy is yielded too,
and the resource's `dedup_sort` hint on the cursor makes the newest one win in dlt's merge.
After `MAX_PASSES` passes that were not clean the resource fails: the list changed while it was
read N times; rerun.

Keys are kept as 64-bit hashes in sorted numpy runs (`KeySet`), about 8 bytes a key (16 during a
second pass, which keeps its own set), so a read of a million rows holds some 8-16 MB. A hash
collision cannot lose a row silently: it makes the distinct count fall short, and the read fails.

What no count can show: a row inserted and another deleted between the same two page reads (the
count unchanged, one row shifted past the reader), and, for a connection without any count, a
shift at all; there only nulls, missing fields, repeated cursors and repeated keys are checked.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from lxp_sync.sources.core.errors import DataMismatchError
from lxp_sync.sources.core.http import ApiClient
from lxp_sync.sources.core.paging import Progress, fetch_in_order, parse_iso

log = logging.getLogger("lxp_sync")

T = TypeVar("T")

# Passes over a list that keeps changing before the read gives up.
MAX_PASSES = 4
# Rows whose cursor is this close to the read's start (or later) count as changed during the read
# when read twice; covers a server clock ahead of ours.
CLOCK_MARGIN = timedelta(hours=1)


class PageAnomaly(Exception):
    """A page that cannot be right; `fetch_checked` fetches it again."""

    def __init__(
        self, message: str, *, request_id: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.request_id, self.status = message, request_id, status


def fetch_checked(
    client: ApiClient,
    fetch: Callable[[], T],
    *,
    resource: str,
    page: Any,
    first: Callable[[], T] | None = None,
) -> T:
    """`fetch()`, again with the client's backoff while it raises `PageAnomaly`; then one line.

    `first`: the first attempt instead of `fetch()` (a page requested ahead, checked now)."""
    attempt = 0
    while True:
        try:
            return first() if first is not None and attempt == 0 else fetch()
        except PageAnomaly as anomaly:
            if attempt >= client.retry.max_retries or client.gave_up:
                again = f", also after {attempt} retries" if attempt else ""
                raise client.give_up(
                    DataMismatchError(
                        f"{anomaly.message}{again}",
                        resource=resource,
                        page=page,
                        status=anomaly.status,
                        request_id=anomaly.request_id,
                    )
                ) from None
            client.backoff(attempt, None, resource, page, anomaly.message)
            attempt += 1


def check_rows(rows: Sequence[Any], key: str, what: str = "row", **facts: Any) -> None:
    """Every row an object with its key; else `PageAnomaly` (`facts`: request id, status)."""
    for row in rows:
        if not isinstance(row, dict):
            raise PageAnomaly(f"the page has a null {what}", **facts)
        if row.get(key) is None:
            raise PageAnomaly(f"the page has a {what} without `{key}`", **facts)


def changed_since(field: str | None, since: datetime) -> Callable[[dict[str, Any]], bool] | None:
    """Whether a row's `field` (ISO text or datetime) is at or after `since` less the margin."""
    if field is None:
        return None
    start = since - CLOCK_MARGIN

    def changed(row: dict[str, Any]) -> bool:
        value = row.get(field)
        if isinstance(value, str):
            try:
                value = parse_iso(value)
            except ValueError:
                return False
        return isinstance(value, datetime) and value >= start

    return changed


def key_numbers(keys: Sequence[Hashable]) -> np.ndarray:
    """Keys as 64-bit numbers: an integer key that fits is itself, so integers never collide
    (Python's `hash` makes -1 and -2 one, and 1 and 2**61: the second row was taken for the
    first read twice, and every run failed; tests/test_completeness.py). Any other key is its
    `hash` (SipHash for a text, seeded afresh in every process unless PYTHONHASHSEED is set)
    mixed with a number drawn for the process (`hash("")` is 0): two keys collide about once
    in 30 million runs of a million keys, and that run fails as a row read twice."""
    kinds = set(map(type, keys))
    if int not in kinds:
        return np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys)) ^ _SALT
    if kinds == {int}:
        try:
            return np.array(keys, dtype=np.int64)
        except OverflowError:
            pass
    return np.fromiter(map(_key_number, keys), dtype=np.int64, count=len(keys))


_INT64 = range(-(2**63), 2**63)
_SALT = np.int64(int.from_bytes(os.urandom(8), "big", signed=True))


def _key_number(key: Hashable) -> int:
    if type(key) is int:
        return key if key in _INT64 else hash(str(key)) ^ int(_SALT)
    return hash(key) ^ int(_SALT)


class KeySet:
    """A set of keys as 64-bit numbers (`key_numbers`) in sorted numpy arrays, about 8 bytes a key.

    New keys collect in a small sorted array; when it is full it becomes a run, merged into the
    run before it while that one is not more than twice its size. A batch of keys is looked up
    in a few arrays at once, sorted, so that a page costs a handful of binary searches.
    """

    PENDING = 4096

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self._pending = np.empty(0, dtype=np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self._runs) + self._pending.nbytes

    def add(self, keys: Sequence[Hashable]) -> list[bool]:
        """Add `keys`; True for each that was not in the set (the first of repeats in `keys`)."""
        if not keys:
            return []
        hashes = key_numbers(keys)
        unique, first = np.unique(hashes, return_index=True)  # sorted: faster searches
        fresh = np.ones(len(unique), dtype=bool)
        for run in (*self._runs, self._pending):
            if len(run):
                at = np.searchsorted(run, unique)
                np.minimum(at, len(run) - 1, out=at)
                fresh &= run[at] != unique
        new = np.zeros(len(keys), dtype=bool)
        new[first[fresh]] = True
        if fresh.any():
            self._count += int(fresh.sum())
            self._pending = _merged(self._pending, unique[fresh])
            if len(self._pending) >= self.PENDING:
                self._runs.append(self._pending)
                self._pending = np.empty(0, dtype=np.int64)
                while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
                    last = self._runs.pop()
                    self._runs.append(_merged(self._runs.pop(), last))
        return new.tolist()

    def contains(self, keys: Sequence[Hashable]) -> list[bool]:
        """For each of `keys`, whether it is in the set."""
        if not keys:
            return []
        hashes = key_numbers(keys)
        found = np.zeros(len(keys), dtype=bool)
        for run in (*self._runs, self._pending):
            if len(run):
                at = np.searchsorted(run, hashes)
                np.minimum(at, len(run) - 1, out=at)
                found |= run[at] == hashes
        return found.tolist()


def _merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two sorted arrays as one (a stable sort of two sorted runs is a linear merge)."""
    out = np.concatenate((a, b))
    out.sort(kind="stable")
    return out


class ReadLedger:
    """What one read of a list has yielded (by key), and the facts of its current pass."""

    def __init__(
        self,
        resource: str,
        key: str,
        *,
        keep_repeat: Callable[[dict[str, Any]], bool] | None = None,
        max_passes: int = MAX_PASSES,
    ) -> None:
        self.resource = resource
        self.key = key
        self.keep_repeat = keep_repeat
        self.max_passes = max_passes
        self.yielded = KeySet()
        self.passes = 0
        self.in_pass = self.yielded

    def new_pass(self, why: str | None = None) -> None:
        """Start a pass (`why`: what moved, for the log); fail once there were too many."""
        if self.passes >= self.max_passes:
            raise DataMismatchError(
                f"the list changed while it was read {self.passes} times ({why}); rerun",
                resource=self.resource,
                hint="Rerun; the rows that changed are read then (or run when the source is quieter)",
            )
        if why:
            log.info(
                "%s: the list changed while it was read (%s); reading again", self.resource, why
            )
        self.passes += 1
        # the first pass's distinct keys are the keys yielded; later passes count their own
        self.in_pass = self.yielded if self.passes == 1 else KeySet()

    def take(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """(rows of a page not yielded before, or changed during the read; repeats in the pass)."""
        keys = [row[self.key] for row in rows]
        new = self.yielded.add(keys)
        in_pass = new if self.in_pass is self.yielded else self.in_pass.add(keys)
        keep = self.keep_repeat
        out = [row for row, fresh in zip(rows, new, strict=True) if fresh or (keep and keep(row))]
        return out, in_pass.count(False)

    @property
    def distinct_in_pass(self) -> int:
        return len(self.in_pass)


@dataclass
class NumberedPage:
    """One page of a page-number list, as the vendor folder read it."""

    rows: list[dict[str, Any]]
    total: int  # the count the answer reported
    request_id: str | None = None
    status: int | None = None


def numbered_pages(
    fetch: Callable[[int], NumberedPage],
    *,
    client: ApiClient,
    resource: str,
    key: str,
    page_size: int,
    concurrency: int,
    count_name: str = "total_count",
    keep_repeat: Callable[[dict[str, Any]], bool] | None = None,
    max_pages: int | None = None,
    counted: Callable[[int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every row of a page-number list once, checked against the count each page reports.

    The first page of a pass gives the count; the pass's other pages are fetched concurrently
    (`concurrency`) and yielded in order. A page must hold exactly the rows its own count leaves
    for it (`fetch` raises `PageAnomaly` for an answer without rows or count). Passes follow the
    module docstring: a pass whose count moved is read again from the page before the first page
    that reported another count, after a seam check against the pages accepted before.
    `counted` is told the count of the read's first page.
    """
    ledger = ReadLedger(resource, key, keep_repeat=keep_repeat)
    progress = Progress(resource)
    # keys of the last pages read before any count moved: a page read again must meet them
    accepted: deque[set[Any]] = deque(maxlen=SEAM_PAGES)

    def checked(page: int) -> NumberedPage:
        def once() -> NumberedPage:
            got = fetch(page)
            expected = max(0, min(page_size, got.total - (page - 1) * page_size))
            if len(got.rows) != expected:
                raise PageAnomaly(
                    f"received {len(got.rows)} rows where {expected} were expected "
                    f"({count_name} {got.total}, {page_size} a page)",
                    request_id=got.request_id,
                    status=got.status,
                )
            check_rows(got.rows, key, request_id=got.request_id, status=got.status)
            return got

        return fetch_checked(client, once, resource=resource, page=page)

    start, why = 1, None
    while True:
        ledger.new_pass(why)
        progress.passes = ledger.passes
        first, start = _seam(checked, start, accepted, key)
        total = first.total
        if counted is not None and ledger.passes == 1:
            counted(total)
        progress.total = total
        last = max(start, math.ceil(total / page_size))
        if max_pages is not None:
            last = min(last, max_pages)
        later = fetch_in_order(checked, range(start + 1, last + 1), concurrency)
        moved: int | None = None
        for number, page in zip(
            range(start, last + 1), itertools.chain([first], later), strict=True
        ):
            rows, repeats = ledger.take(page.rows)
            progress.add(len(page.rows))
            if moved is None and (page.total != total or repeats):
                moved = number
                why = f"{count_name} {total} -> {page.total} at page {number}"
                if repeats:
                    why = f"{repeats} rows read twice at page {number}"
            if moved is None:
                accepted.append({row[key] for row in page.rows})
            if rows:
                yield rows
        if max_pages is not None:
            break
        expected = max(0, total - (start - 1) * page_size)
        if moved is None and ledger.distinct_in_pass == expected:
            break
        if moved is None:  # cannot happen with every page checked; read it all again
            moved, why = start, f"{ledger.distinct_in_pass} distinct rows of {expected}"
        start = max(1, moved - 1)
    progress.done()


# Pages kept for the seam check; a shift larger than this many pages reads again from page 1.
SEAM_PAGES = 8


def _seam(
    checked: Callable[[int], NumberedPage], start: int, accepted: deque[set[Any]], key: str
) -> tuple[NumberedPage, int]:
    """Page `start` (or one before it) holding a row read before any count moved; page 1 needs none."""
    known = set().union(*accepted) if start > 1 else set()
    for _ in range(SEAM_PAGES):
        page = checked(start)
        if start == 1 or any(row[key] in known for row in page.rows):
            return page, start
        start -= 1
    return checked(1), 1
