"""Medians, targets, the printed table, and `docs/benchmarks.md` with its chart."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.tools import FULL_SYNC_TOOLS, INCREMENTAL_TOOL, PEERS, ROOT

NOTES = ROOT / "bench" / "notes.md"
TARGET_SCALE = 100_000
TOOL_ORDER = {tool: i for i, tool in enumerate([*FULL_SYNC_TOOLS, INCREMENTAL_TOOL])}


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per tool, scale and latency: medians over the runs that succeeded."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["tool"], run["scale"], run["latency_ms"])].append(run)
    records = []
    for (tool, scale, latency), group in groups.items():
        ok = [r for r in group if not r.get("error")]
        failed = [r for r in group if r.get("error")]
        record: dict[str, Any] = {
            "tool": tool,
            "scale": scale,
            "rows": group[0]["rows"],
            "latency_ms": latency,
            "wall_s": None,
            "rows_per_s": None,
            "requests": None,
            "peak_rss_mb": None,
            "error": failed[0]["error"] if failed and not ok else None,
            "runs": len(ok),
            "failed_runs": len(failed),
        }
        if ok:
            wall = _median([r["wall_s"] for r in ok])
            sync = _median([r.get("sync_s") for r in ok])
            record.update(
                wall_s=round(wall, 3),
                sync_s=round(sync, 3) if sync is not None else None,
                requests=_median([r["requests"] for r in ok]),
                status_429=max(r["status_429"] for r in ok),
                peak_rss_mb=_median([r["peak_rss_mb"] for r in ok]),
                cpu_s=_median([r["cpu_s"] for r in ok]),
                sandbox_cpu_s=_median([r["sandbox_cpu_s"] for r in ok]),
                sandbox_cpu_share=round(_median([r["sandbox_cpu_s"] / r["wall_s"] for r in ok]), 3),
                wall_s_runs=[r["wall_s"] for r in ok],
                rows_loaded=_median([r.get("rows_loaded") for r in ok]),
            )
            if tool == INCREMENTAL_TOOL:
                for key in (
                    "rows_changed",
                    "requests_cursor",
                    "full_requests",
                    "full_requests_cursor",
                    "full_wall_s",
                    "cursor_request_share",
                ):
                    record[key] = _median([r.get(key) for r in ok])
            else:
                record["rows_per_s"] = round(record["rows"] / wall, 1)
                if sync:
                    record["sync_rows_per_s"] = round(record["rows"] / sync, 1)
                loaded = record["rows_loaded"]
                if loaded is not None and loaded != record["rows"]:
                    record["rows_note"] = f"loaded {loaded:g} of {record['rows']} rows"
            if failed:
                record["run_errors"] = [r["error"] for r in failed]
        records.append(record)
    ceilings = {
        (r["scale"], r["latency_ms"]): r
        for r in records
        if r["tool"] == "ceiling_concurrent" and r["rows_per_s"]
    }
    for record in records:
        ceiling = ceilings.get((record["scale"], record["latency_ms"]))
        if ceiling and record["rows_per_s"]:
            record["ratio_to_ceiling"] = round(record["rows_per_s"] / ceiling["rows_per_s"], 3)
            if record.get("sync_rows_per_s") and ceiling.get("sync_rows_per_s"):
                record["sync_ratio_to_ceiling"] = round(
                    record["sync_rows_per_s"] / ceiling["sync_rows_per_s"], 3
                )
    records.sort(key=lambda r: (r["latency_ms"], r["scale"], TOOL_ORDER.get(r["tool"], 99)))
    return records


# ---------------------------------------------------------------------- targets


def _find(records: list[dict[str, Any]], tool: str, scale: int, latency: float) -> dict | None:
    for record in records:
        if (record["tool"], record["scale"], record["latency_ms"]) == (tool, scale, latency):
            return record
    return None


def _target_scale(records: list[dict[str, Any]]) -> tuple[int | None, str]:
    scales = sorted({r["scale"] for r in records if r["tool"] == "lxp_sync"})
    if not scales:
        return None, ""
    if TARGET_SCALE in scales:
        return TARGET_SCALE, ""
    below = [s for s in scales if s <= TARGET_SCALE] or scales
    return below[-1], f" (at {below[-1]:,} rows: {TARGET_SCALE:,} not measured)"


def _result(name: str, met: bool | None, measured: str, why: str = "") -> dict[str, Any]:
    return {"target": name, "met": met, "measured": measured, "reason": why}


def _speed_target(
    records: list[dict[str, Any]], latency: float, peer: str, factor: float
) -> dict[str, Any]:
    scale, where = _target_scale(records)
    name = f"lxp-sync >= {factor:g}x {peer} rows/s at {TARGET_SCALE // 1000}k rows, {latency:g} ms"
    ours = _find(records, "lxp_sync", scale, latency) if scale else None
    theirs = _find(records, peer, scale, latency) if scale else None
    if ours is None or theirs is None:
        return _result(name, None, "not measured" + where)
    if not ours["rows_per_s"]:
        return _result(name, False, "lxp-sync failed" + where, ours["error"] or "")
    if not theirs["rows_per_s"]:
        first_line = (theirs["error"] or "").strip().splitlines()
        return _result(
            name,
            None,
            f"{peer} could not run{where}",
            f"no number to compare with: {first_line[-1] if first_line else 'error'}",
        )
    ratio = ours["rows_per_s"] / theirs["rows_per_s"]
    text = f"{ratio:.2f}x ({ours['rows_per_s']:,.0f} vs {theirs['rows_per_s']:,.0f} rows/s){where}"
    sync = ""
    if ours.get("sync_rows_per_s") and theirs.get("sync_rows_per_s"):
        sync = (
            f"sync phase only (imports excluded): "
            f"{ours['sync_rows_per_s'] / theirs['sync_rows_per_s']:.2f}x"
        )
    met = ratio >= factor
    return _result(name, met, text, sync if met else f"{ratio:.2f}x < {factor:g}x; {sync}")


def targets(records: list[dict[str, Any]], rate_limited: list[dict[str, Any]]) -> list[dict]:
    """The issue's targets, each met, not met (with the numbers) or not measured."""
    results = [
        _speed_target(records, 50.0, "dlt_rest_api_parquet", 5),
        _speed_target(records, 50.0, "airbyte_lowcode", 5),
    ]
    scale, where = _target_scale(records)
    name = f"lxp-sync >= 70% of ceiling_concurrent at {TARGET_SCALE // 1000}k rows, 50 ms"
    ours = _find(records, "lxp_sync", scale, 50.0) if scale else None
    if ours is None or ours.get("ratio_to_ceiling") is None:
        results.append(_result(name, None, "not measured" + where))
    else:
        share = ours["ratio_to_ceiling"]
        sync = ours.get("sync_ratio_to_ceiling")
        extra = f"sync phase only: {sync:.0%}" if sync else ""
        results.append(
            _result(name, share >= 0.7, f"{share:.0%}{where}", extra if share >= 0.7 else extra)
        )
    results += [
        _speed_target(records, 0.0, "dlt_rest_api_parquet", 2),
        _speed_target(records, 0.0, "airbyte_lowcode", 2),
    ]
    results.append(_memory_target(records))
    results.append(_incremental_target(records))
    results.append(_flat_memory_target(records))
    results.append(_rate_target(rate_limited))
    return results


