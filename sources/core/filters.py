"""Server-side cursor filters found by introspection, whatever the vendor named them.

The PlusPlus document names `modified_gte`; its help pages' examples filter with
`starts_at_after`; django-filter generates `modified__gte` from `fields = {"modified": ["gte"]}`
and `modified_after` from a `DateTimeFromToRangeFilter`; other APIs write `updatedAt_gte`,
`updated_since` or `modifiedSince`. An argument of a connection is taken as the server-side
filter of a cursor field when

- it takes the cursor field's own type (`DateTime`; not a list, not a text), and
- its name is the cursor's name (or the cursor's name without a trailing `At`/`_at`/`On`/
  `Date`/`Time`: `updated_since` for `updatedAt`) and one word meaning *at or after*:
  `gte`, `ge`, `after`, `since`, `from`, `min`, `start` (as a suffix: `modified_gte`,
  `modified__gte`, `modifiedGte`, `modified_after`; `min`, `from`, `since` also as a prefix:
  `since_modified`).

Preferred in that order of words (`gte` is inclusive by definition; django-filter's `_after` is
`gte` too). Never an argument meaning before, at most, equal or strictly after (`lte`, `lt`,
`before`, `until`, `to`, `max`, `end`, `gt`, `exact`): the word list admits none of them, and a
strict `gt` would drop rows that share the cursor's last moment. A name the vendor folder
configures (`modified_gte`) is taken first when the connection has it with the right type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# words meaning "at or after", best first
AT_OR_AFTER = ("gte", "ge", "after", "since", "from", "min", "start")
# words that may also come before the cursor's name
PREFIXES = frozenset({"since", "from", "min"})
# trailing words a cursor's name may drop in a filter's (`updatedAt` -> `updated_since`)
TIME_WORDS = frozenset({"at", "on", "date", "time"})


def words(name: str) -> list[str]:
    """`modifiedAt__gte` -> ["modified", "at", "gte"]: camelCase and underscores split."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [w.lower() for w in spaced.split("_") if w]


def cursor_filter(
    args: Mapping[str, str],
    cursor: str,
    cursor_type: str,
    preferred: str | None = None,
) -> str | None:
    """The argument of a connection (`args`: name -> declared type) that filters `cursor` at or
    after a value on the server, by the rules above; None where there is none."""
    if preferred and _type_of(args.get(preferred)) == cursor_type:
        return preferred
    stem = words(cursor)
    stems = [stem]
    if len(stem) > 1 and stem[-1] in TIME_WORDS:
        stems.append(stem[:-1])
    best: tuple[int, str] | None = None
    for name, declared in args.items():
        if _type_of(declared) != cursor_type:
            continue
        split = words(name)
        for candidate in stems:
            rank = _rank(split, candidate)
            if rank is not None and (best is None or (rank, name) < best):
                best = (rank, name)
    return best[1] if best else None


def _type_of(declared: str | None) -> str | None:
    """The named type of a declared argument type that takes one value (`DateTime!` ->
    `DateTime`); None for a list or nothing."""
    if declared is None or "[" in declared:
        return None
    return declared.rstrip("!")


def _rank(split: list[str], stem: list[str]) -> int | None:
    if len(split) != len(stem) + 1:
        return None
    if split[: len(stem)] == stem and split[-1] in AT_OR_AFTER:
        return AT_OR_AFTER.index(split[-1])
    if split[1:] == stem and split[0] in PREFIXES:
        return AT_OR_AFTER.index(split[0])
    return None
