"""Debian's Chromium for the HTML report's browser test: installed with apt-get where it is
missing, driven over the DevTools protocol (console errors, the page's text and layout, and a
screenshot of the whole page).

The install runs as root, non-interactively, once per machine (a file lock keeps two test
processes from racing on apt); where Chromium is there already it costs one `stat`. No apt, or
no root: the test fails with one line saying what to install, it is not skipped.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

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


@dataclass
class PageVisit:
    """What Chromium saw of one page: its errors, its text, where its elements are, a screenshot."""

    errors: list[str]  # console errors, uncaught exceptions, failed loads
    text: str  # the page's visible text
    boxes: dict[str, list[dict[str, float]]]  # CSS selector -> bounding boxes, in CSS pixels
    screenshot: bytes  # PNG of the whole page


def visit(
    chromium: Path, url: str, selectors: list[str], width: int = 1300, timeout: float = 60
) -> PageVisit:
    """Load `url` in a headless Chromium (a new profile in a temporary folder), over the DevTools
    protocol: console and log errors are collected while it loads, then its text, the boxes of
    `selectors` and a full-page screenshot are read."""
    # Chromium's helpers (zygote, renderers) are killed with it as one process group; one still
    # writing its profile while the folder is removed must not fail the test
    with tempfile.TemporaryDirectory(prefix="lxp-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                str(chromium),
                *SWITCHES,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},1000",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            endpoint = _devtools_endpoint(process, timeout)
            with connect(endpoint, max_size=None, open_timeout=timeout) as socket:
                return _Session(socket, timeout).visit(url, selectors, width)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """Kill Chromium and every helper it started (one process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _devtools_endpoint(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    for line in process.stderr:
        seen.append(line.rstrip())
        if line.startswith("DevTools listening on "):
            return line.split(" on ", 1)[1].strip()
        if time.monotonic() > deadline:
            break
    raise ChromiumUnavailable(
        "Chromium did not start its DevTools endpoint: " + " / ".join(seen[-3:])
    )


class _Session:
    """A DevTools protocol session on one new page (flat sessions over the browser's socket)."""

    def __init__(self, socket: Any, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, page: bool = False) -> Any:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            answer = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)
        raise TimeoutError(method)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(event)
            self.events.append(json.loads(self.socket.recv(timeout=remaining)))

    def visit(self, url: str, selectors: list[str], width: int) -> PageVisit:
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", page=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            page=True,
        )
        self.call("Page.navigate", {"url": url}, page=True)
        self.wait_for("Page.loadEventFired")
        probe = (
            "JSON.stringify({text: document.body.innerText, boxes: Object.fromEntries("
            + json.dumps(selectors)
            + ".map(s => [s, [...document.querySelectorAll(s)].map(e => {"
            "const r = e.getBoundingClientRect(); "
            "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height};"
            "})]))})"
        )
        found = json.loads(
            self.call("Runtime.evaluate", {"expression": probe, "returnByValue": True}, page=True)[
                "result"
            ]["value"]
        )
        metrics = self.call("Page.getLayoutMetrics", page=True)["cssContentSize"]
        shot = self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": metrics["width"],
                    "height": metrics["height"],
                    "scale": 1,
                },
            },
            page=True,
        )
        return PageVisit(
            errors=_errors(self.events),
            text=found["text"],
            boxes=found["boxes"],
            screenshot=base64.b64decode(shot["data"]),
        )


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in (
            "error",
            "assert",
        ):
            errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(
                str(details.get("exception", {}).get("description") or details.get("text"))
            )
        elif (
            event.get("method") == "Log.entryAdded"
            and params.get("entry", {}).get("level") == "error"
        ):
            errors.append(str(params["entry"].get("text")))
    return errors
