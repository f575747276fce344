"""The benchmark keeps working: `python -m bench --quick` at a tiny scale writes sound results.

Not a performance test: the numbers are not checked, only that every tool ran (or said why not)
and that each record carries the fields `docs/benchmarks.md` is built from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import _achieved_rate

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["ceiling_concurrent", "lxp_sync", "dlt_rest_api_parquet", "lxp_sync_incremental"]
FIELDS = {"tool", "rows", "latency_ms", "wall_s", "rows_per_s", "requests", "peak_rss_mb", "error"}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--rows",
            "2000",
            "--runs",
            "1",
            "--rate-limit",
            "0",
            "--tools",
            *TOOLS,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    data["_out"] = out
    data["_stdout"] = done.stdout
    return data


def test_every_tool_has_one_record_with_the_documented_fields(results: dict) -> None:
    records = results["records"]
    assert sorted(r["tool"] for r in records) == sorted(TOOLS)
    for record in records:
        assert set(record) >= FIELDS, record["tool"]
        assert record["rows"] > 1500 and record["latency_ms"] == 0


def test_full_syncs_ran_and_loaded_every_row(results: dict) -> None:
    for record in results["records"]:
        if record["tool"] == "lxp_sync_incremental":
            continue
        assert record["error"] is None, record["error"]
        assert record["wall_s"] > 0 and record["rows_per_s"] > 0
        assert record["peak_rss_mb"] > 10
        # at least one page per resource; the ceiling reads exactly ceil(rows / 100) per resource
        assert record["requests"] >= 6
        assert record["rows_loaded"] == record["rows"], record["tool"]
        assert record["status_429"] == 0


def test_ratios_are_taken_against_the_concurrent_ceiling(results: dict) -> None:
    by_tool = {r["tool"]: r for r in results["records"]}
    assert by_tool["ceiling_concurrent"]["ratio_to_ceiling"] == 1.0
    lxp = by_tool["lxp_sync"]
    expected = lxp["rows_per_s"] / by_tool["ceiling_concurrent"]["rows_per_s"]
    assert lxp["ratio_to_ceiling"] == pytest.approx(expected, abs=0.001)


def test_incremental_run_reads_fewer_cursor_pages_than_the_full_sync(results: dict) -> None:
    (record,) = [r for r in results["records"] if r["tool"] == "lxp_sync_incremental"]
    assert record["error"] is None, record["error"]
    assert record["rows_changed"] >= 6
    assert 0 < record["requests_cursor"] < record["full_requests_cursor"]
    assert record["requests"] < record["full_requests"]


def test_the_report_names_every_target_and_is_written_with_its_chart(results: dict) -> None:
    names = [t["target"] for t in results["targets"]]
    assert len(names) == 9 and any("429" in n for n in names)
    page = (results["_out"] / "benchmarks.md").read_text()
    assert "| lxp_sync |" in page and "## Targets" in page
    png = (results["_out"] / "benchmarks.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "lxp_sync_incremental" in results["_stdout"]


def test_achieved_rate_runs_from_the_first_request_seen_to_the_last() -> None:
    samples = [(0.25, 0), (0.5, 4), (0.75, 9), (1.0, 14), (5.5, 94), (5.75, 100)]
    assert _achieved_rate(samples, 100) == {"achieved_rps": 18.29, "rate_window_s": 5.25}
    assert _achieved_rate([(0.25, 0)], 0)["achieved_rps"] is None
