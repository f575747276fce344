"""How the benchmark measures, as `docs/benchmarks.md` states it (kept next to the code it describes)."""

METHOD = """\
## How to run

```
python -m bench                      # 10k and 100k rows, 0 and 50 ms, 2 runs each; writes bench/results/
python -m bench --with-1m --docs     # adds 1M rows (the memory figure) and rewrites this page
python -m bench --sources pluvo --rows 50000 --latency-ms 50 --runs 1 --tools ceiling_concurrent lxp_sync
python -m bench --quick              # smoke run (2,000 rows, 0 ms)
```

Options: `--sources S ...` (default: all four), `--tools T ...`, `--scales N ...`, `--runs K`
(medians of K runs), `--rate-limit R` (the highest limit of the rate-limit scenario, 0 skips
it), `--out DIR` (results.json, and this page and its chart unless `--docs`; default
`bench/results/`), `--docs [DIR]` (this page and its chart; without DIR the tracked `docs/`),
`--timeout-s`, `--max-rss-mb` (a run over either is stopped and recorded as an error),
`--render` (rewrite the page from `results.json`). A run never rewrites `docs/` unless `--docs`
says so. The first run with the Airbyte peer creates `bench/.venvs/airbyte` (`pip install
airbyte`, a few minutes, never timed).

## Method

- **Data**: the bundled sandbox (`python -m lxp_sync_sandbox`, a child process on 127.0.0.1)
  at each scale, serving the four APIs from the same seed; `--rows` splits among each API's
  entities, so every source holds about that many rows. `rows` is what the source's ceiling
  read: PlusPlus REST's six resources (users, groups, articles, content_items, assignments,
  enrollments), PlusPlus GraphQL's nine root connections, Pluvo's four `paginated*`
  connections, Pitchly's records of its five ready tables (the catalog is not counted). The
  latency (`--latency-ms`) is added by the sandbox to every request before it is counted; it
  is switched through `/_sandbox/config` between series.
- **One process per measured run**, started fresh in an empty directory (its own
  `DLT_DATA_DIR`, pipelines dir and DuckDB file), so nothing is cached between runs. Before
  the first, the checkout's modules (`sources/`, `pipelines/`, `bench/`), and those of the copy
  measured with `--connector`, are byte-compiled once, untimed, as `pip install` compiles an
  installed package (dlt and Airbyte come compiled from their installs): this machine's
  environment sets `PYTHONDONTWRITEBYTECODE`, under which every run would otherwise compile
  them from source.
  - `wall s`: spawn to exit of that process, as a user waits for it: interpreter start and
    imports included. `rows/s` = rows / wall s. `sync rows/s` uses the time the tool itself
    reports for its sync (after its imports): lxp-sync's "loaded ... in N s" line, dlt's
    `pipeline.run`, PyAirbyte's `source.read`, the ceiling's fetch loop.
  - `peak RSS MB`: `ru_maxrss` from `wait4()` on that one process (its own peak, not the
    benchmark's); `CPU s`: its user + system time.
  - `requests`: the sandbox's request log for the source's API (token requests included),
    cleared before each run; `429s` from the same log.
  - `sandbox CPU`: the sandbox process's CPU time (`/proc/<pid>/stat`) during the run, divided
    by the run's wall time (100% = one core busy serving).
  - `load`: the machine's 1-minute load average when the run started (2 cores).
  - Rows loaded are counted in the DuckDB file afterwards (not timed), in the root tables
    (child tables of lists are not rows of the source); a tool that loaded a different number
    than the API holds is flagged in the note column.
  - Medians of `--runs` runs; sources and tools are interleaved (A, B, C, ..., then again) so
    that noise on the machine is spread over all of them. `x ceiling` = rows/s over the
    source's `ceiling_concurrent` rows/s in the same series.
- **Tools**
  - `ceiling_concurrent` (every source): a plain httpx loop that reads every page lxp-sync
    reads, decodes each body with orjson and drops it, with the source's page sizes and
    concurrency. PlusPlus REST: resources in parallel, `concurrency` pages in flight per
    resource (the project's `.dlt/config.toml`: 4) over one pool of `2 x concurrency`
    connections, as lxp-sync. GraphQL sources: each connection's paging query exactly as
    lxp-sync writes it (its own query builder, from the live schema, before the run), pages
    of `page_size` (300, 50, 1000), up to `extract.workers` (5) connections at once, as dlt
    extracts lxp-sync's parallelized resources; within a connection one page at a time where
    each cursor comes with the page before (Pluvo's and Pitchly's keys), and up to
    `PAGES_AHEAD` (3) pages in flight where the cursors are graphene's offsets and the
    connection has a count (PlusPlus GraphQL), as lxp-sync reads them. The `Authorization` header
    is made before the run (Pluvo's token fetched, Pitchly's JWT minted): lxp-sync's token
    request, introspection and catalog queries are its own overhead.
  - `ceiling` (PlusPlus REST): the same, one request at a time.
  - `lxp_sync`: `lxp-sync run SOURCE` (the console script), configured through
    `SOURCES__<SOURCE>__*` for the sandbox, with the project's `.dlt/config.toml` copied into
    its working directory, into DuckDB.
  - `dlt_rest_api` (PlusPlus REST): dlt's generic `rest_api_source` (`bench/peers.py`): bearer
    token, `page_number` paginator (`base_page` 1, `page_size` 100 as a parameter), `data`
    selector, merge on `public_id`, and an `incremental` `modified_gte` parameter on `modified`
    for content items, with dlt's defaults (`insert_values` load files for DuckDB). dlt's
    `total_path` counts *pages*, and the API reports rows (`meta.total_count`), so the
    paginator is set with `total_path: None` and stops at the first empty page: one request per
    resource more than the ceiling.
  - `dlt_rest_api_parquet` (PlusPlus REST): the same with `loader_file_format="parquet"`.
  - `airbyte_lowcode` (PlusPlus REST): a declarative manifest for the same endpoints
    (`bench/peers.py`: `PageIncrement` paginator, `DpathExtractor` on `data`,
    `BearerAuthenticator`, a `DatetimeBasedCursor` on `modified` sent as `modified_gte` for
    content items, inline JSON schemas inferred from a first page) run by PyAirbyte
    (`ab.get_source(name, source_manifest=..., install_if_missing=False)`,
    `AIRBYTE_OFFLINE_MODE=1`) into its DuckDB cache, in its own venv (`bench/.venvs/airbyte`,
    `bench/airbyte_runner.py`). Full syncs only. If it cannot run, its exact error is recorded
    instead of a number.
- **Scenarios** (one run each, at each scale and latency)
  - `lxp_sync_reconcile` and `lxp_sync_full_refresh` (every source): after the full syncs of a
    latency, in the directory of the last measured lxp-sync load, `lxp-sync reconcile SOURCE`
    (the deletes sweep: keys only, compared with the warehouse), then `lxp-sync run SOURCE
    --full-refresh`; the note gives the sweep's requests and time as shares of the full
    refresh's.
  - `lxp_sync_incremental` (PlusPlus REST): after everything else at that scale (its changes
    alter the data), a full lxp-sync run, 1% of each resource's rows changed through
    `/_sandbox/mutate` (half updated, half inserted), and an incremental run in the same
    directory. Its `requests` are compared with the first full run's for the cursor-backed
    resources (content_items on `modified_gte`, assignments and enrollments on `created_gte`
    with the connector's 14-day refresh window); users, groups and articles have no
    server-side filter and are scanned in full.
  - **Rate limit** (every source): once, at the largest scale up to 100k rows and 0 ms, the
    sandbox allows a fixed number of requests per one-second window (`X-RateLimit-*` headers,
    429 beyond; a window opens with the first request after the last one ended) and lxp-sync
    runs a full sync. Each source's limit is the one its full sync needs about 30 windows for
    (its ceiling's requests / 30, between 2 and `--rate-limit`). From the sandbox's own clock
    (the moment its limiter counted each request): the share of the limit used is the
    requests accepted over `limit x (floor(span / 1 s) + 1)`, the most the windows between the
    first request and the last could have accepted; and the 429s received.
  - **Start-up**: `lxp-sync --help` and `python -c "import lxp_sync.sources.plusplus"`, five
    fresh processes each, median wall time and peak RSS.
- **1M rows** (`--with-1m`): lxp-sync and the ceilings only, at 0 ms, one run: the memory
  figure (peak RSS at 1M against 10k rows).
"""
