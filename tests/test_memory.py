"""Memory that stays flat in the number of rows: DuckDB's limit, its threads and load jobs,
Arrow's allocator, freed memory returned after each step.

Real runs into real DuckDB files against the sandbox; the limit is read back from the
connection dlt opens for the pipeline.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pytest
from dlt.common.data_writers.buffered import BufferedDataWriter
from dlt.common.schema import Schema
from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
from dlt.pipeline.exceptions import PipelineStepFailed

from lxp_sync.pipelines import duckdb_hold, memory, reconcile
from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.memory import (
    BOUNDED_DUCKDB_THREADS,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    GC_THRESHOLDS,
    WRITER_BUFFER_ROWS,
    bound_process_memory,
    duckdb_destination,
    fitted_limit_bytes,
)
from lxp_sync.sources.core.completeness import KeySet
from lxp_sync.sources.core.http import ApiClient
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import loaded_rows, lxp_sync, sync
from tests.support.runs import source_env

MIB = 2**20


def _memory_limit_bytes(pipeline) -> float:
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'")
    number, unit = rows[0][0].split()
    return float(number) * {"KiB": 2**10, "MiB": MIB, "GiB": 2**30}[unit]


def _bytes(text: str) -> int:
    return int(text.removesuffix("MB")) * 10**6


def test_a_run_loads_duckdb_within_the_default_memory_limit(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])

    limit = _memory_limit_bytes(pipeline)
    # DuckDB reports the limit in MiB, rounded; without lxp-sync's limit it is 80% of the RAM
    assert limit == pytest.approx(_bytes(DEFAULT_DUCKDB_MEMORY_LIMIT), rel=0.01)
    with pipeline.sql_client() as client:
        assert (
            client.execute_sql("SELECT current_setting('threads')")[0][0] == BOUNDED_DUCKDB_THREADS
        )


class _JobsInFlight:
    """The most DuckDB load jobs that ran at once (each held long enough to overlap)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()
        run = DuckDbCopyJob.run

        def counted(job: DuckDbCopyJob) -> None:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.3)
                run(job)
            finally:
                with self._lock:
                    self.now -= 1

        monkeypatch.setattr(DuckDbCopyJob, "run", counted)


def test_within_the_limit_duckdb_loads_one_job_at_a_time_and_without_it_in_parallel(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = ["users", "groups", "articles", "content_items"]
    jobs = _JobsInFlight(monkeypatch)
    sync("plusplus_rest", sandbox, workdir / "bounded", resources=resources)
    assert jobs.most == 1

    # no limit: dlt's parallel load jobs and DuckDB's own threads, as before
    monkeypatch.setenv("LXP_SYNC__DUCKDB_MEMORY_LIMIT", "")
    jobs = _JobsInFlight(monkeypatch)
    pipeline = sync("plusplus_rest", sandbox, workdir / "free", resources=resources)
    assert jobs.most > 1
    assert _memory_limit_bytes(pipeline) > 4 * _bytes(DEFAULT_DUCKDB_MEMORY_LIMIT)
    with pipeline.sql_client() as client:
        threads = client.execute_sql("SELECT current_setting('threads')")[0][0]
    assert threads == len(os.sched_getaffinity(0))  # DuckDB's default: one per core


def test_the_limit_is_a_setting_and_the_users_own_duckdb_setting_wins(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LXP_SYNC__DUCKDB_MEMORY_LIMIT", "100MB")
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])
    assert _memory_limit_bytes(pipeline) == pytest.approx(100 * 10**6, rel=0.01)

    # a DuckDB setting of the user's own other than the limit stays, with lxp-sync's limit
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"threads": 2}')
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])
    assert _memory_limit_bytes(pipeline) == pytest.approx(100 * 10**6, rel=0.01)
    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT current_setting('threads')")[0][0] == 2

    # dlt's own setting for DuckDB: its memory_limit wins, and its other settings stay
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
        '{"memory_limit": "300MB", "threads": 1}',
    )
    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["groups"])
    assert _memory_limit_bytes(pipeline) == pytest.approx(300 * 10**6, rel=0.01)
    with pipeline.sql_client() as client:
        assert client.execute_sql("SELECT current_setting('threads')")[0][0] == 1


