"""A page size the API refuses is lowered to the limit the refusal names, remembered, logged once.

The documents disagree on limits (PlusPlus GraphQL: 300 or 150 records a query) and a tenant can
be set up lower: PlusPlus REST answers a larger `page_size` with a 400 field error, Pluvo with
`first must be <= n`, graphene-django with its own message (the acceptance tests against the
stand-in). A silent cap (fewer rows, `hasNextPage` true) is the completeness layer's
(`tests/test_completeness.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from lxp_sync.sources.core.limits import PageSizes, refused_limit
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import sync
from tests.test_plusplus_graphql import assert_connection_equals_truth
from tests.test_plusplus_rest import assert_warehouse_equals_truth as assert_rest_equals_truth
from tests.test_pluvo import CONNECTIONS as PLUVO_CONNECTIONS
from tests.test_pluvo import assert_warehouse_equals_truth as assert_pluvo_equals_truth
from tests.test_pluvo import graphql_requests

GRAPHENE = (
    "Requesting 300 records on the `events` connection exceeds the `first` limit of 150 records."
)


@pytest.mark.parametrize(
    ("message", "argument", "limit"),
    [
        (GRAPHENE, "first", 150),
        ("query error: first must be <= 50 (at paginatedUsers)", "first", 50),
        ("Validation failed. page_size: Ensure this value is less than or equal to 40.", "page_size", 40),
        ("`first` is too large", "first", 0),  # names no limit: halved
        ("Argument 'first' has invalid value \"x\"", "first", None),  # another error
        ("page_size: Ensure this value is greater than or equal to 1.", "page_size", None),
        ("Cannot query field 'nope' on type 'EventType'", "first", None),
        ("exceeds the limit of 10 (firstName)", "first", None),  # not the argument
    ],
)  # fmt: skip
def test_a_refusal_names_the_limit_or_is_no_refusal(
    message: str, argument: str, limit: int | None
) -> None:
    assert refused_limit(message, argument) == limit


def test_a_lowered_size_is_remembered_per_resource_and_starts_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sizes = PageSizes(300)
    with caplog.at_level(logging.INFO, logger="lxp_sync"):
        assert sizes.lower("s.events", 300, GRAPHENE, "first") == 150
        assert sizes.size("s.events") == 150 and sizes.size("s.users") == 150
        # a connection with a lower limit of its own keeps it; the others keep theirs
        assert sizes.lower("s.tags", 150, "`first` limit of 20 records", "first") == 20
        assert sizes.size("s.events") == 150 and sizes.size("s.tags") == 20
        assert sizes.lower("s.x", 1, "`first` is too large", "first") is None  # cannot go lower
        assert sizes.lower("s.x", 300, "unrelated", "first") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "paging by 150" in warnings[0].getMessage()


def page_sizes_asked(sandbox: SandboxProcess, api: str) -> list[int]:
    return [
        int(parse_qs(entry["query"])["page_size"][0])
        for entry in sandbox.requests(api)
        if "page_size" in parse_qs(entry["query"])
    ]


def test_rest_page_size_refused_with_a_field_error_is_lowered_for_every_list(
    fresh_sandbox: SandboxProcess, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api="plusplus_rest", page_limit=40)
    resources = ["users", "groups", "content_items"]
    with caplog.at_level(logging.INFO, logger="lxp_sync"):
        sync("plusplus_rest", sandbox, workdir, resources=resources)  # page_size 100

    assert_rest_equals_truth(sandbox, workdir, resources=resources)
    sizes = page_sizes_asked(sandbox, "plusplus_rest")
    assert sorted(set(sizes)) == [40, 100]
    assert sizes.count(100) <= len(resources), "the refused size is sent once a list at most"
    refusals = [r for r in caplog.records if "refused 100 rows a page" in r.getMessage()]
    assert len(refusals) == 1


def test_pluvo_cap_answered_as_an_error_is_lowered(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api="pluvo", page_limit=20, page_size_mode="error")
    sync("pluvo", sandbox, workdir)  # page_size 50

    assert_pluvo_equals_truth(sandbox, workdir)
    asked = [
        r["extra"]["args"]["first"] for r in graphql_requests(sandbox) if r["extra"].get("args")
    ]
    # resources read in parallel may each send 50 once before one of them learnt the limit
    assert asked.count(50) <= len(PLUVO_CONNECTIONS) and set(asked) == {20, 50}
    assert len(asked) > len(PLUVO_CONNECTIONS)


def test_graphql_limit_lower_than_the_documents_is_lowered_on_the_sandbox(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api="plusplus_graphql", page_limit=70, page_size_mode="error")
    sync("plusplus_graphql", sandbox, workdir, resources=["events", "users", "tags"])

    for connection in ("events", "users", "tags"):
        assert_connection_equals_truth(sandbox, workdir, connection)
    firsts = [
        args.get("first")
        for entry in sandbox.requests("plusplus_graphql")
        for args in (entry["extra"].get("args") or {}).values()
        if args
    ]
    assert firsts.count(300) <= 3 and set(firsts) == {70, 300}
