"""The source side of the deletes sweep: how a resource lists only its keys at the source.

A source declares, next to each resource, a `KeyListing`: the warehouse table, the key, and the
pages of an ids-only read (GraphQL: the key and a deleted flag, at the largest page size; REST:
the cheapest full listing). The listing is read with every completeness check of a data read
(`sources/core/completeness.py`), so a short listing fails instead of deleting rows.
`lxp_sync.pipelines.reconcile` compares it with the warehouse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dlt.sources import DltResource

from lxp_sync.sources.core.completeness import KeySet
from lxp_sync.sources.core.graphql import Connection, GraphQLClient, relay_pages
from lxp_sync.sources.core.http import ApiClient

# the attribute of a dlt resource that holds its listing
LISTING_ATTRIBUTE = "lxp_key_listing"


@dataclass
class KeyListing:
    """How to list one resource's keys at the source."""

    resource: str  # `<source>.<resource>`, for messages
    key: str  # the key field, as the source names it
    pages: Callable[[], Iterable[list[dict[str, Any]]]]  # rows with the key (and deleted flag)
    # the warehouse table: a name, or a function of the source's dlt state (None: not loaded yet)
    table: str | Callable[[Mapping[str, Any]], str | None]
    # a field that flags rows deleted at the source (PlusPlus `is_deleted`), and whether such
    # rows leave the warehouse (`hard_delete`) or stay flagged
    deleted_field: str | None = None
    hard_delete: bool = False
    # the HTTP client the listing uses (its `requests_sent` counts what a sweep costs)
    client: ApiClient | None = None

    def table_name(self, source_state: Mapping[str, Any]) -> str | None:
        return self.table if isinstance(self.table, str) else self.table(source_state)


@dataclass
class SourceKeys:
    """What an ids-only listing found."""

    present: KeySet
    flagged: KeySet  # keys the source flags deleted
    rows: int


def with_listing(resource: DltResource, listing: KeyListing) -> DltResource:
    """`resource`, carrying the listing the sweep uses."""
    setattr(resource, LISTING_ATTRIBUTE, listing)
    return resource


def listing_of(resource: DltResource) -> KeyListing | None:
    return getattr(resource, LISTING_ATTRIBUTE, None)


def relay_key_listing(
    gql: GraphQLClient,
    connection: Connection,
    *,
    resource: str,
    table: str | Callable[[Mapping[str, Any]], str | None],
    key: str,
    page_size: int,
    filters: Mapping[str, Any] | None = None,
    deleted_field: str | None = None,
    hard_delete: bool = False,
) -> KeyListing:
    """The listing of a relay connection: only the key (and the deleted flag) of every node."""
    selection = " ".join(f for f in (key, deleted_field) if f)

    def pages() -> Iterator[list[dict[str, Any]]]:
        for page in relay_pages(
            gql,
            connection,
            selection,
            resource=f"{resource} keys",
            key=key,
            page_size=page_size,
            filters=filters,
        ):
            yield page.nodes

    return KeyListing(
        resource,
        key,
        pages,
        table=table,
        deleted_field=deleted_field,
        hard_delete=hard_delete,
        client=gql.api,
    )


def list_keys(listing: KeyListing) -> SourceKeys:
    """Every key the source lists now (and those it flags deleted), checked like a data read."""
    present, flagged = KeySet(), KeySet()
    rows = 0
    for page in listing.pages():
        rows += len(page)
        present.add([row[listing.key] for row in page])
        if listing.deleted_field:
            flagged.add([row[listing.key] for row in page if row.get(listing.deleted_field)])
    return SourceKeys(present, flagged, rows)
