"""One stop request per process, honoured by every request loop, pacer wait and backoff sleep.

The command sets it on SIGINT or SIGTERM: a run then ends within moments instead of finishing
its pages or sleeping out a backoff, and the next run resumes safely (dlt's state only moves
with a completed load). A source used from a user's own pipeline never sees it set.
"""

from __future__ import annotations

import threading

from lxp_sync.sources.core.errors import Interrupted

_requested = threading.Event()
_lock = threading.Lock()
_reason = ""


def request_stop(reason: str) -> None:
    """Ask every request loop and wait of this process to stop (`reason`: e.g. `SIGINT`)."""
    global _reason
    with _lock:
        _reason = _reason or reason
    _requested.set()


def reset() -> None:
    """Forget a stop request (a new run in the same process)."""
    global _reason
    with _lock:
        _reason = ""
    _requested.clear()


def stop_requested() -> bool:
    return _requested.is_set()


def reason() -> str:
    """What asked the run to stop (`SIGINT`), or empty."""
    with _lock:
        return _reason


def raise_if_stopped(resource: str | None = None, page: int | str | None = None) -> None:
    if _requested.is_set():
        raise Interrupted(f"stopped on {_reason}", resource=resource, page=page)


def sleep(seconds: float, resource: str | None = None, page: int | str | None = None) -> None:
    """`time.sleep` that ends at once, raising `Interrupted`, when a stop is requested."""
    if _requested.wait(max(0.0, seconds)):
        raise_if_stopped(resource, page)
