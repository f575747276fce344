"""`lxp-sync report SOURCE`: the last runs as one self-contained HTML page with charts.

Charts are inline SVG drawn here (no script, no CDN, no font or image to fetch): the page opens
offline, in a mail attachment or a CI artifact. It shows the last run's table (the numbers the
run printed), rows changed per run and table, time per run, requests and 429s per run, and every
run with its status and, for a failed one, its one-line reason.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence
from pathlib import Path

from dlt.common.pipeline import get_dlt_pipelines_dir

from lxp_sync.pipelines.report import COLUMNS, RunReport, changes, cursor_text, headline
from lxp_sync.pipelines.run_history import history
from lxp_sync.pipelines.runner import pipeline_name

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#e15759",
)
FAILED = "#d62728"
OK = "#4e79a7"


def write_report(args: argparse.Namespace) -> int:
    """The command: render the last `--runs` runs into `--out`."""
    from lxp_sync.pipelines.status import warehouse_reader

    folder = Path(args.pipelines_dir or get_dlt_pipelines_dir())
    reader = warehouse_reader(args.source, args.destination, args.dataset)
    reports = history(folder, pipeline_name(args.source, args.destination), reader, args.source)
    reports = reports[-max(1, args.runs) :]
    if not reports:
        print(
            f"lxp-sync: error: {args.source}: no runs kept for {args.destination}; run "
            f"`lxp-sync run {args.source}` first",
            file=sys.stderr,
        )
        return 1
    out = Path(args.out or f"lxp-sync-report-{args.source}.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(reports), encoding="utf-8")
    print(f"{args.source}: {len(reports)} runs into {args.destination} -> {out.resolve()}")
    return 0


def render_html(reports: Sequence[RunReport]) -> str:
    """The page for `reports` (oldest first)."""
    last = reports[-1]
    labels = [r.started_at[5:16].replace("T", " ") for r in reports]
    tables = _root_tables(reports)
    colors = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(tables)}
    rows_chart = bar_chart(
        "Rows changed per run (new + updated + deleted), by table",
        labels,
        [(t, colors[t], [_changed(r, t) for r in reports]) for t in tables],
        failed=[not r.ok for r in reports],
        chart_id="rows",
    )
    time_chart = bar_chart(
        "Time per run (seconds)",
        labels,
        [("seconds", OK, [r.seconds for r in reports])],
        failed=[not r.ok for r in reports],
        chart_id="duration",
    )
    requests_chart = bar_chart(
        "Requests per run, and answers with HTTP 429",
        labels,
        [
            ("requests", OK, [r.totals.requests + r.other_requests for r in reports]),
            ("429s", FAILED, [r.totals.rate_limited for r in reports]),
        ],
        failed=[not r.ok for r in reports],
        chart_id="requests",
        stacked=False,
    )
    title = f"lxp-sync: {last.source} into {last.destination} dataset {last.dataset}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="where">{_e(last.warehouse)} &middot; last {len(reports)} runs</p>',
        '<section id="last-run">',
        f"<h2>Last run, {_e(last.started_at)}: "
        f'<span class="{"ok" if last.ok else "failed"}">{"ok" if last.ok else "failed"}</span>'
        "</h2>",
        f'<p class="headline">{_e(headline(last))}</p>',
        _last_table(last),
        "</section>",
        '<section class="charts">',
        rows_chart,
        time_chart,
        requests_chart,
        "</section>",
        _runs_table(reports),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _root_tables(reports: Sequence[RunReport]) -> list[str]:
    names: dict[str, None] = {}
    for report in reports:
        for resource in report.resources:
            for table in resource.tables:
                if not table.nested:
                    names.setdefault(table.name)
    return list(names)


def _changed(report: RunReport, table: str) -> float:
    for resource in report.resources:
        for entry in resource.tables:
            if entry.name == table and not entry.nested:
                if entry.updated is None:
                    return float(entry.written)
                return float((entry.inserted or 0) + entry.updated + (entry.deleted or 0))
    return 0.0


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    *,
    failed: Sequence[bool],
    chart_id: str,
    stacked: bool = True,
    width: int = 600,
    height: int = 240,
) -> str:
    """An inline SVG bar chart, one bar (or stack) per run; a failed run's label is red."""
    left, right, top, bottom = 56, 12, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)
    if stacked:
        peak = max([sum(s[2][i] for s in series) for i in range(len(labels))] + [0])
    else:
        peak = max([max(s[2]) for s in series if s[2]] + [0])
    peak = _nice(peak)
    slot = plot_w / count
    bar = max(2.0, min(48.0, slot * 0.7))
    out = [
        f'<figure class="chart" id="chart-{chart_id}"><figcaption>{_e(title)}</figcaption>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_short(peak * fraction)}</text>"
        )
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar) / 2
        base = top + plot_h
        shown = [values[i] if i < len(values) else 0 for _, _, values in series]
        value_text = _short(sum(shown) if stacked else shown[0])
        height_of = plot_h * ((sum(shown) if stacked else max(shown)) / peak) if peak else 0
        if count <= 24:  # the value over its bar: small ones stay readable beside large ones
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h - height_of - 4:.1f}" '
                f'class="value" text-anchor="middle">{value_text}</text>'
            )
        for name, color, values in series:
            value = values[i] if i < len(values) else 0
            h = plot_h * (value / peak) if peak else 0
            y = base - h
            w = bar if stacked else bar / len(series)
            bx = x if stacked else x + w * series.index((name, color, values))
            if h > 0:
                out.append(
                    f'<rect x="{bx:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>{_e(label)} {_e(name)}: {_short(value)}</title></rect>'
                )
            if stacked:
                base = y
        if count <= 12 or i % max(1, count // 12) == 0:
            cls = "label failed" if failed[i] else "label"
            cx = left + slot * i + slot / 2
            out.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 16}" class="{cls}" '
                f'text-anchor="middle">{_e(label[6:] if count > 6 else label)}</text>'
            )
        if failed[i]:
            cx = left + slot * i + slot / 2
            out.append(
                f'<text x="{cx:.1f}" y="{top + plot_h - 4}" class="cross" text-anchor="middle">'
                "&#x2715;<title>failed</title></text>"
            )
    legend_x = left
    for name, color, _ in series[:10]:
        out.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="{height - 5}" class="legend">{_e(name)}</text>'
        )
        legend_x += 22 + 7 * len(name)
    out.append("</svg></figure>")
    return "".join(out)


