"""The pacer against fixed windows, on the real class with a clock the test moves.

A fixed window admits `limit` requests and ends `reset` seconds later; the next one opens with
the first request that arrives after it (the sandbox's windows, `sandbox/app.py`). Each test
replays answers as such a server gives them and counts the requests the pacer lets out at
once: never more than the server's window still admits, and every slot it does admit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from lxp_sync.sources.core import stop
from lxp_sync.sources.core.errors import Interrupted
from lxp_sync.sources.core.http import RateLimitPacer

# real seconds a request may take to get out of `acquire` when it has a slot
PROMPT_S = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answer(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": f"{reset:.3f}",
    }


class Waiters:
    """Threads that each ask the pacer for one slot, as a source's page workers do."""

    def __init__(self, pacer: RateLimitPacer, count: int) -> None:
        self.tickets: list[int] = []
        self._threads = [threading.Thread(target=self._one, args=(pacer,)) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _one(self, pacer: RateLimitPacer) -> None:
        try:
            ticket = pacer.acquire()
        except Interrupted:
            return
        self.tickets.append(ticket)

    def sent_after(self, seconds: float = PROMPT_S) -> int:
        time.sleep(seconds)
        return len(self.tickets)

    def stop(self) -> None:
        stop.request_stop("test")
        for thread in self._threads:
            thread.join()
        stop.reset()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacer(clock: Clock) -> Iterator[RateLimitPacer]:
    yield RateLimitPacer(clock=clock)
    stop.reset()


def test_a_request_held_through_a_full_window_is_not_sent_into_the_next_full_one(
    clock: Clock, pacer: RateLimitPacer
) -> None:
    # window 1 (limit 3, 1 s): every slot used at once
    pacer.release(pacer.acquire(), answer(3, 2, 1.0))
    for left in (1, 0):
        pacer.release(pacer.acquire(), answer(3, left, 1.0))
    clock.now = 0.2
    late = Waiters(pacer, 1)  # a page worker that finds window 1 full
    assert late.sent_after(0.3) == 0
    # window 2 opens; other requests fill it before the late one wakes (the pacer's lock held,
    # so that it cannot wake in between)
    with pacer._cond:
        clock.now = 1.06
        first, second = pacer.acquire(), pacer.acquire()
        pacer.release(first, answer(3, 1, 1.0))
        pacer.release(second, answer(3, 0, 1.0))
    try:
        # held 1.3 s, longer than a window: still nothing left in this one
        clock.now = 1.5
        assert late.sent_after() == 0
        clock.now = 2.12  # window 3
        assert late.sent_after() == 1
    finally:
        late.stop()


def test_a_late_answer_from_the_window_before_does_not_reopen_the_window(
    clock: Clock, pacer: RateLimitPacer
) -> None:
    pacer.release(pacer.acquire(), answer(4, 3, 1.0))  # window 1 opens at 0
    clock.now = 0.98
    tickets = [pacer.acquire() for _ in range(3)]
    # two arrive after the server's window 1 ended: they open window 2 (ends at 2.01)
    clock.now = 1.02
    pacer.release(tickets[0], answer(4, 3, 0.99))
    pacer.release(tickets[1], answer(4, 2, 0.99))
    # the third had been counted in window 1 at 0.995; its answer comes back last
    clock.now = 1.03
    pacer.release(tickets[2], answer(4, 2, 0.005))
    clock.now = 1.09  # past the end the late answer speaks of
    waiters = Waiters(pacer, 4)
    try:
        assert waiters.sent_after() == 2  # window 2 admits two more, not four
        clock.now = 2.02
        assert waiters.sent_after() == 4
    finally:
        waiters.stop()


def test_a_new_window_gives_every_slot_when_nothing_is_in_flight(
    clock: Clock, pacer: RateLimitPacer
) -> None:
    pacer.release(pacer.acquire(), answer(5, 4, 1.0))
    tickets = [pacer.acquire() for _ in range(4)]
    for left, ticket in zip(range(3, -1, -1), tickets, strict=True):
        pacer.release(ticket, answer(5, left, 0.9))
    clock.now = 1.006
    waiters = Waiters(pacer, 6)
    try:
        assert waiters.sent_after() == 5
    finally:
        waiters.stop()


def test_requests_in_flight_into_a_new_window_take_its_slots(
    clock: Clock, pacer: RateLimitPacer
) -> None:
    pacer.release(pacer.acquire(), answer(5, 4, 1.0))
    in_flight = [pacer.acquire() for _ in range(2)]  # sent in window 1, not answered yet
    clock.now = 1.006
    waiters = Waiters(pacer, 6)
    try:
        assert waiters.sent_after() == 3  # they may land in window 2
        pacer.release(in_flight[0], answer(5, 2, 0.01))  # no: counted in window 1
        assert waiters.sent_after() == 4
    finally:
        waiters.stop()
        for ticket in in_flight[1:]:
            pacer.release(ticket, None)


def test_until_the_first_answer_one_request_at_a_time(clock: Clock, pacer: RateLimitPacer) -> None:
    waiters = Waiters(pacer, 3)
    try:
        assert waiters.sent_after() == 1
        pacer.release(waiters.tickets[0], answer(2, 1, 1.0))
        assert waiters.sent_after() == 2  # the limit known: one slot left in this window
    finally:
        waiters.stop()


def test_an_api_without_a_limit_is_not_paced(clock: Clock, pacer: RateLimitPacer) -> None:
    pacer.release(pacer.acquire(), {"content-type": "application/json"})
    waiters = Waiters(pacer, 20)
    try:
        assert waiters.sent_after() == 20
    finally:
        waiters.stop()