def _memory_target(records: list[dict[str, Any]]) -> dict[str, Any]:
    name = "lxp-sync peak RSS below every peer's (every scale and latency)"
    worse, compared = [], 0
    for ours in records:
        if ours["tool"] != "lxp_sync" or not ours["peak_rss_mb"]:
            continue
        for peer in PEERS:
            theirs = _find(records, peer, ours["scale"], ours["latency_ms"])
            if theirs and theirs["peak_rss_mb"]:
                compared += 1
                if ours["peak_rss_mb"] >= theirs["peak_rss_mb"]:
                    worse.append(
                        f"{ours['scale']:,} rows {ours['latency_ms']:g} ms: "
                        f"{ours['peak_rss_mb']:.0f} MB vs {peer} {theirs['peak_rss_mb']:.0f} MB"
                    )
    if not compared:
        return _result(name, None, "not measured")
    if worse:
        return _result(
            name, False, f"{len(worse)} of {compared} comparisons lost", "; ".join(worse)
        )
    top = max(r["peak_rss_mb"] for r in records if r["tool"] == "lxp_sync" and r["peak_rss_mb"])
    return _result(
        name, True, f"lower in all {compared} comparisons (lxp-sync at most {top:.0f} MB)"
    )


def _incremental_target(records: list[dict[str, Any]]) -> dict[str, Any]:
    name = "incremental after 1% changes: <= 5% of the full sync's requests (cursor resources)"
    found = [r for r in records if r["tool"] == INCREMENTAL_TOOL and r.get("cursor_request_share")]
    if not found:
        return _result(name, None, "not measured")
    worst = max(found, key=lambda r: r["cursor_request_share"])
    text = (
        f"at most {worst['cursor_request_share']:.1%} ({worst['requests_cursor']:g} of "
        f"{worst['full_requests_cursor']:g} requests at {worst['scale']:,} rows, "
        f"{worst['latency_ms']:g} ms)"
    )
    met = worst["cursor_request_share"] <= 0.05
    return _result(name, met, text, "" if met else "see the notes for why")