def _nice(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.3g}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def _last_table(report: RunReport) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in ("resource / table", *COLUMNS, "cursor"))
    rows = []
    for resource in report.resources:
        for table in resource.tables:
            cells = [table.written, table.inserted, table.updated, table.unchanged, table.deleted]
            numbers = "".join(f"<td>{_cell(v)}</td>" for v in cells)
            if table.nested:
                rows.append(
                    f'<tr class="nested"><td>{_e(table.name)}</td>{numbers}' + "<td></td>" * 6
                )
                continue
            activity = [resource.pages, resource.requests, resource.retries, resource.rate_limited]
            cursor = _e("; ".join(cursor_text(c) for c in resource.cursors))
            rows.append(
                f"<tr><td>{_e(resource.name)}</td>{numbers}"
                + "".join(f"<td>{_cell(v)}</td>" for v in activity)
                + f"<td>{resource.seconds:.1f}s</td><td class='cursor'>{cursor}</td></tr>"
            )
    return f'<table class="report"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _runs_table(reports: Sequence[RunReport]) -> str:
    rows = []
    for report in reversed(reports):
        status = "ok" if report.ok else "failed"
        what = changes(report) if report.ok else report.error or ""
        rows.append(
            f'<tr class="run-{status}"><td>{_e(report.started_at)}</td><td class="{status}">{status}</td>'
            f"<td>{report.seconds:.1f}s</td><td>{_cell(report.totals.written)}</td>"
            f"<td>{_cell(report.totals.requests + report.other_requests)}</td>"
            f"<td>{_cell(report.totals.rate_limited)}</td><td>{_e(what)}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("started (UTC)", "status", "time", "written", "requests", "429s", "")
    )
    return (
        '<section id="runs"><h2>Runs</h2><table class="runs">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _cell(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


STYLE = """
body { font: 14px/1.4 "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
.where { color: #666; margin: 0 0 12px; } .headline { margin: 4px 0 8px; }
.ok { color: #2a7d2a; } .failed { color: #d62728; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e3e3; text-align: right; }
th:first-child, td:first-child, td.cursor, th:last-child, table.runs td:last-child {
  text-align: left; }
tr.nested td:first-child { padding-left: 24px; color: #555; }
tr.run-failed td:last-child { color: #d62728; } td { white-space: nowrap; }
table.runs td:last-child, td.cursor { white-space: normal; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, 600px); gap: 16px 32px;
  margin-top: 16px; }
figure.chart { margin: 0; } figcaption { font-weight: bold; margin-bottom: 4px; }
svg .plot { fill: #fafafa; stroke: #ddd; } svg .grid { stroke: #e6e6e6; }
svg text { font: 11px "DejaVu Sans", Arial, sans-serif; fill: #444; }
svg .failed { fill: #d62728; } svg .value { font-size: 10px; fill: #333; } svg .cross { fill: #d62728; font-size: 14px; }
"""
