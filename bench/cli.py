"""`python -m bench`: start the sandbox, time every tool on the same data, write the results.

For each scale, one sandbox (`python -m lxp_sync_sandbox` in a child process); for each latency, every
full-sync tool `--runs` times, interleaved (tool A, tool B, ..., then again), each run a fresh
process in a fresh directory. Then, at each latency, the incremental scenario (a full lxp-sync
run, 1% of the rows changed through `/_sandbox/mutate`, an incremental run), and once the
rate-limit scenario. Medians go to `DIR/results.json`, the table to stdout, and the method,
table and chart to `docs/benchmarks.md` and `docs/benchmarks.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.measure import process_cpu_s, run_measured
from bench.peers import CURSOR_ENTITIES, ENTITIES, PAGE_SIZE, airbyte_manifest
from bench.tools import (
    ALL_TOOLS,
    FULL_SYNC_TOOLS,
    INCREMENTAL_TOOL,
    ROOT,
    Target,
    airbyte_versions,
    ensure_airbyte_venv,
    error_text,
    inner_seconds,
    last_json_line,
    launch,
    loaded_rows,
)
from bench.workers import ceiling

DEFAULT_SCALES = [10_000, 100_000]
QUICK_SCALES = [2_000]
CHANGED_SHARE = 0.01  # rows changed before the incremental run


def _connector_concurrency() -> int:
    """Pages in flight per resource as lxp-sync runs here: the project's `.dlt/config.toml`."""
    try:
        settings = tomllib.loads((ROOT / ".dlt" / "config.toml").read_text())
        return int(settings["sources"]["plusplus_rest"]["concurrency"])
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError):
        return 4  # the source's default


