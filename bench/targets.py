"""The issue's targets, judged on the records of one run: met, not met (with numbers), not measured.

Every comparison is between records of the same run, and says the load average the machine had
when the compared runs started (other work shares it).
"""

from __future__ import annotations

from typing import Any

from bench.tools import INCREMENTAL_TOOL

TARGET_SCALE = 100_000
SMALL_SCALE = 10_000
LARGE_SCALE = 1_000_000
GRAPHQL = {"plusplus_graphql": "PlusPlus GraphQL", "pluvo": "Pluvo", "pitchly": "Pitchly"}
NAMES = {"plusplus_rest": "PlusPlus REST", **GRAPHQL}


def find(
    records: list[dict[str, Any]], source: str, tool: str, scale: int, latency: float
) -> dict[str, Any] | None:
    for record in records:
        key = (record["source"], record["tool"], record["scale"], record["latency_ms"])
        if key == (source, tool, scale, latency):
            return record
    return None


def _result(name: str, met: bool | None, measured: str, why: str = "") -> dict[str, Any]:
    return {"target": name, "met": met, "measured": measured, "reason": why}


def _load(*records: dict[str, Any] | None) -> str:
    loads = [r["load_avg"] for r in records if r and r.get("load_avg") is not None]
    if not loads:
        return ""
    low, high = f"{min(loads):.1f}", f"{max(loads):.1f}"
    return f"load {low}" if low == high else f"load {low}-{high}"


def _scale(records: list[dict[str, Any]], source: str) -> tuple[int | None, str]:
    """The target scale, or the largest measured below it (said so)."""
    scales = sorted(
        {r["scale"] for r in records if r["source"] == source and r["tool"] == "lxp_sync"}
    )
    if not scales:
        return None, ""
    if TARGET_SCALE in scales:
        return TARGET_SCALE, ""
    below = [s for s in scales if s <= TARGET_SCALE] or scales
    return below[-1], f" (at {below[-1]:,} rows: {TARGET_SCALE:,} not measured)"


def _versus_peer(
    records: list[dict[str, Any]], latency: float, peer: str, factor: float
) -> dict[str, Any]:
    name = (
        f"PlusPlus REST: lxp-sync >= {factor:g}x {peer} rows/s at "
        f"{TARGET_SCALE // 1000}k rows, {latency:g} ms"
    )
    scale, where = _scale(records, "plusplus_rest")
    ours = find(records, "plusplus_rest", "lxp_sync", scale, latency) if scale else None
    theirs = find(records, "plusplus_rest", peer, scale, latency) if scale else None
    if ours is None or theirs is None:
        return _result(name, None, "not measured" + where)
    if not ours["rows_per_s"]:
        return _result(name, False, "lxp-sync failed" + where, ours["error"] or "")
    if not theirs["rows_per_s"]:
        lines = (theirs["error"] or "").strip().splitlines()
        return _result(
            name,
            None,
            f"{peer} could not run{where}",
            f"no number to compare with: {lines[-1] if lines else 'error'}",
        )
    ratio = ours["rows_per_s"] / theirs["rows_per_s"]
    text = (
        f"{ratio:.2f}x ({ours['rows_per_s']:,.0f} vs {theirs['rows_per_s']:,.0f} rows/s; "
        f"{_load(ours, theirs)}){where}"
    )
    sync = ""
    if ours.get("sync_rows_per_s") and theirs.get("sync_rows_per_s"):
        sync = (
            f"sync phase only (imports excluded): "
            f"{ours['sync_rows_per_s'] / theirs['sync_rows_per_s']:.2f}x"
        )
    return _result(name, ratio >= factor, text, sync)


def _versus_ceiling(
    records: list[dict[str, Any]], source: str, latency: float, share: float
) -> dict[str, Any]:
    name = (
        f"{NAMES[source]}: lxp-sync >= {share:.0%} of its ceiling at "
        f"{TARGET_SCALE // 1000}k rows, {latency:g} ms"
    )
    scale, where = _scale(records, source)
    ours = find(records, source, "lxp_sync", scale, latency) if scale else None
    ceiling = find(records, source, "ceiling_concurrent", scale, latency) if scale else None
    if ours is None or ours.get("ratio_to_ceiling") is None:
        failed = ours and ours["error"]
        return _result(name, False if failed else None, "not measured" + where, failed or "")
    got = ours["ratio_to_ceiling"]
    sync = ours.get("sync_ratio_to_ceiling")
    text = (
        f"{got:.0%} ({ours['rows_per_s']:,.0f} vs {ceiling['rows_per_s']:,.0f} rows/s; "  # type: ignore[index]
        f"{_load(ours, ceiling)}){where}"
    )
    return _result(name, got >= share, text, f"sync phase only: {sync:.0%}" if sync else "")


