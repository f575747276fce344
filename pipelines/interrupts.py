"""SIGINT and SIGTERM during a run: stop within seconds, say so in one line, exit 130 or 143.

The first signal does not raise a `KeyboardInterrupt` into whatever the main thread is doing (in
dlt, a worker pool, a half-written file): it asks the run to stop. The sources' request loops,
pacer waits and backoffs end at once (`core.stop`), and dlt's normalize and load finish the job
in hand and stop (its signal flag; dlt's own handlers are turned off so that they do not take
the signal instead). If the run has not ended `GRACE_S` later, or on a second signal, the
process exits at once: as safe as the rest, since the next run finishes or discards whatever any
run left (`pipelines.recovery`).
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from dlt.common.runtime import signals as dlt_signals

from lxp_sync.sources.core import stop

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
GRACE_S = 5.0


def interrupted_line(sig: int) -> str:
    return f"lxp-sync: interrupted ({signal.Signals(sig).name}); the next run resumes safely"


class StopOnSignals:
    """A context in which SIGINT and SIGTERM stop the run (see the module docstring)."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._deadline = threading.Event()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received or signal.SIGINT, 130)

    def __enter__(self) -> StopOnSignals:
        stop.reset()
        # dlt would install its own handlers in normalize and load, over these
        os.environ["RUNTIME__INTERCEPT_SIGNALS"] = "false"
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deadline.set()  # the run ended: no forced exit
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._exit_now()
        self.received = sig
        stop.request_stop(signal.Signals(sig).name)
        dlt_signals.set_received_signal(sig)
        dlt_signals.wake_all()
        threading.Thread(target=self._exit_after_grace, name="lxp-stop", daemon=True).start()

    def _exit_after_grace(self) -> None:
        if not self._deadline.wait(self.grace_s):
            self._exit_now()

    def _exit_now(self) -> None:
        assert self.received is not None
        os.write(2, f"{interrupted_line(self.received)} (stopped at once)\n".encode())
        os._exit(self.exit_code)
