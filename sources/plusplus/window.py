"""The refresh window's row hashes, kept small: 24 bytes a row in memory, 32 in the state.

Assignments and enrollments change state without a timestamp, so every run reads again the rows
created in the last `refresh_window_days` and drops those whose content did not change since
the last run. For that the resource state remembers, for each row inside the window, a 64-bit
hash of its key, a 64-bit hash of its content and its cursor (as microseconds). They live in
one sorted numpy array (looked up a page at a time) and go to the state as base64 text. The
first version kept `{public_id: [cursor text, hex hash]}`: about 250 bytes a row in memory and
90 in the state, for as many rows as a busy tenant creates in two weeks; that form is still read.

A key hash that collides cannot lose a change: a row is dropped only when the hash of its key
and the hash of its content both equal what the last run stored for a row.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from lxp_sync.sources.core.paging import parse_iso

ENTRY = np.dtype([("key", "<i8"), ("digest", "<i8"), ("moment", "<i8")])
FORMAT = 2
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def key_hash(key: Any) -> int:
    return _hash64(str(key).encode())


def content_hash(row: Mapping[str, Any]) -> int:
    return _hash64(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))


def microseconds(value: Any) -> int:
    moment = value if isinstance(value, datetime) else parse_iso(str(value))
    return (moment - EPOCH) // MICROSECOND


class WindowHashes:
    """The hashes of the rows inside the window: one entry per key, sorted by key hash."""

    def __init__(self, entries: np.ndarray | None = None) -> None:
        self.entries = np.empty(0, ENTRY) if entries is None else entries

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_state(cls, value: Any) -> WindowHashes:
        """What a run stored (this form or the first one), or nothing."""
        if isinstance(value, Mapping) and value.get("v") == FORMAT:
            raw = base64.b64decode(value.get("entries") or "")
            return cls(np.frombuffer(raw, ENTRY).copy())
        if isinstance(value, Mapping) and value:  # {public_id: [cursor text, hex hash]}
            entries = np.array(
                [
                    (key_hash(key), int.from_bytes(bytes.fromhex(digest), "big", signed=True),
                     microseconds(cursor))
                    for key, (cursor, digest) in value.items()
                ],
                ENTRY,
            )  # fmt: skip
            return cls(_latest_per_key([entries]))
        return cls()

    def to_state(self) -> dict[str, Any]:
        return {"v": FORMAT, "entries": base64.b64encode(self.entries.tobytes()).decode()}

    def unchanged(self, keys: np.ndarray, digests: np.ndarray) -> np.ndarray:
        """For each (key hash, content hash): whether this window holds exactly it."""
        known = self.entries
        if not len(known) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        at = np.searchsorted(known["key"], keys)
        np.minimum(at, len(known) - 1, out=at)
        return (known["key"][at] == keys) & (known["digest"][at] == digests)

    def updated(self, batches: Iterable[np.ndarray], start: int | None) -> WindowHashes:
        """These hashes with `batches` (later ones win for a key), less what lies before `start`."""
        merged = _latest_per_key([self.entries, *batches])
        if start is not None:
            merged = merged[merged["moment"] >= start]
        return WindowHashes(merged)


def _latest_per_key(parts: list[np.ndarray]) -> np.ndarray:
    """One entry per key hash, the last one given, sorted by key hash."""
    joined = np.concatenate(parts) if parts else np.empty(0, ENTRY)
    if not len(joined):
        return joined
    reverse = joined[::-1]
    _, first = np.unique(reverse["key"], return_index=True)  # the last of each key, by key
    return reverse[first]


def entries_of(rows: list[dict[str, Any]], key: str, cursor: str) -> tuple[np.ndarray, np.ndarray]:
    """(each row's key hash and content hash, as entries; which rows have a cursor value)."""
    entries = np.empty(len(rows), ENTRY)
    with_cursor = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        value = row.get(cursor)
        moment = microseconds(value) if value else 0
        entries[i] = (key_hash(row[key]), content_hash(row), moment)
        with_cursor[i] = bool(value)
    return entries, with_cursor
