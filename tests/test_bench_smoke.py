"""The benchmark keeps working: `python -m bench --quick` at a tiny scale writes sound results.

Not a performance test: the numbers are not checked, only that every source and tool ran (or
said why not), that each record carries the fields `docs/benchmarks.md` is built from, and that
a run with `--out` leaves the tracked `docs/` alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.session import limit_used

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["plusplus_rest", "plusplus_graphql", "pluvo", "pitchly"]
TOOLS = [
    "ceiling_concurrent",
    "lxp_sync",
    "dlt_rest_api_parquet",
    "lxp_sync_incremental",
    "lxp_sync_sweep",
]
FULL_SYNCS = {"ceiling_concurrent", "lxp_sync", "dlt_rest_api_parquet"}
FIELDS = {
    "source",
    "tool",
    "rows",
    "latency_ms",
    "wall_s",
    "rows_per_s",
    "requests",
    "peak_rss_mb",
    "load_avg",
    "error",
}
TRACKED_DOCS = [ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "benchmarks.png"]


def _digests() -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in TRACKED_DOCS}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    docs_before = _digests()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--rows",
            "1000",
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
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    data["_out"] = out
    data["_stdout"] = done.stdout
    data["_docs_changed"] = [p.name for p, d in _digests().items() if docs_before[p] != d]
    return data


def test_every_source_and_tool_has_one_record_with_the_documented_fields(results: dict) -> None:
    records = results["records"]
    expected = {(s, t) for s in SOURCES for t in ("ceiling_concurrent", "lxp_sync")}
    expected |= {(s, t) for s in SOURCES for t in ("lxp_sync_reconcile", "lxp_sync_full_refresh")}
    expected |= {
        ("plusplus_rest", "dlt_rest_api_parquet"),
        ("plusplus_rest", "lxp_sync_incremental"),
    }
    assert sorted((r["source"], r["tool"]) for r in records) == sorted(expected)
    for record in records:
        assert set(record) >= FIELDS, (record["source"], record["tool"])
        assert record["rows"] > 500 and record["latency_ms"] == 0


def test_full_syncs_ran_and_loaded_every_row(results: dict) -> None:
    for record in results["records"]:
        if record["tool"] not in FULL_SYNCS | {"lxp_sync_full_refresh"}:
            continue
        where = (record["source"], record["tool"])
        assert record["error"] is None, (where, record["error"])
        assert record["wall_s"] > 0 and record["peak_rss_mb"] > 10, where
        assert record["requests"] >= 1, where
        assert record["rows_loaded"] == record["rows"], where
        assert record["status_429"] == 0, where
        if record["tool"] in FULL_SYNCS:
            assert record["rows_per_s"] > 0, where


def test_ratios_are_taken_against_each_sources_own_ceiling(results: dict) -> None:
    by_key = {(r["source"], r["tool"]): r for r in results["records"]}
    for source in SOURCES:
        ceiling = by_key[(source, "ceiling_concurrent")]
        assert ceiling["ratio_to_ceiling"] == 1.0
        lxp = by_key[(source, "lxp_sync")]
        expected = lxp["rows_per_s"] / ceiling["rows_per_s"]
        assert lxp["ratio_to_ceiling"] == pytest.approx(expected, abs=0.001), source


def test_the_sweep_is_measured_next_to_a_full_refresh(results: dict) -> None:
    by_key = {(r["source"], r["tool"]): r for r in results["records"]}
    for source in SOURCES:
        sweep = by_key[(source, "lxp_sync_reconcile")]
        refresh = by_key[(source, "lxp_sync_full_refresh")]
        assert sweep["error"] is None and refresh["error"] is None, source
        assert sweep["requests"] >= 1 and refresh["requests"] >= 1, source
        assert "of a full refresh's requests" in results["_stdout"]


def test_incremental_run_reads_fewer_cursor_pages_than_the_full_sync(results: dict) -> None:
    (record,) = [r for r in results["records"] if r["tool"] == "lxp_sync_incremental"]
    assert record["error"] is None, record["error"]
    assert record["rows_changed"] >= 6
    assert 0 < record["requests_cursor"] < record["full_requests_cursor"]
    assert record["requests"] < record["full_requests"]


def test_the_report_is_written_to_the_out_dir_and_docs_are_left_alone(results: dict) -> None:
    names = [t["target"] for t in results["targets"]]
    assert any("rate limit" in n for n in names) and any("1M rows" in n for n in names)
    assert sum("of its ceiling" in n for n in names) == 8  # REST twice, three GraphQL sources
    page = (results["_out"] / "benchmarks.md").read_text()
    assert "### Pluvo" in page and "| lxp_sync |" in page and "## Targets" in page
    png = (results["_out"] / "benchmarks.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert results["_docs_changed"] == []


def test_limit_used_counts_windows_on_the_servers_clock() -> None:
    # a client that sends its 4 requests a window at each window's start uses all of it
    log = [{"at": w + i * 0.01, "status": 200} for w in range(5) for i in range(4)]
    assert limit_used(log, 4, 1.0)["share_of_limit"] == 1.0
    # one that leaves a second idle between windows, half
    gapped = [{"at": 2 * w + i * 0.01, "status": 200} for w in range(5) for i in range(4)]
    assert limit_used(gapped, 4, 1.0)["share_of_limit"] == pytest.approx(20 / 36, abs=0.001)
    # refused requests are not use
    refused = log + [{"at": 4.5, "status": 429}]
    assert limit_used(refused, 4, 1.0)["accepted"] == 20
    assert limit_used([], 4, 1.0)["share_of_limit"] is None


def test_connector_measures_the_copy_it_names(tmp_path: Path) -> None:
    """`--connector DIR` runs DIR's code: its `lxp_sync.sources` and `lxp_sync.pipelines` too,
    not this tree's through the venv's editable install."""
    from bench.tools import connector_path

    copy = tmp_path / "copy"
    for part in ("lxp_sync", "sources", "pipelines"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    marker = "MEASURED_COPY = True\n"
    for module in ("sources/core/arrow.py", "pipelines/cli.py"):
        (copy / module).write_text((copy / module).read_text() + marker)
    code = (
        "import lxp_sync.sources.core.arrow as a, lxp_sync.pipelines.cli as c;"
        "print(a.__file__, c.__file__, getattr(a, 'MEASURED_COPY', 0), c.MEASURED_COPY)"
    )
    # run where the tool runs: in its own work directory, not in this checkout
    env = {**os.environ, "PYTHONPATH": str(connector_path(copy, tmp_path / "work"))}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout.split()
    assert out[2:] == ["True", "True"]
    assert all(str(ROOT / "sources") not in path for path in out[:2])
