"""Mechanics of the PlusPlus REST source: how to read one page of a list, cursors, the window."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from lxp_sync.sources.core.completeness import (
    NumberedPage,
    PageAnomaly,
    changed_since,
    numbered_pages,
)
from lxp_sync.sources.core.errors import RequestError
from lxp_sync.sources.core.http import ApiClient, request_id_of
from lxp_sync.sources.core.limits import PageSizes
from lxp_sync.sources.core.paging import iso_text
from lxp_sync.sources.plusplus.settings import REST_PRIMARY_KEY as PRIMARY_KEY
from lxp_sync.sources.plusplus.settings import RestEndpoint
from lxp_sync.sources.plusplus.window import MICROSECOND, WindowHashes, entries_of


def read_pages(
    client: ApiClient,
    resource: str,
    endpoint: RestEndpoint,
    *,
    page_size: int,
    concurrency: int,
    params: dict[str, Any] | None = None,
    max_pages: int | None = None,
    started: datetime | None = None,
    counted: Callable[[int], None] | None = None,
    sizes: PageSizes | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Every row of a list endpoint once, checked against `meta.total_count` (on every page).

    Page 1 gives the count, the other pages are fetched concurrently; a list that changes while
    it is read is read again where it moved (`sources/core/completeness.py`). `started`: when the
    run began, for rows read twice whose cursor says they changed during the read; `counted` is
    told the count of the first page. A `page_size` the API refuses (a 400 on `page_size`) is
    lowered to the limit it names and remembered in `sizes` for the source's other lists.
    """
    sizes = sizes or PageSizes(page_size)
    label = resource.removesuffix(" keys")
    while True:
        size = min(page_size, sizes.size(label))
        pages = _read_pages(client, resource, endpoint, size, concurrency, params, max_pages,
                            started, counted)  # fmt: skip
        try:
            first = next(pages, None)
        except RequestError as error:
            # every page of a read has the same size: a refusal comes with the first page
            if sizes.lower(label, size, error.message, "page_size") is None:
                raise
            continue
        if first is not None:
            yield first
            yield from pages
        return


def _read_pages(
    client: ApiClient,
    resource: str,
    endpoint: RestEndpoint,
    page_size: int,
    concurrency: int,
    params: dict[str, Any] | None,
    max_pages: int | None,
    started: datetime | None,
    counted: Callable[[int], None] | None,
) -> Iterator[list[dict[str, Any]]]:
    base_params = {**(params or {}), "page_size": page_size}

    def fetch(page: int) -> NumberedPage:
        body, response = client.request_json(
            "GET", endpoint.path, params={**base_params, "page": page}, resource=resource, page=page
        )
        facts = {"request_id": request_id_of(response, body), "status": response.status_code}
        rows = body.get("data") if isinstance(body, dict) else None
        meta = body.get("meta") if isinstance(body, dict) else None
        total = meta.get("total_count") if isinstance(meta, dict) else None
        if not isinstance(rows, list):
            raise PageAnomaly("the answer has no `data` list", **facts)
        if not isinstance(total, int) or isinstance(total, bool):
            raise PageAnomaly("the answer has no `meta.total_count`", **facts)
        return NumberedPage(rows, total, **facts)

    cursor = endpoint.server_cursor or endpoint.client_cursor
    # a row read twice is yielded again only where a timestamp cursor shows it changed; the
    # refresh window's rows (a `created` cursor) keep their first copy, compared next run
    fresh = (
        None
        if yields_each_key_once(endpoint) or started is None
        else changed_since(cursor, started)
    )
    yield from numbered_pages(
        fetch,
        client=client,
        resource=resource,
        key=PRIMARY_KEY,
        page_size=page_size,
        concurrency=concurrency,
        keep_repeat=fresh,
        max_pages=max_pages,
        counted=counted,
    )


def yields_each_key_once(endpoint: RestEndpoint) -> bool:
    """Whether a read yields every key at most once (no later copy of a row that changed while
    the list was read): then the load need not deduplicate."""
    return endpoint.refresh_window or not (endpoint.server_cursor or endpoint.client_cursor)


def cursor_params(endpoint: RestEndpoint, start_value: Any) -> dict[str, Any]:
    """The `<cursor>_gte` filter of an incremental run (none on the first run).

    `start_value` is dlt's, already moved back by the refresh window (`lag`) where there is one.
    """
    if not endpoint.server_cursor or start_value is None:
        return {}
    return {f"{endpoint.server_cursor}_gte": iso_text(start_value)}


def drop_unchanged(
    pages: Iterable[list[dict[str, Any]]],
    state: MutableMapping[str, Any],
    cursor: str,
    window: timedelta,
) -> Iterator[list[dict[str, Any]]]:
    """Drop rows re-read by the refresh window that have not changed since the last run.

    The resource state keeps the hashes of the rows inside the window, measured back from the
    newest cursor seen (`window.py`: 32 bytes a row); only those can be read again, so the state
    stays as small as the window.
    """
    known = WindowHashes.from_state(state.get("window_hashes"))
    current, batches, pending = known, [], 0
    newest: int | None = None
    prune_at = max(PRUNE_AT, 2 * len(known))
    for rows in pages:
        entries, with_cursor = entries_of(rows, PRIMARY_KEY, cursor)
        same = known.unchanged(entries["key"], entries["digest"])
        keep = [row for row, unchanged in zip(rows, same.tolist(), strict=True) if not unchanged]
        if with_cursor.any():
            batch = entries[with_cursor]
            batches.append(batch)
            pending += len(batch)
            top = int(batch["moment"].max())
            newest = top if newest is None else max(newest, top)
        if len(current) + pending > prune_at and newest is not None:
            current = current.updated(batches, newest - window // MICROSECOND)
            batches, pending = [], 0
            prune_at = max(PRUNE_AT, 2 * len(current))
        if keep:
            yield keep
    start = None if newest is None else newest - window // MICROSECOND
    state["window_hashes"] = current.updated(batches, start).to_state()


# entries held before the window is pruned (a prune keeps only rows inside the window)
PRUNE_AT = 10_000
