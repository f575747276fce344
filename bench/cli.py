"""`python -m bench`: start the sandbox, time every source and tool on the same data, report.

For each scale, one sandbox (`python -m lxp_sync_sandbox` in a child process) serving all four
APIs; for each latency, every full-sync tool of every source `--runs` times, interleaved (source A
tool 1, tool 2, ..., source B ..., then again), each run a fresh process in a fresh directory;
after them, in the directory of the last lxp-sync load of each source, the deletes sweep and a
full refresh. Then, at each latency, PlusPlus REST's incremental scenario (a full run, 1% of the
rows changed, an incremental run), and once per source the rate-limit scenario. Medians go to `OUT/results.json` and the
table to stdout; the page and its chart go to OUT too, or with `--docs` to `docs/`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import report
from bench.measure import Spawner
from bench.session import Session, say, startup
from bench.sources import SOURCES, setting
from bench.tools import (
    ALL_TOOLS,
    INCREMENTAL_TOOL,
    REST_ONLY,
    ROOT,
    STARTUP_TOOL,
    SWEEP_TOOL,
    airbyte_versions,
    ensure_airbyte_venv,
    tools_for,
)

DEFAULT_SCALES = [10_000, 100_000]
QUICK_SCALES = [2_000]
MILLION = 1_000_000
# the 1M scale is the memory figure: lxp-sync and the ceilings, at 0 ms, once
MILLION_TOOLS = ["ceiling_concurrent", "lxp_sync"]
RATE_LIMIT_MAX_SCALE = 100_000  # the rate-limit scenario runs at the largest scale up to this
STARTUP_RUNS = 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Rows/s, requests and peak memory of lxp-sync for every source, next to each "
        "source's fetch-only ceiling and, for PlusPlus REST, the peers (dlt rest_api, Airbyte "
        "low-code), on the same sandbox data.",
    )
    parser.add_argument("--rows", type=int, help="one scale (sandbox rows); overrides --scales")
    parser.add_argument(
        "--scales", type=int, nargs="+", help=f"sandbox sizes (default: {DEFAULT_SCALES})"
    )
    parser.add_argument(
        "--with-1m",
        action="store_true",
        help="add the 1,000,000-row scale (lxp-sync and the ceilings, 0 ms, one run)",
    )
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
        default=40,
        help="the highest requests/s of the rate-limit scenario; each source gets the limit "
        "that makes its full sync take about 30 windows, within 2..this (0 skips it)",
    )
    parser.add_argument("--sources", nargs="+", choices=SOURCES, help="a subset of the sources")
    parser.add_argument("--tools", nargs="+", choices=ALL_TOOLS, help="a subset of the tools")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results dir")
    parser.add_argument(
        "--docs",
        nargs="?",
        const=str(ROOT / "docs"),
        help="write benchmarks.md and benchmarks.png there (no DIR: the tracked docs/); "
        "without --docs they go to the out dir",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2000 rows, 0 ms, no Airbyte peer unless --tools names it",
    )
    parser.add_argument(
        "--connector",
        help="measure the lxp-sync in this directory (a checkout or a scratch copy) with "
        "`python -m lxp_sync.pipelines.cli` instead of this tree's `lxp-sync` command",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite the table, page and chart from OUT/results.json",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout-s", type=float, default=900, help="per run; then stopped")
    parser.add_argument(
        "--max-rss-mb", type=float, default=8192, help="a run above this RSS is stopped"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.render:
        out = Path(args.out).resolve()
        docs = Path(args.docs).resolve() if args.docs else out
        _publish(json.loads((out / "results.json").read_text()), out, docs)
        return
    # first, while this process is small: every measured command is spawned from it
    with Spawner() as spawner:
        _measure_all(args, spawner)


def _compile_checkout(connector: str | None) -> None:
    """Byte-compile the checkout's modules once, untimed, as `pip install` does for a package,
    and those of the lxp-sync measured (`--connector`) where that is another copy.

    Measured processes then read them compiled even where the environment sets
    PYTHONDONTWRITEBYTECODE (this machine does); otherwise lxp-sync and the ceiling would
    compile their own modules from source in every run while dlt and Airbyte, installed by
    pip, would not.
    """
    roots = [ROOT, *([Path(connector).resolve()] if connector else [])]
    for root in roots:
        for folder in ("sources", "pipelines", "bench", "lxp_sync"):
            if (root / folder).is_dir():
                compileall.compile_dir(str(root / folder), quiet=1)


def _measure_all(args: argparse.Namespace, spawner: Spawner) -> None:
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    scales = (
        [args.rows]
        if args.rows
        else list(args.scales or (QUICK_SCALES if args.quick else DEFAULT_SCALES))
    )
    if args.with_1m and MILLION not in scales:
        scales.append(MILLION)
    latencies = (
        args.latency_ms if args.latency_ms is not None else ([0.0] if args.quick else [0.0, 50.0])
    )
    sources = list(args.sources or SOURCES)
    tools = list(args.tools or ALL_TOOLS)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs).resolve() if args.docs else out
    skipped: dict[str, str] = {}
    if "airbyte_lowcode" in tools and "plusplus_rest" in sources:
        if args.quick and not args.tools:
            skipped["airbyte_lowcode"] = "skipped: --quick does not run the Airbyte peer"
        else:
            problem = ensure_airbyte_venv(log=say)
            if problem:
                skipped["airbyte_lowcode"] = problem

    _compile_checkout(args.connector)
    started = time.time()
    meta = _machine(args, scales, latencies, sources, tools)
    runs: list[dict[str, Any]] = []
    rate_limited: list[dict[str, Any]] = []
    rate_scale = max([s for s in scales if s <= RATE_LIMIT_MAX_SCALE] or [min(scales)])
    for scale in scales:
        million = scale == MILLION and args.with_1m
        scale_tools = [t for t in tools if t in MILLION_TOOLS] if million else tools
        scale_latencies = [0.0] if million else latencies
        with Session(scale, sources, args, spawner) as session:
            sweep = SWEEP_TOOL in scale_tools
            runs_here = 1 if million else args.runs
            for latency in scale_latencies:
                session.configure(latency_ms=latency)
                _load(f"{scale} rows, {latency:g} ms", meta)
                for run in range(runs_here):
                    for source in sources:
                        for tool in tools_for(source, scale_tools):
                            if tool in skipped:
                                if run == 0:
                                    reason = skipped[tool]
                                    runs.append(session.skipped(source, tool, latency, reason))
                                continue
                            # the last lxp-sync load is kept for the deletes sweep
                            keep = sweep and tool == "lxp_sync" and run == runs_here - 1
                            runs.append(session.full_sync(source, tool, latency, run, keep=keep))
                if sweep:
                    for source in sources:
                        runs += session.sweep(source, latency)
            if INCREMENTAL_TOOL in scale_tools and "plusplus_rest" in sources:
                # last: its mutations change the data the runs above read
                for latency in scale_latencies:
                    session.configure(latency_ms=latency)
                    runs.append(session.incremental(latency, 0))
            if args.rate_limit and scale == rate_scale and "lxp_sync" in tools:
                _load(f"rate limit at {scale} rows", meta)
                for source in sources:
                    limit = session.rate_limit_for(source, args.rate_limit)
                    rate_limited.append(session.rate_limited(source, limit))
    starts = startup(spawner, STARTUP_RUNS, args.timeout_s) if STARTUP_TOOL in tools else []
    meta["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta["duration_s"] = round(time.time() - started, 1)
    meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]

    records = report.aggregate(runs)
    results = {
        "meta": meta,
        "records": records,
        "rate_limit": rate_limited,
        "startup": report.startup_medians(starts),
        "targets": report.targets(records, rate_limited),
        "runs": runs,
        "startup_runs": starts,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    _publish(results, out, docs)


def _load(where: str, meta: dict[str, Any]) -> None:
    """The load average as each series starts, kept with the results (the machine is shared)."""
    load = round(os.getloadavg()[0], 2)
    meta.setdefault("load_average", {})[where] = load
    say(f"{where}: load average {load}")


def _publish(results: dict[str, Any], out: Path, docs: Path) -> None:
    print(report.table(results))
    docs.mkdir(parents=True, exist_ok=True)
    report.write_docs(results, docs / "benchmarks.md", docs / "benchmarks.png")
    say(f"wrote {out / 'results.json'}, {docs / 'benchmarks.md'}, {docs / 'benchmarks.png'}")


def _machine(
    args: argparse.Namespace,
    scales: list[int],
    latencies: list[float],
    sources: list[str],
    tools: list[str],
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
    peers = "plusplus_rest" in sources and any(t in REST_ONLY for t in tools)
    return {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "scales": scales,
        "latencies_ms": latencies,
        "runs": args.runs,
        "sources": sources,
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
        "airbyte_venv": airbyte_versions() if peers and "airbyte_lowcode" in tools else {},
        "connector_concurrency": int(setting("sources.plusplus_rest", "concurrency", 4)),
        "extract_workers": int(setting("extract", "workers", 5)),
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


__all__ = ["main"]