def _flat_memory_target(records: list[dict[str, Any]]) -> dict[str, Any]:
    name = "lxp-sync peak RSS at 1M rows <= 1.5x that at 10k rows"
    small = _find(records, "lxp_sync", 10_000, 0.0)
    large = _find(records, "lxp_sync", 1_000_000, 0.0)
    if not small or not large or not small["peak_rss_mb"] or not large["peak_rss_mb"]:
        return _result(name, None, "not measured (needs 10k and --with-1m at 0 ms)")
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    text = f"{ratio:.2f}x ({large['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB)"
    return _result(name, ratio <= 1.5, text)


def _rate_target(rate_limited: list[dict[str, Any]]) -> dict[str, Any]:
    name = "rate limit: zero 429s while using >= 90% of the limit"
    if not rate_limited:
        return _result(name, None, "not measured")
    run = rate_limited[-1]
    if run.get("error"):
        return _result(name, False, "the run failed", run["error"])
    share = run.get("share_of_limit")
    if share is None:
        return _result(name, None, "too few requests to measure a rate")
    text = (
        f"{run['status_429']} x 429, {run['achieved_rps']:.1f} req/s of {run['rate_limit']}/s "
        f"({share:.0%}) at {run['scale']:,} rows"
    )
    met = run["status_429"] == 0 and share >= 0.9
    return _result(name, met, text)


# ---------------------------------------------------------------------- output


