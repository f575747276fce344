"""Scripted faults of the sandbox: what a fault matches, and the answers it rewrites.

Three families, all queued with `POST /_sandbox/faults` (see `sandbox/app.py`):

- answered instead of the API: `status` (an error status, or `body` as is), `drop` (the
  connection closes), `slow` (the answer comes `delay_s` late), `malformed` (not JSON);
- `mutate`: the `mutation` (the spec of `/_sandbox/mutate`) is applied right before the matching
  request is served, so rows change *while* a client pages through a list;
- the API's real answer, rewritten (`REWRITES`): a short page, an empty page, an early end, an
  answer without the field asked for, null rows, no `pageInfo`, no count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("status", "drop", "slow", "malformed", "mutate")


@dataclass
class Fault:
    api: str | None
    path_contains: str = ""
    status: int = 503
    count: int = 1
    retry_after: float | None = None
    reset_after: float | None = None
    body: Any = None
    kind: str = "status"  # FAULT_KINDS or a key of REWRITES
    delay_s: float = 0.0
    # the raw request body must contain this (GraphQL: a connection name, a variable, a cursor)
    body_contains: str = ""
    # let this many matching requests through before the fault fires
    skip: int = 0
    # `mutate`: what to change; `api` defaults to the fault's API
    mutation: dict[str, Any] | None = None
    # `short`: rows cut from the end of the page
    drop: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and self.kind not in REWRITES:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    @property
    def rewrites(self) -> bool:
        return self.kind in REWRITES

    def matches(self, api: str, target: str, body: bytes) -> bool:
        if self.api not in (None, api):
            return False
        if self.path_contains and self.path_contains not in target:
            return False
        return not self.body_contains or self.body_contains.encode() in body


# --- rewrites of a real answer ------------------------------------------------------------------


def _rows_holder(body: Any) -> tuple[dict[str, Any], str] | None:
    """(the dict that holds the page's rows, its key): REST `data`, GraphQL `<connection>.edges`."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if isinstance(data, list):
        return body, "data"
    connection = _connection(body)
    if connection is not None and isinstance(connection.get("edges"), list):
        return connection, "edges"
    return None


def _connection(body: Any) -> dict[str, Any] | None:
    """The first root field of a GraphQL answer that is a connection (has `edges`)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    return next((v for v in data.values() if isinstance(v, dict) and "edges" in v), None)


def _short(body: Any, fault: Fault) -> None:
    holder = _rows_holder(body)
    if holder is not None:
        rows = holder[0][holder[1]]
        holder[0][holder[1]] = rows[: max(0, len(rows) - max(1, fault.drop))]


def _empty(body: Any, fault: Fault) -> None:
    holder = _rows_holder(body)
    if holder is not None:
        holder[0][holder[1]] = []


def _early_end(body: Any, fault: Fault) -> None:
    connection = _connection(body)
    if connection is not None and isinstance(connection.get("pageInfo"), dict):
        connection["pageInfo"]["hasNextPage"] = False


def _no_data(body: Any, fault: Fault) -> None:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        del body["data"]  # REST: the list is missing
    elif isinstance(body, dict):
        body["data"] = {}  # GraphQL: data without the field asked for


def _null_row(body: Any, fault: Fault, edge: bool) -> None:
    holder = _rows_holder(body)
    if holder is None or not holder[0][holder[1]]:
        return
    rows = holder[0][holder[1]]
    middle = len(rows) // 2
    if holder[1] == "data" or edge:
        rows[middle] = None
    elif isinstance(rows[middle], dict):
        rows[middle]["node"] = None


def _no_page_info(body: Any, fault: Fault) -> None:
    connection = _connection(body)
    if connection is not None:
        connection.pop("pageInfo", None)


def _no_count(body: Any, fault: Fault) -> None:
    connection = _connection(body)
    if connection is not None:
        connection.pop("totalCount", None)
        connection.pop("count", None)
    elif isinstance(body, dict) and isinstance(body.get("meta"), dict):
        body["meta"].pop("total_count", None)


REWRITES: dict[str, Callable[[Any, Fault], None]] = {
    "short": _short,  # `drop` rows fewer, the count unchanged
    "empty": _empty,  # no rows, the count unchanged
    "early_end": _early_end,  # GraphQL: `hasNextPage: false`
    "no_data": _no_data,  # GraphQL `{"data": {}}`; REST: no `data`
    "null_node": lambda body, fault: _null_row(body, fault, edge=False),  # REST: a null row
    "null_edge": lambda body, fault: _null_row(body, fault, edge=True),
    "no_page_info": _no_page_info,
    "no_count": _no_count,  # no `totalCount`/`count`, REST no `meta.total_count`
}