def _memory_versus_peer(records: list[dict[str, Any]], factor: float) -> dict[str, Any]:
    peer = "dlt_rest_api_parquet"
    name = f"PlusPlus REST: peak RSS at {TARGET_SCALE // 1000}k rows <= {factor:g}x {peer}'s"
    scale, where = _scale(records, "plusplus_rest")
    compared = []
    for latency in sorted({r["latency_ms"] for r in records}):
        ours = find(records, "plusplus_rest", "lxp_sync", scale, latency) if scale else None
        theirs = find(records, "plusplus_rest", peer, scale, latency) if scale else None
        if ours and theirs and ours["peak_rss_mb"] and theirs["peak_rss_mb"]:
            compared.append((latency, ours, theirs))
    if not compared:
        return _result(name, None, "not measured" + where)
    worst = max(compared, key=lambda c: c[1]["peak_rss_mb"] / c[2]["peak_rss_mb"])
    latency, ours, theirs = worst
    ratio = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
    text = (
        f"at most {ratio:.2f}x ({ours['peak_rss_mb']:.0f} vs {theirs['peak_rss_mb']:.0f} MB at "
        f"{latency:g} ms){where}"
    )
    return _result(name, ratio <= factor, text)


def _flat_memory(records: list[dict[str, Any]], source: str, factor: float) -> dict[str, Any]:
    name = f"{NAMES[source]}: peak RSS at 1M rows <= {factor:g}x that at 10k rows (0 ms)"
    small = find(records, source, "lxp_sync", SMALL_SCALE, 0.0)
    large = find(records, source, "lxp_sync", LARGE_SCALE, 0.0)
    if not small or not large or not small["peak_rss_mb"] or not large["peak_rss_mb"]:
        failed = large and large["error"]
        return _result(
            name,
            False if failed else None,
            "not measured (needs 10k and --with-1m)",
            failed or "",
        )
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    text = f"{ratio:.2f}x ({large['peak_rss_mb']:.0f} MB vs {small['peak_rss_mb']:.0f} MB)"
    return _result(name, ratio <= factor, text)


def _rate(rate_limited: list[dict[str, Any]], source: str, share: float) -> dict[str, Any]:
    name = f"{NAMES[source]}: rate limit: >= {share:.0%} of the limit used, zero 429s"
    found = [r for r in rate_limited if r["source"] == source]
    if not found:
        return _result(name, None, "not measured")
    run = found[-1]
    if run.get("error"):
        return _result(name, False, "the run failed", run["error"])
    used = run.get("share_of_limit")
    if used is None:
        return _result(name, None, "too few requests to measure a rate")
    text = (
        f"{used:.1%} used, {run['status_429']} x 429 ({run['accepted']} requests in "
        f"{run['windows']} windows of {run['rate_limit']}/s at {run['scale']:,} rows; "
        f"{_load(run)})"
    )
    return _result(name, run["status_429"] == 0 and used >= share, text)


def _incremental(records: list[dict[str, Any]]) -> dict[str, Any]:
    name = (
        "PlusPlus REST: incremental after 1% changes: <= 5% of the full sync's requests "
        "(cursor resources)"
    )
    found = [r for r in records if r["tool"] == INCREMENTAL_TOOL and r.get("cursor_request_share")]
    if not found:
        return _result(name, None, "not measured")
    worst = max(found, key=lambda r: r["cursor_request_share"])
    text = (
        f"at most {worst['cursor_request_share']:.1%} ({worst['requests_cursor']:g} of "
        f"{worst['full_requests_cursor']:g} requests at {worst['scale']:,} rows, "
        f"{worst['latency_ms']:g} ms)"
    )
    return _result(name, worst["cursor_request_share"] <= 0.05, text)


def targets(records: list[dict[str, Any]], rate_limited: list[dict[str, Any]]) -> list[dict]:
    """The issue's targets, in its order."""
    results = [
        _versus_ceiling(records, "plusplus_rest", 50.0, 0.85),
        _versus_peer(records, 50.0, "dlt_rest_api_parquet", 6),
        _versus_peer(records, 50.0, "airbyte_lowcode", 5),
        _versus_peer(records, 0.0, "dlt_rest_api_parquet", 2.5),
        _versus_ceiling(records, "plusplus_rest", 0.0, 0.40),
    ]
    for source in GRAPHQL:
        results.append(_versus_ceiling(records, source, 50.0, 0.70))
        results.append(_versus_ceiling(records, source, 0.0, 0.35))
    results.append(_memory_versus_peer(records, 0.75))
    sources = list(dict.fromkeys(r["source"] for r in records)) or list(NAMES)
    for source in sources:
        results.append(_flat_memory(records, source, 1.3))
    for source in sources:
        results.append(_rate(rate_limited, source, 0.95))
    results.append(_incremental(records))
    return results
