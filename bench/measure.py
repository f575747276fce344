"""How one run is measured: a child process of its own, its wall time, peak RSS and CPU time.

The wall time is the whole process, start to exit, as a user waits for it (interpreter start and
imports included). Peak RSS and CPU time come from `wait4` on that one child, so each run's
numbers are its own, never the maximum or sum over earlier runs. The sandbox's CPU time is read
from `/proc/<pid>/stat` around the run.

Linux keeps a process's peak RSS across `exec`, so a child's `ru_maxrss` is at least the RSS of
the process that spawned it. The benchmark's own process grows (it imports lxp-sync to plan the
ceilings, reads request logs), so the measured commands are spawned by `Spawner`: a small
interpreter of its own, started first, that runs each command and answers with its numbers. A
measured peak is then never below that spawner's size (about 15 MB), whatever the benchmark holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    returncode: int
    stdout: str
    stderr: str
    killed: str | None = None  # why the benchmark stopped it (timeout, memory)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the command name: state is field 3, utime 14 and stime 15 (1-based in proc(5))
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout_s: float,
    max_rss_mb: float,
    poll_s: float = 0.25,
) -> Measured:
    """Run `cmd` to its end (or stop it at `timeout_s` or above `max_rss_mb`) and measure it."""
    out_path, err_path = cwd / ".bench_stdout", cwd / ".bench_stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        killed: list[str] = []
        finished = threading.Event()

        def watch() -> None:
            while not finished.wait(poll_s):
                elapsed = time.perf_counter() - started
                reason = None
                if elapsed > timeout_s:
                    reason = f"stopped by the benchmark after {timeout_s:.0f}s (timeout)"
                elif _rss_bytes(process.pid) > max_rss_mb * 2**20:
                    reason = f"stopped by the benchmark: RSS above {max_rss_mb:.0f} MB"
                if reason:
                    killed.append(reason)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        finished.set()
        watcher.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kB on Linux
        cpu_s=usage.ru_utime + usage.ru_stime,
        returncode=process.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        killed=killed[0] if killed else None,
    )


class Spawner:
    """Runs measured commands from a small process of its own (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.measure"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )

    def run(
        self,
        cmd: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        timeout_s: float,
        max_rss_mb: float,
    ) -> Measured:
        request = {
            "cmd": cmd,
            "env": env,
            "cwd": str(cwd),
            "timeout_s": timeout_s,
            "max_rss_mb": max_rss_mb,
        }
        with self._lock:
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("the benchmark's spawner process ended")
        return Measured(**json.loads(answer))

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(10)

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve() -> None:
    """The spawner's side: one JSON request a line on stdin, one `Measured` a line on stdout."""
    for line in sys.stdin:
        request = json.loads(line)
        measured = run_measured(
            request["cmd"],
            env=request["env"],
            cwd=Path(request["cwd"]),
            timeout_s=request["timeout_s"],
            max_rss_mb=request["max_rss_mb"],
        )
        sys.stdout.write(json.dumps(asdict(measured)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
