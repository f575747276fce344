"""Medians, the printed table, and `benchmarks.md` with its chart."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.method import METHOD
from bench.targets import NAMES, find
from bench.targets import targets as targets  # re-exported for the command
from bench.tools import (
    FULL_REFRESH,
    FULL_SYNC_TOOLS,
    INCREMENTAL_TOOL,
    RECONCILE,
    ROOT,
)

NOTES = ROOT / "bench" / "notes.md"
TOOL_ORDER = {
    tool: i for i, tool in enumerate([*FULL_SYNC_TOOLS, RECONCILE, FULL_REFRESH, INCREMENTAL_TOOL])
}
SOURCE_ORDER = {source: i for i, source in enumerate(NAMES)}


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per source, tool, scale and latency: medians over the runs that succeeded."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["source"], run["tool"], run["scale"], run["latency_ms"])].append(run)
    records = [_aggregate(key, group) for key, group in groups.items()]
    ceilings = {
        (r["source"], r["scale"], r["latency_ms"]): r
        for r in records
        if r["tool"] == "ceiling_concurrent" and r["rows_per_s"]
    }
    for record in records:
        ceiling = ceilings.get((record["source"], record["scale"], record["latency_ms"]))
        if ceiling and record["rows_per_s"] and record["tool"] in FULL_SYNC_TOOLS:
            record["ratio_to_ceiling"] = round(record["rows_per_s"] / ceiling["rows_per_s"], 3)
            if record.get("sync_rows_per_s") and ceiling.get("sync_rows_per_s"):
                record["sync_ratio_to_ceiling"] = round(
                    record["sync_rows_per_s"] / ceiling["sync_rows_per_s"], 3
                )
    records.sort(
        key=lambda r: (
            SOURCE_ORDER.get(r["source"], 99),
            r["latency_ms"],
            r["scale"],
            TOOL_ORDER.get(r["tool"], 99),
        )
    )
    return records


def _aggregate(key: tuple, group: list[dict[str, Any]]) -> dict[str, Any]:
    source, tool, scale, latency = key
    ok = [r for r in group if not r.get("error")]
    failed = [r for r in group if r.get("error")]
    record: dict[str, Any] = {
        "source": source,
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
    if not ok:
        return record
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
        load_avg=_median([r.get("load_avg") for r in ok]),
        wall_s_runs=[r["wall_s"] for r in ok],
        rows_loaded=_median([r.get("rows_loaded") for r in ok]),
    )
    if tool == INCREMENTAL_TOOL:
        for name in (
            "rows_changed",
            "requests_cursor",
            "full_requests",
            "full_requests_cursor",
            "full_wall_s",
            "cursor_request_share",
        ):
            record[name] = _median([r.get(name) for r in ok])
    elif tool in (RECONCILE, FULL_REFRESH):
        record["first_sync_requests"] = _median([r.get("first_sync_requests") for r in ok])
        record["first_sync_s"] = _median([r.get("first_sync_s") for r in ok])
    else:
        record["rows_per_s"] = round(record["rows"] / wall, 1)
        if sync:
            record["sync_rows_per_s"] = round(record["rows"] / sync, 1)
    loaded = record["rows_loaded"]
    if tool != RECONCILE and loaded is not None and loaded != record["rows"]:
        record["rows_note"] = f"loaded {loaded:g} of {record['rows']} rows"
    if failed:
        record["run_errors"] = [r["error"] for r in failed]
    return record


def startup_medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per command: the median wall time and peak RSS of its runs."""
    by_command: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_command[run["command"]].append(run)
    out = []
    for command, group in by_command.items():
        ok = [r for r in group if not r["error"]]
        out.append(
            {
                "command": command,
                "runs": len(ok),
                "wall_s": _median([r["wall_s"] for r in ok]),
                "wall_s_runs": [r["wall_s"] for r in ok],
                "peak_rss_mb": _median([r["peak_rss_mb"] for r in ok]),
                "cpu_s": _median([r["cpu_s"] for r in ok]),
                "error": next((r["error"] for r in group if r["error"]), None),
            }
        )
    return out


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
    "load",
    "runs",
    "note",
]