CONNECTOR_CONCURRENCY = _connector_concurrency()
RATE_LIMIT_MAX_SCALE = 100_000  # the rate-limit scenario runs at the largest scale up to this


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Rows/s, requests and peak memory of lxp-sync, a fetch-only ceiling and the "
        "peers (dlt rest_api, Airbyte low-code), on the same sandbox data.",
    )
    parser.add_argument("--rows", type=int, help="one scale (sandbox rows); overrides --scales")
    parser.add_argument(
        "--scales", type=int, nargs="+", help=f"sandbox sizes (default: {DEFAULT_SCALES})"
    )
    parser.add_argument("--with-1m", action="store_true", help="add the 1,000,000-row scale")
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        help="per-request latency of the sandbox (default: 0 50; --quick: 0)",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per measurement, medians reported (default 2; --quick: 1)"
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=20,
        help="requests/s for the rate-limit scenario (default 20; 0 skips it)",
    )
    parser.add_argument("--tools", nargs="+", choices=ALL_TOOLS, help="a subset of the tools")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results dir")
    parser.add_argument(
        "--docs",
        help="where benchmarks.md and benchmarks.png go (default: docs/; --quick: the out dir)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2000 rows, 0 ms, no Airbyte peer unless --tools names it, "
        "docs written to the out dir",
    )
    parser.add_argument(
        "--connector",
        help="measure the lxp-sync in this directory (a checkout or a scratch copy) with "
        "`python -m lxp_sync.pipelines.cli` instead of this tree's `lxp-sync` command",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite the table, page and chart from DIR/results.json",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout-s", type=float, default=900, help="per run; then stopped")
    parser.add_argument(
        "--max-rss-mb", type=float, default=8192, help="a run above this RSS is stopped"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    scales = (
        [args.rows]
        if args.rows
        else list(args.scales or (QUICK_SCALES if args.quick else DEFAULT_SCALES))
    )
    if args.with_1m and 1_000_000 not in scales:
        scales.append(1_000_000)
    latencies = (
        args.latency_ms if args.latency_ms is not None else ([0.0] if args.quick else [0.0, 50.0])
    )
    tools = list(args.tools or ALL_TOOLS)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs).resolve() if args.docs else (out if args.quick else ROOT / "docs")
    if args.render:
        _publish(json.loads((out / "results.json").read_text()), out, docs)
        return

    skipped: dict[str, str] = {}
    if "airbyte_lowcode" in tools:
        if args.quick and not args.tools:
            skipped["airbyte_lowcode"] = "skipped: --quick does not run the Airbyte peer"
        else:
            problem = ensure_airbyte_venv(log=_say)
            if problem:
                skipped["airbyte_lowcode"] = problem

    started = time.time()
    meta = _machine(args, scales, latencies, tools)
    runs: list[dict[str, Any]] = []
    rate_limited: list[dict[str, Any]] = []
    rate_scale = max([s for s in scales if s <= RATE_LIMIT_MAX_SCALE] or [min(scales)])
    for scale in scales:
        with Session(scale, args) as session:
            for latency in latencies:
                session.configure(latency_ms=latency)
                for run in range(args.runs):
                    for tool in tools:
                        if tool == INCREMENTAL_TOOL:
                            continue
                        if tool in skipped:
                            if run == 0:
                                runs.append(session.skipped(tool, latency, skipped[tool]))
                            continue
                        runs.append(session.full_sync(tool, latency, run))
            if INCREMENTAL_TOOL in tools:
                # last: its mutations change the data the full syncs above read
                for latency in latencies:
                    session.configure(latency_ms=latency)
                    for run in range(args.runs):
                        runs.append(session.incremental(latency, run))
            if args.rate_limit and scale == rate_scale and "lxp_sync" in tools:
                rate_limited.append(session.rate_limited(args.rate_limit))
    meta["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta["duration_s"] = round(time.time() - started, 1)
    meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    records = report.aggregate(runs)
    results = {
        "meta": meta,
        "records": records,
        "rate_limit": rate_limited,
        "targets": report.targets(records, rate_limited),
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _publish(results, out, docs)


def _publish(results: dict[str, Any], out: Path, docs: Path) -> None:
    print(report.table(results["records"], results["rate_limit"], results["targets"]))
    docs.mkdir(parents=True, exist_ok=True)
    report.write_docs(results, docs / "benchmarks.md", docs / "benchmarks.png")
    _say(f"wrote {out / 'results.json'}, {docs / 'benchmarks.md'}, {docs / 'benchmarks.png'}")


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _machine(
    args: argparse.Namespace, scales: list[int], latencies: list[float], tools: list[str]
) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory_kb = int(line.split()[1])
    packages = {}
    for name in ("dlt", "duckdb", "pyarrow", "httpx", "orjson", "requests", "starlette", "uvicorn"):
        try:
            packages[name] = version(name)
        except Exception:
            packages[name] = "missing"
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "scales": scales,
        "latencies_ms": latencies,
        "runs": args.runs,
        "tools": tools,
        "quick": args.quick,
        "machine": {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory_gb": round(memory_kb / 2**20, 1),
            "os": platform.platform(),
            "python": platform.python_version(),
        },
        "packages": packages,
        "airbyte_venv": airbyte_versions() if "airbyte_lowcode" in tools else {},
        "connector_concurrency": CONNECTOR_CONCURRENCY,
        "connector": _connector_version(args.connector),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def _connector_version(connector: str | None) -> str:
    """Which lxp-sync was measured: the commit, and whether its code differed from it."""
    root = Path(connector).resolve() if connector else ROOT
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "sources", "pipelines"], cwd=ROOT
        ).returncode
    except OSError:
        return str(root)
    if connector:
        return f"{root} (a copy; this tree is at {commit})"
    return f"commit {commit}" + (
        " with uncommitted changes in sources/ or pipelines/" if changed else ""
    )


