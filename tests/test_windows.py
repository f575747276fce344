"""A full read of a large Pitchly table in Created At windows read at once (`core/slices.py`).

The windows must share no record and miss none, whatever the records' times (at a cut to the
millisecond too), as the sandbox's own filter evaluates them; a read of windows must load what a
read in one pass loads, with every page asked for once; an API that ignores or refuses a filter
on Created At, or records added and deleted while the windows are read, must not cost a row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lxp_sync.sources.core.slices import read_together, time_windows, window_count
from lxp_sync.sources.pitchly.records import window_conditions
from lxp_sync_sandbox.pitchly_filter import _date_test
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import sync
from tests.test_pitchly import (
    API,
    TABLES,
    assert_table_equals_truth,
    records_filters,
    tables_by_name,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAGE_SIZE = 20  # Deals (1,200 records of 3,000) makes 4 windows of about 15 pages


def ms(moment: datetime) -> int:
    return int((moment - EPOCH) / timedelta(milliseconds=1))


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


@given(oldest=moments, span_ms=st.integers(0, 10**11), count=st.integers(1, 8), data=st.data())
def test_every_moment_falls_in_exactly_one_window_as_the_api_filters_them(
    oldest: datetime, span_ms: int, count: int, data: st.DataObject
) -> None:
    until = oldest + timedelta(milliseconds=span_ms)
    windows = time_windows(oldest, until, count)
    assert 1 <= len(windows) <= count
    assert windows[0][0] is None and windows[-1][1] is None
    cuts = [ms(end) for _, end in windows[:-1] if end is not None]
    assert all(cut % 1000 == 0 for cut in cuts) and cuts == sorted(set(cuts))
    near = st.sampled_from([cut + d for cut in cuts for d in (-1, 0, 1)] or [ms(oldest)])
    around = st.integers(ms(oldest) - 86_400_000, ms(until) + 86_400_000)
    for moment in data.draw(st.lists(st.one_of(near, around), min_size=1, max_size=20)):
        holding = []
        for window in windows:
            tests = [
                _date_test(c["comparison"]["operator"], c["right"]["value"])
                for c in window_conditions("created", window)
            ]
            if all(test(moment) for test in tests):
                holding.append(window)
        assert len(holding) == 1, (moment, windows)


def test_windows_only_for_reads_of_enough_pages() -> None:
    assert window_count(99, 20, 4) == 1  # fewer than two windows of 5 pages
    assert window_count(200, 20, 4) == 2
    assert window_count(1_000_000, 20, 4) == 4
    assert window_count(1_000_000, 20, 1) == 1
    # a first record "newer" than this machine's clock: one window, which means one plain read
    now = datetime(2026, 12, 4, tzinfo=UTC)
    assert time_windows(now + timedelta(hours=1), now, 4) == [(None, None)]


def test_reads_together_give_every_item_and_the_first_error_ends_the_rest() -> None:
    def counting(start: int) -> Iterator[int]:
        yield from range(start, start + 50)

    got = list(read_together([lambda s=s: counting(s) for s in (0, 100, 200)], "test"))
    assert sorted(got) == [*range(50), *range(100, 150), *range(200, 250)]

    stopped = threading.Event()

    def endless() -> Iterator[int]:
        try:
            while True:
                yield 1
        finally:
            stopped.set()

    def failing() -> Iterator[int]:
        yield 2
        time.sleep(0.05)
        raise RuntimeError("page 3 refused")

    with pytest.raises(RuntimeError, match="page 3 refused"):
        list(read_together([endless, failing], "test"))
    assert stopped.wait(5), "the other read went on after the first one failed"


def deals(sandbox: SandboxProcess) -> str:
    return tables_by_name(sandbox)["Deals"]["id"]


def created_conditions(found: Any) -> list[tuple[str, str]]:
    """The Created At conditions of a page's filter: (operator, moment)."""
    conditions = (found or {}).get("conditions") or []
    return sorted(
        (c["comparison"]["operator"], c["right"]["value"])
        for c in conditions
        if c.get("comparison", {}).get("operator") in ("is-before", "is-on-or-after")
    )