def _note(record: dict[str, Any], records: list[dict[str, Any]]) -> str:
    if record["error"]:
        return "error: " + (record["error"].strip().splitlines() or ["?"])[-1][:90]
    note = record.get("rows_note") or ""
    if record.get("failed_runs"):
        note = f"{record['failed_runs']} run(s) failed"
    if record["tool"] == INCREMENTAL_TOOL and record.get("cursor_request_share") is not None:
        note = (
            f"{record['rows_changed']:g} rows changed; cursor requests "
            f"{record['requests_cursor']:g}/{record['full_requests_cursor']:g} of the full sync "
            f"({record['cursor_request_share']:.1%}); full sync {record['full_wall_s']:.1f}s"
        )
    if record["tool"] == RECONCILE:
        refresh = find(
            records, record["source"], FULL_REFRESH, record["scale"], record["latency_ms"]
        )
        if refresh and refresh["requests"] and refresh["wall_s"]:
            note = (
                f"the sweep: {record['requests'] / refresh['requests']:.0%} of a full refresh's "
                f"requests, {record['wall_s'] / refresh['wall_s']:.0%} of its time"
            )
    return note


def _row(record: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
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
        _num(record.get("load_avg"), ".1f"),
        str(record["runs"]),
        _note(record, records),
    ]


def _by_source(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["source"]].append(record)
    return grouped


def _rate_line(run: dict[str, Any]) -> str:
    if run.get("error"):
        return f"{NAMES[run['source']]}: limit {run['rate_limit']}/s: error: {run['error']}"
    return (
        f"{NAMES[run['source']]}: limit {run['rate_limit']} requests/s, {run['scale']:,} rows, "
        f"0 ms: {run.get('accepted')} requests accepted in {run.get('windows')} windows "
        f"({_num(run.get('share_of_limit'), '.1%')} of the limit; "
        f"{_num(run.get('achieved_rps'), '.1f')} requests/s over {run.get('rate_window_s')} s), "
        f"{run.get('status_429')} x 429, load {_num(run.get('load_avg'), '.1f')}"
    )


def _startup_line(start: dict[str, Any]) -> str:
    if start["error"]:
        return f"`{start['command']}`: error: {start['error']}"
    return (
        f"`{start['command']}`: {start['wall_s']:.2f} s (median of {start['runs']}: "
        f"{', '.join(f'{w:.2f}' for w in start['wall_s_runs'])}), peak RSS "
        f"{start['peak_rss_mb']:.0f} MB, CPU {start['cpu_s']:.2f} s"
    )


def table(results: dict[str, Any]) -> str:
    """The results as plain-text tables (one per source), then the targets."""
    records = results["records"]
    lines = []
    for source, group in _by_source(records).items():
        lines.append(f"== {NAMES.get(source, source)}")
        rows = [COLUMNS] + [_row(r, records) for r in group]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
        for row in rows:
            cells = [
                cell.ljust(w) if i in (0, 2) else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=False))
            ]
            lines.append("  ".join(cells) + "  " + row[-1])
        lines.append("")
    lines += [_rate_line(run) for run in results["rate_limit"]]
    lines += [_startup_line(start) for start in results.get("startup", [])]
    lines.append("")
    for goal in results["targets"]:
        lines.append(f"{_mark(goal['met']):<13} {goal['target']}: {goal['measured']}")
    return "\n".join(lines)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def _markdown_table(group: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    last = len(COLUMNS) - 1
    rule = "|" + "|".join("---" if i in (0, 2, last) else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "/") for c in _row(r, records)) + " |" for r in group]
    return "\n".join([head, rule, *body])