class Session:
    """One sandbox at one scale, and the scenarios run against it."""

    def __init__(self, scale: int, args: argparse.Namespace) -> None:
        from lxp_sync_sandbox.plusplus_rest import API_TOKEN
        from lxp_sync_sandbox.server import SandboxProcess

        self.scale, self.args = scale, args
        self.sandbox = SandboxProcess(rows=scale, seed=args.seed)
        self.token = API_TOKEN
        self.root = Path(tempfile.mkdtemp(prefix=f"lxp-bench-{scale}-"))

    def __enter__(self) -> Session:
        _say(f"starting the sandbox with {self.scale} rows ...")
        self.sandbox.start(timeout=600)
        self.api_url = f"{self.sandbox.url}/plusplus_rest/api/v1"
        self.totals, samples = self._survey()
        manifest = self.root / "airbyte_manifest.json"
        manifest.write_text(json.dumps(airbyte_manifest(self.api_url, samples), indent=1))
        self.target = Target(
            self.api_url, self.token, manifest, CONNECTOR_CONCURRENCY, self.args.connector
        )
        # The sandbox renders and caches page bodies on first use: warm it up, untimed, so that
        # the first measured tool does not pay for that.
        ceiling(self.api_url, self.token, CONNECTOR_CONCURRENCY)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sandbox.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _survey(self) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
        """Rows per entity (`meta.total_count`) and a first page of each, for Airbyte's schemas."""
        totals, samples = {}, {}
        headers = {"Authorization": f"Bearer {self.token}"}
        for entity in ENTITIES:
            body = httpx.get(
                f"{self.api_url}/{entity}/",
                params={"page_size": PAGE_SIZE},
                headers=headers,
                timeout=600,
            ).json()
            totals[entity] = int(body["meta"]["total_count"])
            samples[entity] = body["data"]
        return totals, samples

    def configure(self, **settings: Any) -> None:
        self.sandbox.configure(**settings)

    def _base(self, tool: str, latency: float, run: int) -> dict[str, Any]:
        return {
            "tool": tool,
            "scale": self.scale,
            "rows": sum(self.totals.values()),
            "latency_ms": latency,
            "run": run + 1,
        }

    def skipped(self, tool: str, latency: float, reason: str) -> dict[str, Any]:
        return {**self._base(tool, latency, 0), "error": reason}

    def _measure(
        self, tool: str, latency: float, run: int, workdir: Path, on_poll: Any = None
    ) -> dict[str, Any]:
        spec = launch(tool, self.target, workdir)
        self.sandbox.clear_requests()
        pid = self.sandbox.process.pid  # type: ignore[union-attr]
        cpu_before = process_cpu_s(pid)
        measured = run_measured(
            spec.cmd,
            env=spec.env,
            cwd=workdir,
            timeout_s=self.args.timeout_s,
            max_rss_mb=self.args.max_rss_mb,
            on_poll=on_poll,
        )
        sandbox_cpu = process_cpu_s(pid) - cpu_before
        log = self.sandbox.requests(api="plusplus_rest")
        statuses = Counter(entry["status"] for entry in log)
        by_entity = Counter(entry["path"].rstrip("/").rsplit("/", 1)[-1] for entry in log)
        record = {
            **self._base(tool, latency, run),
            "wall_s": round(measured.wall_s, 3),
            "sync_s": inner_seconds(tool, measured.stdout),
            "requests": len(log),
            "requests_by_entity": dict(by_entity),
            "status_429": statuses.get(429, 0),
            "statuses": {str(k): v for k, v in statuses.items()},
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "cpu_s": round(measured.cpu_s, 2),
            "sandbox_cpu_s": round(sandbox_cpu, 2),
            "error": None,
        }
        if measured.killed or measured.returncode != 0:
            detail = error_text(measured.stderr, measured.stdout)
            record["error"] = measured.killed or f"exit code {measured.returncode}: {detail}"
            return record
        if tool.startswith("ceiling"):
            facts = last_json_line(measured.stdout) or {}
            record["rows_loaded"] = facts.get("rows")
        elif spec.database is not None:
            counts = loaded_rows(spec.python, spec.database)
            record["rows_loaded"] = sum(counts.values()) if counts else None
        return record

    def full_sync(self, tool: str, latency: float, run: int) -> dict[str, Any]:
        workdir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=self.root))
        try:
            record = self._measure(tool, latency, run, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        _say(_progress(record))
        return record

    def incremental(self, latency: float, run: int) -> dict[str, Any]:
        """A full lxp-sync run, 1% of the rows changed, then an incremental run in the same place."""
        workdir = Path(tempfile.mkdtemp(prefix="incremental-", dir=self.root))
        try:
            full = self._measure("lxp_sync", latency, run, workdir)
            if full["error"]:
                return {**full, "tool": INCREMENTAL_TOOL, "error": f"full sync: {full['error']}"}
            changed = self._change_rows()
            record = self._measure(INCREMENTAL_TOOL, latency, run, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        cursor = sum(record["requests_by_entity"].get(e, 0) for e in CURSOR_ENTITIES)
        full_cursor = sum(full["requests_by_entity"].get(e, 0) for e in CURSOR_ENTITIES)
        record.update(
            rows_changed=changed,
            requests_cursor=cursor,
            full_requests=full["requests"],
            full_requests_cursor=full_cursor,
            full_wall_s=full["wall_s"],
            cursor_request_share=round(cursor / full_cursor, 4) if full_cursor else None,
        )
        _say(_progress(record))
        return record

    def _change_rows(self) -> int:
        """Update half and insert half of 1% of each entity's rows; returns how many changed."""
        changed = 0
        for entity, total in self.totals.items():
            half = max(1, math.ceil(total * CHANGED_SHARE / 2))
            result = self.sandbox.mutate(
                api="plusplus_rest", entity=entity, update=half, insert=half
            )
            changed += len(result.get("updated", [])) + len(result.get("inserted", []))
        return changed

    def rate_limited(self, limit: int) -> dict[str, Any]:
        """lxp-sync against a sandbox that allows `limit` requests a second: the rate it kept."""
        self.configure(latency_ms=0.0, rate_limit=limit)
        samples: list[tuple[float, int]] = []

        def sample(elapsed: float) -> None:
            response = httpx.get(
                f"{self.sandbox.url}/_sandbox/requests", params={"api": "plusplus_rest"}
            )
            samples.append((elapsed, len(response.json()["requests"])))

        workdir = Path(tempfile.mkdtemp(prefix="rate-limit-", dir=self.root))
        try:
            record = self._measure("lxp_sync", 0.0, 0, workdir, on_poll=sample)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self.configure(rate_limit=0)
        record.update(rate_limit=limit, **_achieved_rate(samples, record["requests"]))
        if record["achieved_rps"]:
            record["share_of_limit"] = round(record["achieved_rps"] / limit, 3)
        _say(
            f"[{self.scale} rows, limit {limit}/s] lxp_sync: {record.get('achieved_rps')} req/s, "
            f"{record['status_429']} x 429, {record['requests']} requests"
        )
        return record


def _achieved_rate(samples: list[tuple[float, int]], total: int) -> dict[str, Any]:
    """Requests per second from the first sample that saw a request to the first that saw all.

    Sampling the log every 0.25 s bounds the error by 0.25 s over the whole sync.
    """
    first = next(((t, n) for t, n in samples if n > 0), None)
    last = next((t for t, n in samples if n >= total), None)
    if first is None or last is None or last <= first[0] or total - first[1] < 2:
        return {"achieved_rps": None, "rate_window_s": None}
    span = last - first[0]
    return {"achieved_rps": round((total - first[1]) / span, 2), "rate_window_s": round(span, 2)}


def _progress(record: dict[str, Any]) -> str:
    head = f"[{record['scale']} rows, {record['latency_ms']:g} ms] run {record['run']} {record['tool']}"
    if record.get("error"):
        return f"{head}: error: {record['error'].splitlines()[-1][:200]}"
    rate = record["rows"] / record["wall_s"] if record["wall_s"] else 0
    return (
        f"{head}: {record['wall_s']:.1f}s, {rate:,.0f} rows/s, {record['requests']} requests, "
        f"{record['peak_rss_mb']:.0f} MB, sandbox CPU {record['sandbox_cpu_s']:.1f}s"
    )


__all__ = ["main", "FULL_SYNC_TOOLS"]
