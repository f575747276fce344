"""One reading of timestamps for every source: ISO-8601 texts as UTC instants, whatever the form.

The rules (README: "Timestamps"): an offset or `Z` is applied; a text without one (naive) is
UTC; more than six fractional digits are truncated to microseconds (the warehouse types hold no
more); a date alone is midnight UTC. Arrow casts the common case (every text with an offset,
at most six fractional digits) in one vectorized step; anything else is read value by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def parse_iso(text: str) -> datetime:
    """An ISO-8601 text as an aware datetime, by the rules above (ValueError if it is none).

    Python's own parser reads every ISO form (`Z`, offsets, basic format, `,` fractions, a date
    alone) and drops fractional digits past the sixth.
    """
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_datetimes(rows: list[dict[str, Any]], *field_names: str, strict: bool = True) -> None:
    """Turn ISO-8601 fields into aware datetimes, in place.

    ISO texts in different offsets do not sort as the moments they are, so a cursor is compared
    (by dlt's incremental) and kept in state as a datetime, never as text: there a text that is
    no timestamp fails (ValueError). With `strict=False` such a text stays as it is (dlt then
    keeps it in `<field>__v_text`) and nothing is lost.
    """
    for row in rows:
        for field_name in field_names:
            value = row.get(field_name)
            if isinstance(value, str):
                try:
                    row[field_name] = parse_iso(value)
                except ValueError:
                    if strict:
                        raise


def timestamp_array(
    values: Sequence[Any] | pa.Array | pa.ChunkedArray,
) -> tuple[pa.Array, list[int]]:
    """`values` (texts, datetimes, None) as a `timestamp[us, UTC]` array, and the positions of
    values that are no timestamp (NULL in the array: the caller decides what that means)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        texts = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        if pa.types.is_timestamp(texts.type):
            return texts.cast(TIMESTAMP), []
        return texts.cast(pa.string()).cast(TIMESTAMP), []
    except _ARROW_ERRORS:
        pass
    items = values.to_pylist() if isinstance(values, pa.Array) else list(values)
    moments: list[datetime | None] = []
    bad: list[int] = []
    for i, value in enumerate(items):
        moment = _moment(value)
        if moment is None and value not in (None, ""):
            bad.append(i)
        moments.append(moment)
    return pa.array(moments, TIMESTAMP), bad


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None
