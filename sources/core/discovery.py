"""How each resource reads, as the resource itself says it, for `lxp-sync discover`.

A source attaches a `ReadPlan` to each resource it yields (like the sweep's `KeyListing`): the
cursor, whether the server filters on it or every row is read, and, once the resource has read
its first page, the rows the API counted. The plan is the same one the read uses, so what
`discover` says is what a run does.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlt.sources import DltResource

# the attribute of a dlt resource that holds its read plan
READ_PLAN_ATTRIBUTE = "lxp_read_plan"

# how a resource reads, in a word (`ReadPlan.mode`)
SERVER, CLIENT, FULL, REPLACE = "server", "client", "full", "replace"


@dataclass
class ReadPlan:
    """How one resource reads."""

    # the API's field the resource is incremental on (None: no cursor)
    cursor: str | None = None
    # what takes the cursor's value on the server (an argument such as `modified_gte`); None: the
    # server cannot filter, so every row is read and dlt's incremental keeps the new ones
    server_filter: str | None = None
    # every row read and the table replaced on every run (no cursor, no merge)
    replace: bool = False
    # anything more a user should know (a refresh window)
    note: str = ""
    # the rows the API counted at the start of the resource's last read (None: it did not say)
    total: int | None = None

    @property
    def mode(self) -> str:
        """`server`, `client` (incremental, filtered here), `full` (merged) or `replace`."""
        if self.replace:
            return REPLACE
        if self.server_filter:
            return SERVER
        return CLIENT if self.cursor else FULL

    def counted(self, total: int | None) -> None:
        """Keep the count of a read's first page (the first one a read reports)."""
        if self.total is None:
            self.total = total


def with_read_plan(resource: DltResource, plan: ReadPlan) -> DltResource:
    """`resource`, carrying how it reads."""
    setattr(resource, READ_PLAN_ATTRIBUTE, plan)
    return resource


def read_plan_of(resource: DltResource) -> ReadPlan | None:
    return getattr(resource, READ_PLAN_ATTRIBUTE, None)
