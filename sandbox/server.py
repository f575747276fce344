"""Run the sandbox: in the foreground (`lxp-sync sandbox`) or as a child process (demo, tests, bench)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve(
    host: str,
    port: int,
    rows: int,
    seed: int,
    latency_ms: float = 0.0,
    rate_limit: int = 0,
    quiet: bool = False,
) -> None:
    """Serve every sandbox API until interrupted."""
    import uvicorn

    from lxp_sync_sandbox.app import SandboxConfig, create_app

    config = SandboxConfig(rows=rows, seed=seed, latency_ms=latency_ms, rate_limit=rate_limit)
    app = create_app(config)
    if not quiet:
        base = f"http://{host}:{port}"
        print(f"lxp-sync sandbox on {base} ({rows} rows, seed {seed})", flush=True)
        for api in app.state.apis.values():
            facts = ", ".join(f"{k}={v}" for k, v in api.describe(base).items())
            print(f"  {api.name}: {facts}", flush=True)
        print(f"  ground truth: {base}/_sandbox/truth/<api>/<entity>", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="auto",  # uvloop and httptools when installed (the sandbox extra has them)
        http="auto",
    )


class SandboxProcess:
    """The sandbox in a child process on a free 127.0.0.1 port; a context manager."""

    def __init__(
        self,
        rows: int = 1000,
        seed: int = 42,
        latency_ms: float = 0.0,
        rate_limit: int = 0,
        port: int | None = None,
    ) -> None:
        self.rows, self.seed, self.latency_ms, self.rate_limit = rows, seed, latency_ms, rate_limit
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> SandboxProcess:
        cmd = [
            sys.executable,
            "-m",
            "lxp_sync_sandbox",
            "--port",
            str(self.port),
            "--rows",
            str(self.rows),
            "--seed",
            str(self.seed),
            "--latency-ms",
            str(self.latency_ms),
            "--rate-limit",
            str(self.rate_limit),
            "--quiet",
        ]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox exited with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/_sandbox/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sandbox did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Sandbox-only endpoints, for tests and the benchmark.
    def truth(self, api: str, entity: str, exact: bool = False) -> list[dict[str, Any]]:
        """Every row of `entity`; `exact`: numbers with a fraction as `Decimal`, every digit."""
        response = httpx.get(f"{self.url}/_sandbox/truth/{api}/{entity}", timeout=120)
        response.raise_for_status()
        if exact:
            return json.loads(response.content, parse_float=Decimal)["data"]
        return response.json()["data"]

    def mutate(self, **spec: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox/mutate", json=spec, timeout=60)
        response.raise_for_status()
        return response.json()

    def configure(self, **spec: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox/config", json=spec, timeout=60)
        response.raise_for_status()
        return response.json()

    def fault(self, **spec: Any) -> None:
        httpx.post(f"{self.url}/_sandbox/faults", json=spec, timeout=10).raise_for_status()

    def requests(self, api: str | None = None) -> list[dict[str, Any]]:
        params = {"api": api} if api else {}
        response = httpx.get(f"{self.url}/_sandbox/requests", params=params, timeout=60)
        return response.json()["requests"]

    def clear_requests(self) -> None:
        httpx.delete(f"{self.url}/_sandbox/requests", timeout=10).raise_for_status()