def test_a_large_table_is_read_in_windows_at_once_every_page_once_and_equals_the_truth(
    sandbox: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.clear_requests()
    caplog.set_level("INFO", logger="lxp_sync")
    pipeline = sync("pitchly", sandbox, workdir, page_size=PAGE_SIZE, windows=4)

    tables = tables_by_name(sandbox)
    for name, table in TABLES.items():
        assert_table_equals_truth(sandbox, pipeline, workdir, tables[name]["id"], table)
    filters = records_filters(sandbox, deals(sandbox))
    windows = [created_conditions(f) for f in filters]
    assert filters[0] is None and not windows[0], "the first request: a record and the count"
    windows = windows[1:]
    assert len({tuple(w) for w in windows}) == 4 and all(windows)
    # every page once: each window's full pages, then one short page (or none)
    truth = len(sandbox.truth(API, f"records:{deals(sandbox)}"))
    assert len(windows) <= truth // PAGE_SIZE + 4
    # read at once: the windows' pages interleave in the order the API received them
    order = [tuple(w) for w in windows]
    switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
    assert switches > 4, "the windows were read one after the other"
    assert "pitchly.sales__deals: reading 1200 records in 4 Created At windows" in caplog.text


def test_windows_1_the_default_reads_in_one_pass(sandbox: SandboxProcess, workdir: Path) -> None:
    sandbox.clear_requests()
    sync("pitchly", sandbox, workdir, page_size=PAGE_SIZE, resources=["sales__deals"])
    filters = records_filters(sandbox, deals(sandbox))
    assert filters == [None] * len(filters) and len(filters) >= 1200 // PAGE_SIZE


@pytest.mark.parametrize("served", ["ignored", "refused"])
def test_an_api_that_ignores_or_refuses_created_at_filters_gets_one_read_and_nothing_lost(
    fresh_sandbox: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture, served: str
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api=API, created_at_filter=served)
    caplog.set_level("INFO", logger="lxp_sync")
    pipeline = sync(
        "pitchly", sandbox, workdir, page_size=PAGE_SIZE, windows=4, resources=["sales__deals"]
    )

    assert_table_equals_truth(sandbox, pipeline, workdir, deals(sandbox), "sales__deals")
    assert not any(map(created_conditions, records_filters(sandbox, deals(sandbox))))
    assert "reading the table in one pass" in caplog.text


def test_records_added_and_deleted_while_windows_are_read_cost_no_row(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    table = deals(sandbox)
    before = {r["id"] for r in sandbox.truth(API, f"records:{table}")}
    # in the middle of the windows' reads: records go (from every window) and come (the last)
    for skip, change in ((6, {"delete": 5}), (12, {"insert": 4}), (20, {"delete": 3})):
        sandbox.fault(
            api=API,
            kind="mutate",
            body_contains="is-before",
            skip=skip,
            mutation={"entity": f"records:{table}", **change},
        )
    pipeline = sync(
        "pitchly", sandbox, workdir, page_size=PAGE_SIZE, windows=4, resources=["sales__deals"]
    )

    after = {r["id"] for r in sandbox.truth(API, f"records:{table}")}
    assert len(before - after) == 8 and len(after - before) == 4, "the faults did not all fire"
    with pipeline.sql_client() as client:
        loaded = [r[0] for r in client.execute_sql("SELECT id FROM sales__deals")]
    assert len(loaded) == len(set(loaded))
    assert before & after <= set(loaded), "a record there all along was not loaded"
    assert not set(loaded) - (before | after)
    # what came or went behind a window's reader is settled by the next run (as for one read)
    pipeline = sync(
        "pitchly", sandbox, workdir, page_size=PAGE_SIZE, windows=4, resources=["sales__deals"]
    )
    assert_table_equals_truth(sandbox, pipeline, workdir, table, "sales__deals")


@pytest.mark.parametrize("kind", ["no_data", "null_edge", "null_node", "no_count", "empty"])
def test_an_odd_answer_to_the_first_request_reads_the_table_in_one_pass(
    fresh_sandbox: SandboxProcess, workdir: Path, kind: str
) -> None:
    sandbox = fresh_sandbox
    sandbox.fault(api=API, kind=kind, count=1, body_contains="LxpOldest")
    pipeline = sync(
        "pitchly", sandbox, workdir, page_size=PAGE_SIZE, windows=4, resources=["sales__deals"]
    )

    assert_table_equals_truth(sandbox, pipeline, workdir, deals(sandbox), "sales__deals")
    # without the fault the table is read in 4 windows (the test above)
    assert not any(map(created_conditions, records_filters(sandbox, deals(sandbox))))