def chart(records: list[dict[str, Any]], path: Path) -> None:
    """Rows/s by tool and scale; a row of panels per source, one panel per latency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    full = [r for r in records if r["tool"] in FULL_SYNC_TOOLS]
    sources = list(_by_source(full))
    latencies = sorted({r["latency_ms"] for r in full})
    colors = {tool: plt.get_cmap("tab10")(i) for i, tool in enumerate(FULL_SYNC_TOOLS)}
    fig, axes = plt.subplots(
        max(1, len(sources)),
        max(1, len(latencies)),
        figsize=(6.5 * max(1, len(latencies)), 3.6 * max(1, len(sources))),
        squeeze=False,
    )
    for row, source in enumerate(sources):
        mine = [r for r in full if r["source"] == source]
        tools = [t for t in FULL_SYNC_TOOLS if any(r["tool"] == t for r in mine)]
        scales = sorted({r["scale"] for r in mine})
        width = 0.8 / max(1, len(tools))
        for ax, latency in zip(axes[row], latencies, strict=False):
            for i, tool in enumerate(tools):
                for j, scale in enumerate(scales):
                    record = find(mine, source, tool, scale, latency)
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
            ax.set_title(f"{NAMES.get(source, source)}, {latency:g} ms per request", fontsize=10)
            ax.grid(axis="y", which="both", alpha=0.3)
        axes[row][0].set_ylabel("rows/s (whole process)")
    used = [t for t in FULL_SYNC_TOOLS if any(r["tool"] == t for r in full)]
    handles = [Patch(color=colors[tool], label=tool) for tool in used]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Full sync into DuckDB: lxp-sync, each source's fetch ceiling, the REST peers")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_docs(results: dict[str, Any], md_path: Path, png_path: Path) -> None:
    """Write the benchmark page and its chart from `results`."""
    records, meta = results["records"], results["meta"]
    chart(records, png_path)
    machine, packages = meta["machine"], meta["packages"]
    airbyte = meta.get("airbyte_venv") or {}
    loads = meta.get("load_average") or {}
    lines = [
        "# Benchmarks",
        "",
        f"<!-- generated by `python -m bench` ({meta['finished_at']}); edit bench/report.py, "
        "bench/method.py or bench/notes.md, not this file -->",
        "",
        "How fast lxp-sync copies each source (PlusPlus REST, PlusPlus GraphQL, Pluvo, Pitchly) "
        "into DuckDB, how many requests it sends and how much memory it takes, next to each "
        "source's fetch-only ceiling and, for PlusPlus REST, to what a user would write instead "
        "(dlt's `rest_api` source, an Airbyte low-code manifest), on the same sandbox data, in "
        "one run.",
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
        f"{meta['load_average_before'][0]} before, {meta['load_average_after'][0]} after"
        + (
            " (at the start of each series: "
            + ", ".join(f"{where} {load}" for where, load in loads.items())
            + ")"
            if loads
            else ""
        )
        + ". Other work shares this 2-core machine, so timings are noisy: compare ratios "
        "within one run (the `load` column is the 1-minute load average as each measured "
        "run started) rather than absolute numbers across runs.",
        "",
        "## Results",
        "",
        "![rows per second by source, tool and scale](benchmarks.png)",
        "",
    ]
    for source, group in _by_source(records).items():
        lines += [f"### {NAMES.get(source, source)}", "", _markdown_table(group, records), ""]
    if results["rate_limit"]:
        lines += ["### Rate limit", ""]
        lines += [f"- {_rate_line(run)}" for run in results["rate_limit"]]
        lines.append("")
    if results.get("startup"):
        lines += ["### Start-up", ""]
        lines += [f"- {_startup_line(start)}" for start in results["startup"]]
        lines.append("")
    lines += [
        "## Targets",
        "",
        "| target | result | measured | detail |",
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
                f"`{record['tool']}` ({record['source']}) at {record['scale']:,} rows, "
                f"{record['latency_ms']:g} ms:",
                "",
                "```",
                record["error"].strip(),
                "```",
                "",
            ]
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip(), ""]
    md_path.write_text("\n".join(lines).rstrip() + "\n")
