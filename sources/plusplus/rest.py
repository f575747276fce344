"""Mechanics of the PlusPlus REST source: page-number paging with known totals, cursors."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from lxp_sync.sources.core.http import ApiClient
from lxp_sync.sources.core.paging import Progress, fetch_in_order, iso_text, parse_iso
from lxp_sync.sources.plusplus.settings import RestEndpoint


def read_pages(
    client: ApiClient,
    resource: str,
    endpoint: RestEndpoint,
    *,
    page_size: int,
    concurrency: int,
    params: dict[str, Any] | None = None,
    max_pages: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a list endpoint, in order.

    Page 1 gives `meta.total_count`; the remaining pages are then fetched concurrently. If the
    last expected page comes back full (rows were added during the sync), paging goes on one page
    at a time until a short page.
    """
    base_params = {**(params or {}), "page_size": page_size}

    def fetch(page: int) -> dict[str, Any]:
        return client.get_json(
            endpoint.path, params={**base_params, "page": page}, resource=resource, page=page
        )

    first = fetch(1)
    total = int(first.get("meta", {}).get("total_count") or 0)
    progress = Progress(resource, total)
    rows = first.get("data") or []
    progress.add(len(rows))
    if rows:
        yield rows
    last_page = max(1, math.ceil(total / page_size))
    if max_pages is not None:
        last_page = min(last_page, max_pages)
    last_len = len(rows)
    for body in fetch_in_order(fetch, range(2, last_page + 1), concurrency):
        rows = body.get("data") or []
        last_len = len(rows)
        progress.add(last_len)
        if rows:
            yield rows
    page = last_page
    while last_len == page_size and (max_pages is None or page < max_pages):
        page += 1
        rows = fetch(page).get("data") or []
        last_len = len(rows)
        progress.add(last_len)
        if rows:
            yield rows
    progress.done()


def cursor_params(endpoint: RestEndpoint, start_value: Any) -> dict[str, Any]:
    """The `<cursor>_gte` filter of an incremental run (none on the first run).

    `start_value` is dlt's, already moved back by the refresh window (`lag`) where there is one.
    """
    if not endpoint.server_cursor or start_value is None:
        return {}
    return {f"{endpoint.server_cursor}_gte": iso_text(start_value)}


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).hexdigest()


def drop_unchanged(
    pages: Iterable[list[dict[str, Any]]],
    state: MutableMapping[str, Any],
    cursor: str,
    window: timedelta,
) -> Iterator[list[dict[str, Any]]]:
    """Drop rows re-read by the refresh window that have not changed since the last run.

    The resource state keeps `{public_id: [cursor value, hash]}` of the rows inside the window
    (measured back from the newest cursor seen); only those can be read again, so the state stays
    as small as the window.
    """
    known: dict[str, list[str]] = state.get("window_hashes") or {}
    fresh: dict[str, list[str]] = dict(known)
    newest: datetime | None = None
    prune_at = max(10_000, 2 * len(fresh))
    for rows in pages:
        keep = []
        for row in rows:
            digest = row_hash(row)
            key = row["public_id"]
            seen = known.get(key)
            if seen is None or seen[1] != digest:
                keep.append(row)
            value = row.get(cursor)
            if value:
                fresh[key] = [value, digest]
                moment = parse_iso(value)
                if newest is None or moment > newest:
                    newest = moment
        if len(fresh) > prune_at and newest is not None:
            fresh = _inside(fresh, newest - window)
            prune_at = max(10_000, 2 * len(fresh))
        if keep:
            yield keep
    if newest is not None:
        fresh = _inside(fresh, newest - window)
    state["window_hashes"] = fresh


def _inside(hashes: dict[str, list[str]], start: datetime) -> dict[str, list[str]]:
    return {key: pair for key, pair in hashes.items() if parse_iso(pair[0]) >= start}