def test_the_load_holds_the_duckdb_file_open_across_its_jobs_and_lets_it_go_after_the_run(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One database for all the load's jobs: none closes it (a checkpoint) for the next to open
    it again (`duckdb_hold`); after the run, another process can write the file."""
    held_at_jobs: list[list[str]] = []
    run = DuckDbCopyJob.run

    def noted(job: DuckDbCopyJob) -> None:
        held_at_jobs.append([str(Path(p).resolve()) for p in duckdb_hold._held])
        run(job)

    monkeypatch.setattr(DuckDbCopyJob, "run", noted)
    held_after_load: list[bool] = []
    sweep = reconcile.sweep_after_run

    def sweep_noted(*args: Any, **kwargs: Any) -> Any:
        held_after_load.append(bool(duckdb_hold._held))
        return sweep(*args, **kwargs)

    monkeypatch.setattr(reconcile, "sweep_after_run", sweep_noted)
    sync("plusplus_rest", sandbox, workdir, resources=["users", "groups", "articles"])

    path = workdir / "warehouse.duckdb"
    assert len(held_at_jobs) >= 3
    assert all(held == [str(path.resolve())] for held in held_at_jobs), held_at_jobs
    assert held_after_load == [False]  # the load step ended: the file goes with it
    _nothing_holds(path)

    # a load that fails lets the file go too
    monkeypatch.setenv("LXP_SYNC__DUCKDB_MEMORY_LIMIT", "1MB")
    with pytest.raises(PipelineStepFailed, match="Out of Memory"):
        sync("plusplus_rest", sandbox, workdir / "failed", resources=["users"])
    assert held_at_jobs[-1] == [str((workdir / "failed" / "warehouse.duckdb").resolve())]
    _nothing_holds(workdir / "failed" / "warehouse.duckdb")


def _nothing_holds(path: Path) -> None:
    """No connection of this process holds `path`, and another process can write it."""
    assert not duckdb_hold._held
    subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"],
        check=True,
        timeout=60,
    )


def test_a_limit_too_small_for_the_load_fails_with_one_line_that_names_the_setting(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = {
        **source_env("plusplus_rest", sandbox, workdir),
        "LXP_SYNC__DUCKDB_MEMORY_LIMIT": "1MB",
    }
    result = lxp_sync("run", "plusplus_rest", "--resources", "users", env=env, cwd=workdir)

    assert result.returncode == 1
    # (dlt logs each retried load job with its traceback; the command's own word is one line)
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("lxp-sync: error:")]
    assert line.startswith("lxp-sync: error: plusplus_rest: DuckDB needed more memory"), line
    assert "duckdb_memory_limit under [lxp_sync] (now 1MB)" in line


def test_the_command_hands_arrow_buffers_to_the_system_allocator() -> None:
    before, thresholds = pa.default_memory_pool(), gc.get_threshold()
    try:
        bound_process_memory()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def test_the_command_converts_rows_to_arrow_without_importing_pandas() -> None:
    # pyarrow's first `pa.array` of Python objects imports pandas where it is installed (this
    # venv has it, for BigQuery): 0.3 s and 30 MB of every run. In a process of its own.
    script = textwrap.dedent(
        """
        import sys
        import pyarrow as pa

        if sys.argv[1] == "command":
            from lxp_sync.pipelines.memory import bound_process_memory

            bound_process_memory()
        from lxp_sync.sources.core.arrow import to_arrow

        table = to_arrow([{"a": 1, "b": "x"}, {"a": None, "b": "y"}], {})
        converted = "pandas" in sys.modules
        frame = table.to_pandas()  # what asks pyarrow for pandas still gets it
        print(converted, type(frame).__name__, list(frame["b"]))
        """
    )

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert run("command") == "False DataFrame ['x', 'y']"
    # a library's host (a user's own pipeline): pyarrow's check made on import, pandas included
    assert run("library") == "True DataFrame ['x', 'y']"


def test_freed_memory_goes_back_to_the_system_after_a_step() -> None:
    # in a process of its own: large blocks freed between small ones that stay, as a step leaves
    # its heap; glibc keeps such holes until told to give them back
    script = textwrap.dedent(
        """
        import sys
        from lxp_sync.pipelines.memory import release_freed_memory

        def rss_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

        kept, freed = [], []
        for i in range(15_000):
            freed.append(bytearray(20_000))
            kept.append(bytearray(700))
        held = rss_mb()
        del freed
        before = rss_mb()
        release_freed_memory()
        print(held, before, rss_mb())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    held, before, after = map(float, out.split())
    assert before > held - 100  # glibc kept the holes (about 290 MB of them)
    assert after < before - 200, (held, before, after)


def test_dlts_writers_hold_at_most_the_bounded_rows_per_table(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bound of the project's config.toml, or the one the pipeline gets where it is not set
    held: list[int] = []
    flush = BufferedDataWriter._flush_items

    def counted(writer: BufferedDataWriter, allow_empty_file: bool = False) -> None:
        held.append(writer._buffered_items_count)
        flush(writer, allow_empty_file)

    monkeypatch.setattr(BufferedDataWriter, "_flush_items", counted)
    # rows, not Arrow tables (a batch of up to 5,000 rows is one item): the buffer counts rows
    pipeline = sync("pluvo", sandbox, workdir, resources=["events"], arrow=False)

    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT count(*) FROM events")[0][0]
    assert rows > WRITER_BUFFER_ROWS  # dlt's default buffer (5000) would have held them all
    # pages of 50 rows: a buffer is written as soon as one reaches the bound
    assert WRITER_BUFFER_ROWS <= max(held) < WRITER_BUFFER_ROWS + 50


def test_the_key_ledger_at_a_million_keys_catches_a_repeat_and_a_missing_key() -> None:
    keys = KeySet()
    ids = [f"rec{n:09d}" for n in range(1_000_000)]
    missing = ids.pop(612_345)
    for start in range(0, len(ids), 1000):
        assert all(keys.add(ids[start : start + 1000]))
    assert len(keys) == 999_999
    # about 8 bytes a key (a Python set of them: about 60)
    assert keys.nbytes <= 8 * len(keys) + 8 * KeySet.PENDING

    # a page that repeats a key read 900k rows before, next to a new one
    assert keys.add([ids[17], "rec-new"]) == [False, True]
    assert keys.contains([missing, ids[0], ids[-1]]) == [False, True, True]


def test_the_command_runs_full_cycle_collections_rarely_while_pages_are_decoded() -> None:
    # in a process of its own: pages decoded and kept, with many objects alive (dlt's, the
    # pages in flight), as a run holds them; full collections walk every one of them
    script = textwrap.dedent(
        """
        import gc, sys, orjson
        if sys.argv[1] == "command":
            from lxp_sync.pipelines.memory import bound_process_memory
            bound_process_memory()
        alive = [{"k": [i]} for i in range(300_000)]
        page = orjson.dumps({"edges": [{"node": {"id": i, "f": [{"v": i}]}} for i in range(10_000)]})
        before = [s["collections"] for s in gc.get_stats()]
        pages = [orjson.loads(page) for _ in range(40)]
        after = [s["collections"] for s in gc.get_stats()]
        print(*[a - b for a, b in zip(after, before)], gc.get_freeze_count())
        """
    )

    def collections(mode: str) -> list[int]:
        out = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True
        )
        return [int(n) for n in out.stdout.split()]

    young, _, full, frozen = collections("command")
    # 40 pages of 40,000 containers each: one young collection per 50_000 of them
    assert young <= 40 * 40_000 // GC_THRESHOLDS[0] + 1
    assert full == 0
    # the modules loaded before (dlt's, pyarrow's) are left out of every collection
    assert frozen > 50_000
    # Python's defaults collect the whole heap while the same pages are decoded
    default = collections("default")
    assert default[2] > 0 and default[3] == 0


# a table as wide as a Pitchly table with many fields: DuckDB's merge of it needs more than
# 128MB (one thread, one job), and the default limit fits itself to it
WIDE_COLUMNS, WIDE_ROWS = 400, 5000


def _wide_table(run: int) -> pa.Table:
    """Run 0: rows 0..4999; run 1: rows 2500..7499, the first 2500 of them changed."""
    ids = range(0, WIDE_ROWS) if run == 0 else range(WIDE_ROWS // 2, WIDE_ROWS * 3 // 2)
    data = {"id": pa.array(ids, pa.int64())}
    for c in range(WIDE_COLUMNS):
        data[f"field_{c}"] = pa.array([f"value {i} {c} run {run}" for i in ids])
    return pa.table(data)


def _load_wide_twice(workdir: Path) -> tuple[Any, list[Any]]:
    pipeline = dlt.pipeline(
        "wide",
        destination=duckdb_destination(str(workdir / "warehouse.duckdb")),
        pipelines_dir=str(workdir / "pipelines"),
        dataset_name="wide",
    )
    infos = []
    for run in (0, 1):
        resource = dlt.resource(
            _wide_table(run), name="wide", primary_key="id", write_disposition="merge"
        )
        infos.append(pipeline.run(resource))
    return pipeline, infos


def _assert_wide_table_is_the_truth(pipeline: Any, infos: list[Any]) -> None:
    for info in infos:
        assert not info.has_failed_jobs
        for package in info.load_packages:
            assert package.state == "loaded" and not package.jobs["failed_jobs"]
    assert pipeline.list_normalized_load_packages() == []
    run = {i: 0 if i < WIDE_ROWS // 2 else 1 for i in range(WIDE_ROWS * 3 // 2)}
    truth = [(i, f"value {i} 7 run {r}", f"value {i} 399 run {r}") for i, r in run.items()]
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT id, field_7, field_399 FROM wide ORDER BY id")
    assert [tuple(r) for r in rows] == truth  # every row once, with its last values


def test_a_wide_table_loads_within_the_default_limit_fitted_to_its_columns(
    workdir: Path,
) -> None:
    pipeline, infos = _load_wide_twice(workdir)

    _assert_wide_table_is_the_truth(pipeline, infos)
    # the limit grew with the table (about 2 MB a column), not to DuckDB's 80% of the memory
    assert _memory_limit_bytes(pipeline) == pytest.approx(
        fitted_limit_bytes(WIDE_COLUMNS + 3), rel=0.02
    )
    assert _memory_limit_bytes(pipeline) < 2 * fitted_limit_bytes(WIDE_COLUMNS + 3)


def test_a_load_job_that_runs_out_of_memory_within_the_default_is_retried_within_more(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # an estimate too small for the table: the first attempt runs out of memory within the default
    monkeypatch.setattr(memory, "BYTES_PER_COLUMN", 1000)
    pipeline, infos = _load_wide_twice(workdir)

    assert f"DuckDB ran out of memory within {DEFAULT_DUCKDB_MEMORY_LIMIT[:-2]} MB" in caplog.text
    # the job was rolled back and loaded once on dlt's retries: nothing twice, no failed job
    _assert_wide_table_is_the_truth(pipeline, infos)
    assert _memory_limit_bytes(pipeline) >= 0.99 * memory.FittedLimit.RAISED[0] * _bytes(
        DEFAULT_DUCKDB_MEMORY_LIMIT
    )


def test_each_time_duckdb_runs_out_the_limit_is_raised_a_little_then_4x_then_lifted() -> None:
    """A statement that ran out within the fitted limit mostly needed a little more (PlusPlus
    GraphQL's merges at 1M rows: more than 48MB, not more than 56MB): the first raise is small,
    so that one statement's miss does not take the rest of the load to 4 times the memory."""
    destination = dlt.destinations.duckdb(":memory:")
    fitted = memory.FittedLimit(destination)
    schema = Schema("narrow")
    base = fitted.limit_bytes(schema)
    assert base == _bytes(DEFAULT_DUCKDB_MEMORY_LIMIT)

    seen = []
    for ran_out in range(4):
        fitted.ran_out = ran_out
        seen.append(fitted.limit_bytes(schema))
    assert seen == [
        base,
        int(1.25 * base),
        4 * base,
        memory.unbounded_limit_bytes(),
    ]


def test_a_limit_of_the_users_own_too_small_for_a_wide_table_is_obeyed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LXP_SYNC__DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)
    with pytest.raises(PipelineStepFailed) as failed:
        _load_wide_twice(workdir)

    line, code = explain(failed.value, "wide")
    assert code == 1
    assert line.startswith("wide: DuckDB needed more memory than its limit allows"), line
    assert f"raise duckdb_memory_limit under [lxp_sync] (now {DEFAULT_DUCKDB_MEMORY_LIMIT})" in line


def test_a_step_gives_freed_memory_back_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """glibc keeps what a long extract frees (pages decoded, then converted) unless trimmed:
    the progress ticker trims the heap every `TRIM_EVERY_S` while a step runs, whatever the
    progress lines' own interval."""
    from lxp_sync.pipelines import progress

    trims: list[float] = []
    monkeypatch.setattr(progress, "trim_heap", lambda: trims.append(time.monotonic()))
    monkeypatch.setattr(progress, "TRIM_EVERY_S", 0.05)
    run = progress.RunProgress("plusplus_rest", every_s=60)
    run._start("Extract")
    time.sleep(0.6)
    during = len(trims)
    run._stop()
    assert during >= 3, trims


def test_a_page_read_is_freed_by_reference_counts_not_left_to_the_cycle_collector(
    sandbox: SandboxProcess,
) -> None:
    """httpx binds a response's stream to the response, a reference cycle: with the collector
    run rarely (`GC_THRESHOLDS`), hundreds of read pages waited for it, tens of MB at 1M rows.
    `ApiClient` lets go of the stream once the body is read: the response, and its body, go
    as soon as the caller drops them."""
    from lxp_sync_sandbox.plusplus_graphql import API_TOKEN

    gc.collect()
    gc.disable()
    try:
        with ApiClient(sandbox.url, headers={"Authorization": f"Token {API_TOKEN}"}) as client:
            body, response = client.request_json(
                "POST", "/plusplus_graphql/graphql/", json={"query": "{ __typename }"}
            )
            assert body == {"data": {"__typename": "Query"}}
            assert response.content
            gone = weakref.ref(response)
            del response
            assert gone() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("source_name", ["plusplus_rest", "plusplus_graphql", "pluvo", "pitchly"])
def test_a_reads_key_set_is_gone_before_the_load(
    source_name: str, sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys a read yielded (8 bytes a key, its de-duplication set) are needed only while it
    reads: none is held into the load, where DuckDB's memory comes on top (8 MB at 1M rows)."""
    held: list[int] = []
    load = dlt.Pipeline.load

    def counting(pipeline: dlt.Pipeline, *args: Any, **kwargs: Any) -> Any:
        gc.collect()
        held.extend(len(o) for o in gc.get_objects() if isinstance(o, KeySet) and len(o))
        return load(pipeline, *args, **kwargs)

    monkeypatch.setattr(dlt.Pipeline, "load", counting)
    pipeline = sync(source_name, sandbox, workdir)

    assert sum(loaded_rows(pipeline).values()) > 0
    assert held == []


class _NoTurn:
    """`PAGE_TURN` taken away: every read decodes and converts its pages when it likes."""

    def take(self) -> None:
        pass

    def give_back(self) -> None:
        pass


def _most_pages_converted_at_once(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> int:
    """A Pitchly run of every table at once (dlt's extract workers), 20 records a page; each
    conversion lasts at least 20 ms, long enough for any other read to start one of its own."""
    from lxp_sync.sources.pitchly.values import PageConverter

    lock, now, most = threading.Lock(), [0], [0]
    table = PageConverter.table

    def slow(converter: PageConverter, rows: Any) -> Any:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            time.sleep(0.02)
            return table(converter, rows)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(PageConverter, "table", slow)
    workdir.mkdir()
    pipeline = sync("pitchly", sandbox, workdir, page_size=20)
    assert sum(loaded_rows(pipeline).values()) > 0
    return most[0]


def test_pages_of_reads_at_once_are_decoded_and_converted_one_at_a_time(
    sandbox: SandboxProcess, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each decoded page is many times its bytes (`PageTurn`); reads at once wait for their
    answers together but take turns to decode and convert, so at most one page of rows is alive.
    Without the turn the same run converts pages of several tables at once (the control)."""
    from lxp_sync.sources.core import graphql

    assert _most_pages_converted_at_once(sandbox, workdir / "turn", monkeypatch) == 1
    monkeypatch.setattr(graphql, "PAGE_TURN", _NoTurn())
    assert _most_pages_converted_at_once(sandbox, workdir / "free", monkeypatch) > 1
