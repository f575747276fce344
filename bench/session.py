"""One sandbox at one scale, and every measurement taken against it.

The sandbox serves the four APIs from the same seed; each source gets its ceiling's plan and its
row count from a first, untimed read (which also warms the sandbox's page caches), then the
full syncs, the scenarios (incremental, deletes sweep, rate limit) run against it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.measure import Spawner, process_cpu_s
from bench.peers import CURSOR_ENTITIES, ENTITIES, PAGE_SIZE, airbyte_manifest
from bench.sources import lxp_sync_env, plan
from bench.tools import (
    FULL_REFRESH,
    INCREMENTAL_TOOL,
    RECONCILE,
    VENV_BIN,
    Target,
    base_env,
    error_text,
    inner_seconds,
    last_json_line,
    launch,
    loaded_rows,
)
from bench.workers import ceiling

CHANGED_SHARE = 0.01  # rows changed before the incremental run
# the rate-limit scenario gives each source a limit that its full sync needs this many windows
# for, so that every source is measured over about as many windows (and none takes minutes)
RATE_WINDOWS = 30
MIN_RATE_LIMIT = 2


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Session:
    """One sandbox at one scale, and the scenarios run against it."""

    def __init__(
        self, scale: int, sources: list[str], args: argparse.Namespace, spawner: Spawner
    ) -> None:
        from lxp_sync_sandbox.server import SandboxProcess

        self.scale, self.sources, self.args, self.spawner = scale, sources, args, spawner
        self.sandbox = SandboxProcess(rows=scale, seed=args.seed)
        self.root = Path(tempfile.mkdtemp(prefix=f"lxp-bench-{scale}-"))
        self.targets: dict[str, Target] = {}
        self.rows: dict[str, int] = {}
        self.ceiling_requests: dict[str, int] = {}
        # (source, latency) -> a full sync's directory and record, for the deletes sweep
        self._kept: dict[tuple[str, float], tuple[Path, dict[str, Any]]] = {}

    def __enter__(self) -> Session:
        say(f"starting the sandbox with {self.scale} rows ...")
        self.sandbox.start(timeout=600)
        try:
            self._survey()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _survey(self) -> None:
        for source in self.sources:
            target = Target(
                plan(source, self.sandbox.url),
                lxp_sync_env(source, self.sandbox.url),
                self.args.connector,
            )
            if source == "plusplus_rest":
                self._rest_peers(target)
            # The sandbox renders and caches page bodies on first use: a first read, untimed,
            # so that the first measured tool does not pay for that; it also counts the rows.
            seen = ceiling(target.plan.to_json())
            self.rows[source] = seen["rows"]
            self.ceiling_requests[source] = seen["requests"]
            self.targets[source] = target
            say(f"{source}: {seen['rows']} rows in {seen['requests']} pages")

    def __exit__(self, *exc: Any) -> None:
        self.sandbox.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _rest_peers(self, target: Target) -> None:
        """The REST peers' token and Airbyte manifest (its schemas from a first page of each)."""
        from lxp_sync_sandbox.plusplus_rest import API_TOKEN

        samples = {}
        for entity in ENTITIES:
            body = httpx.get(
                f"{target.plan.url}{entity}/",
                params={"page_size": PAGE_SIZE},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=600,
            ).json()
            samples[entity] = body["data"]
        target.token = API_TOKEN
        target.manifest = self.root / "airbyte_manifest.json"
        target.manifest.write_text(json.dumps(airbyte_manifest(target.plan.url, samples), indent=1))

    def configure(self, **settings: Any) -> None:
        self.sandbox.configure(**settings)

    def _base(self, source: str, tool: str, latency: float, run: int) -> dict[str, Any]:
        return {
            "source": source,
            "tool": tool,
            "scale": self.scale,
            "rows": self.rows[source],
            "latency_ms": latency,
            "run": run + 1,
        }

    def skipped(self, source: str, tool: str, latency: float, reason: str) -> dict[str, Any]:
        return {**self._base(source, tool, latency, 0), "error": reason}

    def _measure(
        self, source: str, tool: str, latency: float, run: int, workdir: Path
    ) -> dict[str, Any]:
        spec = launch(tool, self.targets[source], workdir)
        self.sandbox.clear_requests()
        load = os.getloadavg()[0]
        pid = self.sandbox.process.pid  # type: ignore[union-attr]
        cpu_before = process_cpu_s(pid)
        measured = self.spawner.run(
            spec.cmd,
            env=spec.env,
            cwd=workdir,
            timeout_s=self.args.timeout_s,
            max_rss_mb=self.args.max_rss_mb,
        )
        sandbox_cpu = process_cpu_s(pid) - cpu_before
        log = self.sandbox.requests(api=source)
        statuses = Counter(entry["status"] for entry in log)
        by_entity = Counter(entry["path"].rstrip("/").rsplit("/", 1)[-1] for entry in log)
        record = {
            **self._base(source, tool, latency, run),
            "wall_s": round(measured.wall_s, 3),
            "sync_s": inner_seconds(tool, measured.stdout),
            "requests": len(log),
            "requests_by_entity": dict(by_entity),
            "status_429": statuses.get(429, 0),
            "statuses": {str(k): v for k, v in statuses.items()},
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "cpu_s": round(measured.cpu_s, 2),
            "sandbox_cpu_s": round(sandbox_cpu, 2),
            "load_avg": round(load, 2),
            "error": None,
        }
        record["_log"] = log  # for the rate-limit scenario; dropped before the results are written
        if measured.killed or measured.returncode != 0:
            detail = error_text(measured.stderr, measured.stdout)
            record["error"] = measured.killed or f"exit code {measured.returncode}: {detail}"
            return record
        if tool.startswith("ceiling"):
            facts = last_json_line(measured.stdout) or {}
            record["rows_loaded"] = facts.get("rows")
        elif spec.database is not None and tool != RECONCILE:
            counts = loaded_rows(spec.python, spec.database, spec.tables)
            record["rows_loaded"] = sum(counts.values()) if counts else None
        return record

    def _workdir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))

    def full_sync(
        self, source: str, tool: str, latency: float, run: int, *, keep: bool = False
    ) -> dict[str, Any]:
        """One measured full sync in a fresh directory (`keep`: kept for `sweep`)."""
        workdir = self._workdir(f"{source}-{tool}")
        kept = False
        try:
            record = self._measure(source, tool, latency, run, workdir)
            record.pop("_log")
            if keep and not record["error"]:
                self._kept[(source, latency)] = (workdir, record)
                kept = True
        finally:
            if not kept:
                shutil.rmtree(workdir, ignore_errors=True)
        say(progress(record))
        return record

    def _loaded(self, source: str, latency: float, prefix: str) -> tuple[Path, dict[str, Any]]:
        """A directory with a full lxp-sync load of `source`: one `full_sync` kept, else a new one."""
        found = self._kept.pop((source, latency), None)
        if found is not None:
            return found
        workdir = self._workdir(f"{source}-{prefix}")
        full = self._measure(source, "lxp_sync", latency, 0, workdir)
        full.pop("_log")
        return workdir, full

    def sweep(self, source: str, latency: float) -> list[dict[str, Any]]:
        """After a full load: the deletes sweep (`lxp-sync reconcile`), then `--full-refresh`."""
        workdir, full = self._loaded(source, latency, "sweep")
        records: list[dict[str, Any]] = []
        try:
            for tool in (RECONCILE, FULL_REFRESH):
                if full["error"]:
                    record = {**full, "tool": tool, "error": f"full sync: {full['error']}"}
                else:
                    record = self._measure(source, tool, latency, 0, workdir)
                    record.pop("_log")
                    record.update(first_sync_requests=full["requests"], first_sync_s=full["wall_s"])
                records.append(record)
                say(progress(record))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return records

    def incremental(self, latency: float, run: int) -> dict[str, Any]:
        """PlusPlus REST: a full run, 1% of the rows changed, then an incremental run there."""
        source = "plusplus_rest"
        workdir = self._workdir(f"{source}-incremental")
        try:
            full = self._measure(source, "lxp_sync", latency, run, workdir)
            full.pop("_log")
            if full["error"]:
                return {**full, "tool": INCREMENTAL_TOOL, "error": f"full sync: {full['error']}"}
            return self._incremental(source, latency, run, workdir, full)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _incremental(
        self, source: str, latency: float, run: int, workdir: Path, full: dict[str, Any]
    ) -> dict[str, Any]:
        changed = self._change_rows()
        record = self._measure(source, INCREMENTAL_TOOL, latency, run, workdir)
        record.pop("_log")
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
        say(progress(record))
        return record

    def _change_rows(self) -> int:
        """Update half and insert half of 1% of each REST entity's rows; how many changed."""
        changed = 0
        for entity in ENTITIES:
            half = max(1, math.ceil(self._rest_total(entity) * CHANGED_SHARE / 2))
            result = self.sandbox.mutate(
                api="plusplus_rest", entity=entity, update=half, insert=half
            )
            changed += len(result.get("updated", [])) + len(result.get("inserted", []))
        return changed

    def _rest_total(self, entity: str) -> int:
        target = self.targets["plusplus_rest"]
        body = httpx.get(
            f"{target.plan.url}{entity}/",
            params={"page_size": 1},
            headers={"Authorization": f"Bearer {target.token}"},
            timeout=600,
        ).json()
        return int(body["meta"]["total_count"])

    def rate_limit_for(self, source: str, most: int) -> int:
        """The source's limit: its full sync needs about `RATE_WINDOWS` one-second windows."""
        wanted = round(self.ceiling_requests[source] / RATE_WINDOWS)
        return max(MIN_RATE_LIMIT, min(most, wanted))

    def rate_limited(self, source: str, limit: int, window_s: float = 1.0) -> dict[str, Any]:
        """lxp-sync against a sandbox that allows `limit` requests a window: how much it used."""
        self.configure(latency_ms=0.0, rate_limit=limit, rate_window_s=window_s)
        workdir = self._workdir(f"{source}-rate-limit")
        try:
            record = self._measure(source, "lxp_sync", 0.0, 0, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self.configure(rate_limit=0, rate_window_s=1.0)
        log = record.pop("_log")
        record.update(rate_limit=limit, window_s=window_s, **limit_used(log, limit, window_s))
        say(
            f"[{source}, {self.scale} rows, limit {limit}/s] lxp_sync: "
            f"{record.get('share_of_limit')} of the limit, {record['status_429']} x 429, "
            f"{record['requests']} requests"
        )
        return record


def startup(spawner: Spawner, runs: int, timeout_s: float) -> list[dict[str, Any]]:
    """`lxp-sync --help` and `import lxp_sync.sources.plusplus`, each `runs` times, fresh processes."""
    commands = {
        "lxp-sync --help": [str(VENV_BIN / "lxp-sync"), "--help"],
        "import lxp_sync.sources.plusplus": [
            sys.executable,
            "-c",
            "import lxp_sync.sources.plusplus",
        ],
    }
    records = []
    for run in range(runs):
        for name, cmd in commands.items():
            workdir = Path(tempfile.mkdtemp(prefix="lxp-bench-startup-"))
            try:
                measured = spawner.run(
                    cmd,
                    env=base_env(workdir),
                    cwd=workdir,
                    timeout_s=timeout_s,
                    max_rss_mb=8192,
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            failed = measured.killed or measured.returncode
            records.append(
                {
                    "command": name,
                    "run": run + 1,
                    "wall_s": round(measured.wall_s, 3),
                    "peak_rss_mb": round(measured.peak_rss_mb, 1),
                    "cpu_s": round(measured.cpu_s, 2),
                    "error": error_text(measured.stderr, measured.stdout) if failed else None,
                }
            )
    say(
        "startup: "
        + ", ".join(f"{r['command']} {r['wall_s']:.2f}s" for r in records[-len(commands) :])
    )
    return records


def limit_used(log: list[dict[str, Any]], limit: int, window_s: float) -> dict[str, Any]:
    """How much of a fixed-window limit the requests in `log` used, from the server's clock.

    From the first request the limiter counted to the last, at most `limit` requests fit in each
    window, and windows can follow one another without a gap: `floor(span / window) + 1` of
    them. The share is the requests the server accepted over that many windows' worth.
    """
    stamps = sorted(e["at"] for e in log if e.get("at") is not None and e["status"] != 0)
    accepted = sum(1 for e in log if e["status"] not in (429, 0))
    if len(stamps) < 2:
        return {"achieved_rps": None, "rate_window_s": None, "share_of_limit": None}
    span = stamps[-1] - stamps[0]
    windows = math.floor(span / window_s) + 1
    return {
        "achieved_rps": round(accepted / span, 2) if span > 0 else None,
        "rate_window_s": round(span, 2),
        "windows": windows,
        "accepted": accepted,
        "share_of_limit": round(accepted / (limit * windows), 3),
    }


def progress(record: dict[str, Any]) -> str:
    head = (
        f"[{record['source']}, {record['scale']} rows, {record['latency_ms']:g} ms] "
        f"run {record['run']} {record['tool']}"
    )
    if record.get("error"):
        return f"{head}: error: {record['error'].splitlines()[-1][:200]}"
    rate = record["rows"] / record["wall_s"] if record["wall_s"] else 0
    return (
        f"{head}: {record['wall_s']:.1f}s, {rate:,.0f} rows/s, {record['requests']} requests, "
        f"{record['peak_rss_mb']:.0f} MB, sandbox CPU {record['sandbox_cpu_s']:.1f}s"
    )