def _num(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


COLUMNS = [
    "latency",
    "rows",
    "tool",
    "wall s",
    "rows/s",
    "x ceiling",
    "sync rows/s",
    "requests",
    "429s",
    "peak RSS MB",
    "CPU s",
    "sandbox CPU",
    "runs",
    "note",
]


def _row(record: dict[str, Any]) -> list[str]:
    note = record.get("rows_note") or ""
    if record["error"]:
        note = "error: " + (record["error"].strip().splitlines() or ["?"])[-1][:90]
    elif record.get("failed_runs"):
        note = f"{record['failed_runs']} run(s) failed"
    if record["tool"] == INCREMENTAL_TOOL and record.get("cursor_request_share") is not None:
        note = (
            f"{record['rows_changed']:g} rows changed; cursor requests "
            f"{record['requests_cursor']:g}/{record['full_requests_cursor']:g} of the full sync "
            f"({record['cursor_request_share']:.1%}); full sync {record['full_wall_s']:.1f}s"
        )
    share = record.get("sandbox_cpu_share")
    return [
        f"{record['latency_ms']:g} ms",
        f"{record['scale']:,}",
        record["tool"],
        _num(record["wall_s"], ".2f"),
        _num(record["rows_per_s"]),
        _num(record.get("ratio_to_ceiling"), ".2f"),
        _num(record.get("sync_rows_per_s")),
        _num(record["requests"]),
        _num(record.get("status_429")),
        _num(record["peak_rss_mb"]),
        _num(record.get("cpu_s"), ".1f"),
        "-" if share is None else f"{share:.0%}",
        str(record["runs"]),
        note,
    ]


def table(
    records: list[dict[str, Any]], rate_limited: list[dict[str, Any]], goals: list[dict]
) -> str:
    """The results as a plain-text table, then the targets."""
    rows = [COLUMNS] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(w) if i in (0, 2) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells) + "  " + row[-1])
    for run in rate_limited:
        lines.append(
            f"rate limit {run['rate_limit']}/s at {run['scale']:,} rows: "
            f"{_num(run.get('achieved_rps'), '.1f')} req/s, {run.get('status_429')} x 429, "
            f"{run.get('requests')} requests"
            + (f"; error: {run['error']}" if run.get("error") else "")
        )
    lines.append("")
    for goal in goals:
        lines.append(f"{_mark(goal['met']):<13} {goal['target']}: {goal['measured']}")
    return "\n".join(lines)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def _markdown_table(records: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" if i in (0, 2, 13) else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "/") for c in _row(r)) + " |" for r in records]
    return "\n".join([head, rule, *body])


def chart(records: list[dict[str, Any]], path: Path) -> None:
    """Rows/s by tool and scale, one panel per latency (log scale): generated, not drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    latencies = sorted({r["latency_ms"] for r in records})
    scales = sorted({r["scale"] for r in records})
    tools = [t for t in FULL_SYNC_TOOLS if any(r["tool"] == t for r in records)]
    fig, axes = plt.subplots(
        1, len(latencies), figsize=(6.5 * len(latencies), 4.8), squeeze=False, sharey=True
    )
    width = 0.8 / max(1, len(tools))
    colors = {tool: plt.get_cmap("tab10")(i) for i, tool in enumerate(FULL_SYNC_TOOLS)}
    for ax, latency in zip(axes[0], latencies, strict=True):
        for i, tool in enumerate(tools):
            for j, scale in enumerate(scales):
                record = _find(records, tool, scale, latency)
                x = j - 0.4 + width * (i + 0.5)
                if record and record["rows_per_s"]:
                    ax.bar(x, record["rows_per_s"], width, color=colors[tool])
                elif record:  # a failed tool: marked at the foot of its slot
                    ax.text(
                        x,
                        0.02,
                        "no result",
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        color=colors[tool],
                        transform=ax.get_xaxis_transform(),
                    )
        ax.set_yscale("log")
        ax.set_xticks(range(len(scales)), [f"{s:,} rows" for s in scales])
        ax.set_title(f"sandbox latency {latency:g} ms per request")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel("rows per second (whole process, median)")
    handles = [Patch(color=colors[tool], label=tool) for tool in tools]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("PlusPlus REST full sync into DuckDB: lxp-sync, the ceiling and the peers")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


METHOD = """\
## How to run

```
python -m bench                      # 10k and 100k rows, 0 and 50 ms, 2 runs each (~25 min)
python -m bench --runs 3             # what the results below used (38 min under load)
python -m bench --with-1m            # adds the 1,000,000-row scale
python -m bench --rows 50000 --latency-ms 50 --runs 1 --tools lxp_sync ceiling_concurrent
python -m bench --quick              # smoke run (2,000 rows, 0 ms); writes into bench/results/
```

Options: `--scales N ...`, `--runs K` (medians of K runs), `--rate-limit R` (requests/s for the
rate-limit scenario, 0 skips it), `--out DIR` (results.json; default `bench/results/`),
`--docs DIR` (this page and its chart), `--timeout-s`, `--max-rss-mb` (a run over either is stopped
and recorded as an error). The first run creates `bench/.venvs/airbyte` (`pip install airbyte`,
a few minutes, never timed).

## Method

- **Data**: the bundled sandbox (`python -m lxp_sync_sandbox`, a child process on 127.0.0.1) at each
  scale, PlusPlus REST API, six resources: users, groups, articles, content_items,
  assignments, enrollments (`rows` is the sum of their `meta.total_count`; the sandbox's
  `--rows` is the scale). Pages of 100 rows. The latency (`--latency-ms`) is added by the sandbox
  to every request; it is switched through `/_sandbox/config` between series.
- **One process per measured run**, started fresh in an empty directory (its own
  `DLT_DATA_DIR`, pipelines dir and DuckDB file), so nothing is cached between runs.
  - `wall s`: spawn to exit of that process, as a user waits for it: interpreter start and
    imports included. `rows/s` = rows / wall s. `sync rows/s` uses the time the tool itself
    reports for its sync (after its imports): lxp-sync's "loaded ... in N s" line, dlt's
    `pipeline.run`, PyAirbyte's `source.read`, the ceiling's fetch loop.
  - `peak RSS MB`: `ru_maxrss` from `wait4()` on that one process (its own peak, not the
    benchmark's); `CPU s`: its user + system time.
  - `requests`: the sandbox's request log for the API, cleared before each run; `429s` from the
    same log.
  - `sandbox CPU`: the sandbox process's CPU time (`/proc/<pid>/stat`) during the run, divided
    by the run's wall time (100% = one core busy serving).
  - Rows loaded are counted in the DuckDB file afterwards (not timed); a tool that loaded a
    different number than the API holds is flagged in the note column.
  - Medians of `--runs` runs; tools are interleaved (A, B, C, ..., then again) so that noise on
    the machine is spread over all of them. `x ceiling` = rows/s over the concurrent ceiling's.
- **Tools**
  - `ceiling`: a plain httpx loop over every page of the six resources, decoding each body with
    orjson and dropping it; one request at a time.
  - `ceiling_concurrent`: the same with the connector's concurrency: resources in parallel,
    `concurrency` pages in flight per resource (read from the project's `.dlt/config.toml`,
    as lxp-sync reads it: 4), over one pool of `2 x concurrency` connections (the connector's
    pool size), so at most 8 requests in flight, as in lxp-sync.
  - `lxp_sync`: `lxp-sync run plusplus_rest` (the console script), configured through
    `SOURCES__PLUSPLUS_REST__*`, with the project's `.dlt/config.toml` copied into its working
    directory, into DuckDB.
  - `dlt_rest_api`: dlt's generic `rest_api_source` (`bench/peers.py`): bearer token,
    `page_number` paginator (`base_page` 1, `page_size` 100 as a parameter), `data` selector,
    merge on `public_id`, and an `incremental` `modified_gte` parameter on `modified` for
    content items, with dlt's defaults (`insert_values` load files for DuckDB). dlt's
    `total_path` counts *pages*, and the API reports rows (`meta.total_count`), so the
    paginator is set with `total_path: None` and stops at the first empty page: one request per
    resource more than the ceiling.
  - `dlt_rest_api_parquet`: the same with `loader_file_format="parquet"`.
  - `airbyte_lowcode`: a declarative manifest for the same endpoints (`bench/peers.py`:
    `PageIncrement` paginator, `DpathExtractor` on `data`, `BearerAuthenticator`, a
    `DatetimeBasedCursor` on `modified` sent as `modified_gte` for content items, inline
    JSON schemas inferred from a first page) run by PyAirbyte
    (`ab.get_source(name, source_manifest=..., install_if_missing=False)`,
    `AIRBYTE_OFFLINE_MODE=1`) into its DuckDB cache, in its own venv
    (`bench/.venvs/airbyte`, `bench/airbyte_runner.py`). Full syncs only (its incremental
    state is ignored on this path, an upstream fault). If it cannot run, its exact error is
    recorded instead of a number.
  - `lxp_sync_incremental`: after all full syncs of a scale, at each latency: a full lxp-sync
    run, then 1% of each resource's rows changed through `/_sandbox/mutate` (half updated,
    half inserted), then an incremental run in the same directory. Its `requests` are compared
    with the full run's for the cursor-backed resources (content_items on `modified_gte`,
    assignments and enrollments on `created_gte` with the connector's 14-day refresh
    window); users, groups and articles have no server-side filter and are scanned in full.
