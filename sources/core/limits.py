"""Page sizes an API refuses: lowered to the limit the refusal names, remembered for the run.

The documents disagree on limits (a PlusPlus guide says 300 records a query, a newer one 150),
and a tenant may be configured lower still. A refusal that is about the page size (graphene's
``Requesting 300 records on the `events` connection exceeds the `first` limit of 150 records.``,
Pluvo's `first must be <= 50`, a REST 400 with a field error on `page_size`) lowers the size to
the number it names, or halves it when it names none; the page is asked for again and the run
goes on. One `PageSizes` serves a source: the size a resource learnt is its own, and the lowest
size learnt becomes the starting size of the resources that have not asked yet (they usually
share the server's limit), so that a run sends each refused size at most once.
"""

from __future__ import annotations

import logging
import re
import threading

log = logging.getLogger("lxp_sync")

# words of a refusal about a size; a message about the page argument without one is another error
_REFUSAL = re.compile(
    r"exceed|limit|maximum|\bmax\b|at most|<=|less than or equal|too (?:many|large|big)|"
    r"no more than|up to",
    re.IGNORECASE,
)
# the limit a refusal names, in the forms servers write it
_LIMITS = (
    re.compile(r"limit (?:of|is) (\d+)", re.IGNORECASE),
    re.compile(r"<=\s*(\d+)"),
    re.compile(r"less than or equal to (\d+)", re.IGNORECASE),
    re.compile(
        r"(?:at most|maximum(?: of| is)?|max(?:imum)? (?:is|of)|no more than|up to) (\d+)",
        re.IGNORECASE,
    ),  # fmt: skip
)


def refused_limit(message: str, argument: str) -> int | None:
    """The page size a refusal allows: the number it names, 0 when it names none, None when
    `message` is no refusal of the page-size `argument` (`first`, `page_size`, ...)."""
    if not re.search(rf"(?<![\w]){re.escape(argument)}(?![\w])", message):
        return None
    if not _REFUSAL.search(message):
        return None
    for pattern in _LIMITS:
        match = pattern.search(message)
        if match:
            return int(match.group(1))
    return 0


class PageSizes:
    """The page size of each resource of a source, lowered when the API refuses one."""

    def __init__(self, size: int) -> None:
        self.default = max(1, size)
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def size(self, key: str) -> int:
        """The size `key` pages by: what it learnt, else the lowest any resource learnt."""
        with self._lock:
            return self._sizes.get(key, self.default)

    def lower(self, key: str, refused: int, message: str, argument: str) -> int | None:
        """The size to ask for after the API refused `refused` rows with `message`; None when
        the message is not a page-size refusal, or the size cannot go lower."""
        limit = refused_limit(message, argument)
        if limit is None:
            return None
        new = limit if 0 < limit < refused else refused // 2
        if new < 1:
            return None
        with self._lock:
            current = self._sizes.get(key, self.default)
            if current < refused:  # another page of this resource learnt it meanwhile
                return current
            self._sizes[key] = new
            first_time = new < self.default
            self.default = min(self.default, new)
        if first_time:
            log.warning(
                "%s: the API refused %d rows a page (%s); paging by %d from now on "
                "(set `page_size` to %d to skip the refused request)",
                key,
                refused,
                message,
                new,
                new,
            )
        else:
            log.info("%s: paging by %d, the API's limit for it", key, new)
        return new
