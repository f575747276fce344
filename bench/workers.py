"""The measured programs that run in the project's venv, one process per measured run.

`python -m bench.workers ceiling PLAN.json [--sequential]` fetches every page and discards it;
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


def _decode(content: bytes) -> Any:
    import orjson

    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:  # integers past 64 bits (Pitchly's): the standard library
        import json

        return json.loads(content)


def ceiling(plan: dict[str, Any], sequential: bool = False) -> dict[str, Any]:
    """Every page of every connection of `plan` (`bench/sources.py`), decoded and dropped.

    The source's own concurrency (or, `sequential`, one request at a time): PlusPlus REST reads
    its resources in parallel, `concurrency` pages in flight per resource, over one pool of
    `2 * concurrency` connections (the connector's pool size); a GraphQL source reads up to
    `concurrency` connections at once (dlt's extract workers), one page at a time each where a
    cursor comes with the page before, `pages_ahead` at a time where cursors are offsets.
    """
    import httpx

    concurrency = 1 if sequential else int(plan["concurrency"])
    rest = plan["kind"] == "rest"
    ahead = 1 if rest else int(plan.get("pages_ahead", 1))
    pool = 1 if concurrency <= 1 else (2 * concurrency if rest else concurrency * ahead)
    client = httpx.Client(
        headers={**plan["headers"], "Accept": "application/json"},
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        timeout=120,
    )
    counts = {"rows": 0, "requests": 0}
    lock = threading.Lock()

    def counted(rows: int) -> None:
        with lock:
            counts["requests"] += 1
            counts["rows"] += rows

    if not rest:
        _graphql_ceiling(client, plan, concurrency, counted)
        return counts
    page_size = int(plan["page_size"])

    def fetch(path: str, page: int) -> dict[str, Any]:
        response = client.get(plan["url"] + path, params={"page": page, "page_size": page_size})
        response.raise_for_status()
        body = _decode(response.content)
        counted(len(body["data"]))
        return body

    def pages_after_first(first: dict[str, Any]) -> range:
        return range(2, math.ceil(first["meta"]["total_count"] / page_size) + 1)

    paths = [c["path"] for c in plan["connections"]]
    if pool == 1:
        for path in paths:
            for page in pages_after_first(fetch(path, 1)):
                fetch(path, page)
        return counts

    def resource(path: str, pages: ThreadPoolExecutor) -> None:
        in_flight: list[Future[Any]] = []
        for page in pages_after_first(fetch(path, 1)):
            in_flight.append(pages.submit(fetch, path, page))
            if len(in_flight) >= concurrency:
                in_flight.pop(0).result()
        for future in in_flight:
            future.result()

    with (
        ThreadPoolExecutor(pool, thread_name_prefix="page") as pages,
        ThreadPoolExecutor(len(paths), thread_name_prefix="resource") as resources,
    ):
        for future in [resources.submit(resource, p, pages) for p in paths]:
            future.result()
    return counts


# graphene's offset cursors (`arrayconnection:N`): the cursor of any later page is known
OFFSET = "arrayconnection:"


def _offset(cursor: str | None) -> int | None:
    import base64

    try:
        text = base64.b64decode(cursor or "", validate=True).decode("ascii")
    except ValueError:
        return None
    digits = text.removeprefix(OFFSET)
    return int(digits) if digits != text and digits.isascii() and digits.isdigit() else None


def _graphql_ceiling(client: Any, plan: dict[str, Any], workers: int, counted: Any) -> None:
    """Each connection's pages; where its cursors are offsets and it has a count, the pages
    after the first with up to `pages_ahead` requests in flight (as lxp-sync reads them)."""
    import base64

    page_size = int(plan["page_size"])
    ahead = int(plan.get("pages_ahead", 1)) if workers > 1 else 1

    def fetch(spec: dict[str, Any], after: str | None) -> dict[str, Any]:
        variables = {"first": page_size, "after": after, **spec["variables"]}
        response = client.post(plan["url"], json={"query": spec["query"], "variables": variables})
        response.raise_for_status()
        body = _decode(response.content)
        if body.get("errors"):
            raise RuntimeError(f"{spec['name']}: {body['errors'][0].get('message')}")
        found = body["data"][spec["field"]]
        counted(len(found["edges"]))
        return found

    def connection(spec: dict[str, Any], pages: ThreadPoolExecutor) -> None:
        found, received = fetch(spec, None), 0
        while True:
            received += len(found["edges"])
            info = found["pageInfo"]
            if not info["hasNextPage"]:
                return
            end, total = _offset(info["endCursor"]), found.get(spec.get("count_field") or "")
            if ahead > 1 and end is not None and end + 1 == received and isinstance(total, int):
                break
            found = fetch(spec, info["endCursor"])
        in_flight: list[Future[Any]] = []
        for start in range(end, total - 1, page_size):  # the offset each later page starts after
            cursor = base64.b64encode(f"{OFFSET}{start}".encode()).decode()
            in_flight.append(pages.submit(fetch, spec, cursor))
            if len(in_flight) >= ahead:
                in_flight.pop(0).result()
        for future in in_flight:
            future.result()

    connections = plan["connections"]
    with (
        ThreadPoolExecutor(max(1, workers * ahead), thread_name_prefix="page") as pages,
        ThreadPoolExecutor(max(1, workers), thread_name_prefix="connection") as pool,
    ):
        for future in [pool.submit(connection, spec, pages) for spec in connections]:
            future.result()


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
    commands = parser.add_subparsers(dest="tool", required=True)
    fetch = commands.add_parser("ceiling", help="fetch every page of a plan and drop it")
    fetch.add_argument("plan", help="the plan's JSON file (bench/sources.py)")
    fetch.add_argument("--sequential", action="store_true", help="one request at a time")
    peer = commands.add_parser("dlt_rest_api", help="dlt's rest_api source into DuckDB")
    peer.add_argument("base_url")
    peer.add_argument("token")
    peer.add_argument("workdir", nargs="?", default=".")
    peer.add_argument("--parquet", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.tool == "ceiling":
        with open(args.plan, "rb") as handle:
            plan = _decode(handle.read())
        facts = ceiling(plan, args.sequential)
        facts["sync_s"] = time.monotonic() - started
    else:
        facts = dlt_rest_api(args.base_url, args.token, args.workdir, args.parquet)
    import orjson

    sys.stdout.write(orjson.dumps(facts).decode() + "\n")


if __name__ == "__main__":
    main()