- **Rate limit**: once, at the largest scale up to 100k rows and 0 ms, the sandbox allows
  `--rate-limit` requests per second (`X-RateLimit-*` headers, 429 beyond) and lxp-sync
  runs a full sync; the benchmark samples the request log every 0.25 s and reports the rate from
  the first request to the last, and the 429s received.
"""


def write_docs(results: dict[str, Any], md_path: Path, png_path: Path) -> None:
    """Regenerate the benchmark page and its chart from `results`."""
    records, meta = results["records"], results["meta"]
    chart(records, png_path)
    machine, packages = meta["machine"], meta["packages"]
    airbyte = meta.get("airbyte_venv") or {}
    lines = [
        "# Benchmarks",
        "",
        f"<!-- generated by `python -m bench` ({meta['finished_at']}); edit bench/report.py or "
        "bench/notes.md, not this file -->",
        "",
        "How fast lxp-sync copies the PlusPlus REST API into DuckDB, how many requests it sends "
        "and how much memory it takes, next to a fetch-only ceiling and to what a user would "
        "write instead (dlt's `rest_api` source, an Airbyte low-code manifest), on the same "
        "sandbox data, in one run.",
        "",
        METHOD,
        "## Machine and versions",
        "",
        f"- {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"{machine['os']}; Python {machine['python']}",
        "- project venv: " + ", ".join(f"{k} {v}" for k, v in packages.items()),
        "- Airbyte venv: "
        + (", ".join(f"{k} {v}" for k, v in airbyte.items()) if airbyte else "not used"),
        f"- lxp-sync measured: {meta.get('connector', 'not recorded by this run')}",
        f"- run: `{meta['command']}`, {meta['runs']} run(s) per measurement, started "
        f"{meta['started_at']}, {meta['duration_s'] / 60:.1f} minutes; load average "
        f"{meta['load_average_before'][0]} before, {meta['load_average_after'][0]} after "
        "(other work shares this 2-core machine, so timings are noisy: compare ratios within "
        "one run rather than absolute numbers across runs)",
        "",
        "## Results",
        "",
        "![rows per second by tool and scale](benchmarks.png)",
        "",
        _markdown_table(records),
        "",
    ]
    for run in results["rate_limit"]:
        lines.append(
            f"Rate limit: {run['rate_limit']} requests/s at {run['scale']:,} rows, 0 ms: "
            f"lxp-sync sent {run.get('requests')} requests at "
            f"{_num(run.get('achieved_rps'), '.1f')} requests/s "
            f"({_num(run.get('share_of_limit'), '.0%')} of the limit) and received "
            f"{run.get('status_429')} x 429 in {_num(run.get('wall_s'), '.1f')} s."
            + (f" Error: {run['error']}" if run.get("error") else "")
        )
        lines.append("")
    lines += [
        "## Targets",
        "",
        "| target | result | measured | why / detail |",
        "|---|---|---|---|",
    ]
    for goal in results["targets"]:
        lines.append(
            f"| {goal['target']} | {_mark(goal['met'])} | {goal['measured']} | "
            f"{goal['reason'].replace('|', '/')} |"
        )
    errors = [r for r in records if r["error"]]
    if errors:
        lines += ["", "## Errors (exact text)", ""]
        for record in errors:
            lines += [
                f"`{record['tool']}` at {record['scale']:,} rows, {record['latency_ms']:g} ms:",
                "",
                "```",
                record["error"].strip(),
                "```",
                "",
            ]
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip(), ""]
    md_path.write_text("\n".join(lines).rstrip() + "\n")
