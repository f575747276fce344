"""Mechanics of the PlusPlus REST source: page-number paging with known totals, cursors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pendulum

from sources.core.http import ApiClient
from sources.core.paging import Progress, fetch_in_order
from sources.plusplus.settings import RestEndpoint


def iso_param(value: Any) -> str:
    """A cursor value as the API's ISO-8601 filter parameter."""
    if isinstance(value, str):
        value = pendulum.parse(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


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
    return {f"{endpoint.server_cursor}_gte": iso_param(start_value)}
