"""The measured programs that run in the project's venv, one process per measured run.

`python -m bench.workers ceiling URL TOKEN [--concurrency C]` fetches every page and discards it;
`python -m bench.workers dlt_rest_api URL TOKEN DIR [--parquet]` runs dlt's `rest_api_source`.
Each prints one JSON line with what it saw; the parent measures time, memory and requests.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bench.peers import ENTITIES, PAGE_SIZE


def ceiling(base_url: str, token: str, concurrency: int) -> dict[str, Any]:
    """Every page of every resource, decoded with orjson and dropped: the most any client can do.

    `concurrency` 1 is one request at a time. Otherwise the connector's shape: resources in
    parallel, `concurrency` pages in flight per resource, over one pool of `2 * concurrency`
    connections (the connector's pool size), so at most that many requests are in flight.
    """
    import httpx
    import orjson

    pool = 1 if concurrency <= 1 else 2 * concurrency
    client = httpx.Client(
        base_url=base_url.rstrip("/") + "/",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        timeout=60,
    )
    counts = {"rows": 0, "requests": 0}
    lock = threading.Lock()

    def fetch(entity: str, page: int) -> dict[str, Any]:
        response = client.get(f"{entity}/", params={"page": page, "page_size": PAGE_SIZE})
        response.raise_for_status()
        body = orjson.loads(response.content)
        with lock:
            counts["requests"] += 1
            counts["rows"] += len(body["data"])
        return body

    def pages_after_first(first: dict[str, Any]) -> range:
        return range(2, math.ceil(first["meta"]["total_count"] / PAGE_SIZE) + 1)

    if pool == 1:
        for entity in ENTITIES:
            for page in pages_after_first(fetch(entity, 1)):
                fetch(entity, page)
        return counts

    def resource(entity: str, pages: ThreadPoolExecutor) -> None:
        in_flight: list[Future[Any]] = []
        for page in pages_after_first(fetch(entity, 1)):
            in_flight.append(pages.submit(fetch, entity, page))
            if len(in_flight) >= concurrency:
                in_flight.pop(0).result()
        for future in in_flight:
            future.result()

    with (
        ThreadPoolExecutor(pool, thread_name_prefix="page") as pages,
        ThreadPoolExecutor(len(ENTITIES), thread_name_prefix="resource") as resources,
    ):
        for future in [resources.submit(resource, e, pages) for e in ENTITIES]:
            future.result()
    return counts


def dlt_rest_api(base_url: str, token: str, workdir: str, parquet: bool) -> dict[str, Any]:
    """dlt's generic `rest_api_source` into DuckDB: defaults, or parquet load files."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from bench.peers import rest_api_config

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt_rest_api",
        destination=dlt.destinations.duckdb(f"{workdir}/peer_db.duckdb"),
        dataset_name="plusplus_rest_peer",
        pipelines_dir=f"{workdir}/pipelines",
    )
    started = time.monotonic()
    info = pipeline.run(
        rest_api_source(rest_api_config(base_url, token)),
        loader_file_format="parquet" if parquet else None,
    )
    info.raise_on_failed_jobs()
    return {"sync_s": time.monotonic() - started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("tool", choices=["ceiling", "dlt_rest_api"])
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("workdir", nargs="?", default=".")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--parquet", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.tool == "ceiling":
        facts = ceiling(args.base_url, args.token, args.concurrency)
        facts["sync_s"] = time.monotonic() - started
    else:
        facts = dlt_rest_api(args.base_url, args.token, args.workdir, args.parquet)
    import orjson

    sys.stdout.write(orjson.dumps(facts).decode() + "\n")


if __name__ == "__main__":
    main()
