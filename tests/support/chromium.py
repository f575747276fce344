"""Debian's Chromium for the HTML report's browser test: installed with apt-get where it is missing.

The install runs as root, non-interactively, once per machine (a file lock keeps two test
processes from racing on apt); where Chromium is there already it costs one `stat`. No apt, or
no root: the test fails with one line saying what to install, it is not skipped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGE = "chromium"
LOCK = Path(tempfile.gettempdir()) / "lxp-sync-chromium-install.lock"
# Chromium's switches for a quiet, reproducible headless run (no network of its own, no profile)
SWITCHES = (
    "--headless",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


class ChromiumUnavailable(RuntimeError):
    """Chromium is missing and cannot be installed here."""


def ensure_chromium() -> tuple[Path, float]:
    """The Chromium binary, and the seconds spent installing it (0 when it was there)."""
    if _runnable(CHROMIUM):
        return CHROMIUM, 0.0
    apt = shutil.which("apt-get")
    if apt is None:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and apt-get is not available: install Debian's "
            f"`{PACKAGE}` package (or any Chromium at {CHROMIUM}) to run the HTML report test"
        )
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing and installing it needs root: run "
            f"`sudo apt-get install -y {PACKAGE}` once, then the tests again"
        )
    started = time.monotonic()
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it
        if not _runnable(CHROMIUM):
            _install(apt)
    if not _runnable(CHROMIUM):
        raise ChromiumUnavailable(f"apt-get installed `{PACKAGE}` but {CHROMIUM} does not run")
    return CHROMIUM, time.monotonic() - started


def _install(apt: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", PACKAGE]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # stale or missing package lists: refresh them once
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ChromiumUnavailable(f"apt-get install {PACKAGE} failed: {' / '.join(tail)}")


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def headless(chromium: Path, profile: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Chromium in headless mode with a profile folder of its own; `args`: more switches, the URL."""
    command = [str(chromium), *SWITCHES, f"--user-data-dir={profile}", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
