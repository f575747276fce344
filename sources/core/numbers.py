"""Exact numbers: JSON decoded without losing digits, and decimal columns that hold them.

orjson decodes integers exactly (64-bit) but every number with a fraction or an exponent as a
double, which keeps 15 significant digits for sure and 17 at best. An answer whose text has a
number with 16 or more digits is decoded again with the standard library, fractions as
`Decimal`, so that the digits the API sent reach the warehouse. Texts with 15 digits or fewer
(almost every answer) keep orjson's speed: such a double prints back as the same number.
"""

from __future__ import annotations

import json
import logging
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa

from lxp_sync.sources.core.errors import LxpSyncError

log = logging.getLogger("lxp_sync")

# 16 or more digits in a row (decimal points among them allowed): more than a double holds.
# Digits inside strings match too; that only costs the slower decoder, never a digit.
LONG_DIGITS = 16
# every digit as "0", every other byte as " ", points dropped: a run of 16 digits with points
# among them (`[0-9](?:\.?[0-9]){15}`, and any run such a pattern finds) becomes 16 "0"s in a
# row. Two C passes (`translate`, `in`): a regular expression took 6 times orjson's own time
# on Pitchly's pages of 1,000 records (61 against 11 ms for 1.4 MB).
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_RUN = b"0" * LONG_DIGITS

# Decimal columns: 20 digits before the point (every 64-bit integer) and 18 after.
DECIMAL_PRECISION = 38
DECIMAL_SCALE = 18
_CONTEXT = Context(prec=DECIMAL_PRECISION + 40, rounding=ROUND_HALF_EVEN)


def loads_exact(content: bytes) -> Any:
    """JSON with every number as exact as its text: ints as ints, long fractions as `Decimal`."""
    if not has_long_number(content):
        return orjson.loads(content)
    return json.loads(content, parse_float=Decimal)


def has_long_number(content: bytes) -> bool:
    """Whether `content` may hold a number with more digits than a double keeps (it holds 16
    digits in a row, points among them allowed)."""
    return _RUN in content.translate(_DIGITS, b".")


class ValueOutOfRangeError(LxpSyncError):
    """A number too large for its column's type: loading it would change it."""

    hint = "Report it: the column's type cannot hold this value, and nothing was loaded"


def as_decimal(value: Any) -> Decimal | None:
    """A JSON number (int, float or `Decimal`) as the decimal its text says; else None (a text,
    even one that reads as a number, is not a number: a formula's text result stays text).

    A float prints as its shortest round-trip text, which is the API's text when that had at
    most 15 digits (`loads_exact` keeps longer ones as `Decimal`). Anything else is None.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        return None
    return number if number.is_finite() else None


def decimal_text(value: Any) -> Decimal | None:
    """A GraphQL `Decimal` scalar's value as the decimal it says: graphene sends its text
    (`"12.50"`), another server may send a JSON number; None for null. Anything else (a text
    that is no finite number) is a ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        return number
    number = as_decimal(value)
    if number is None:
        raise ValueError(f"{value!r} is not a decimal number")
    return number


class DecimalColumn:
    """Values of one `decimal(38, scale)` column as Arrow, exactly; a number with more than
    `38 - scale` digits before the point fails in one line; digits past the last decimal place
    are rounded half-even (a warning says how many, once per column), or with `rounds` False
    fail in one line too."""

    def __init__(
        self,
        column: str,
        resource: str | None = None,
        *,
        scale: int = DECIMAL_SCALE,
        rounds: bool = True,
    ) -> None:
        self.column = column
        self.resource = resource
        self.scale = scale
        self.rounds = rounds
        self.arrow_type = pa.decimal128(DECIMAL_PRECISION, scale)
        self._quantum = Decimal(1).scaleb(-scale)
        self.rounded = 0
        self._warned = False

    def fit(self, value: Any, key: Any = None) -> Decimal | None:
        """A `Decimal` scalar's value (`decimal_text`) as the column holds it, every digit kept
        (as many decimal places as the column has, so that it writes exactly)."""
        try:
            number = decimal_text(value)
        except ValueError as error:
            where = f" (record {key})" if key is not None else ""
            raise ValueOutOfRangeError(
                f"column {self.column}{where}: {error}", resource=self.resource
            ) from None
        return None if number is None else self._fit(number, key)

    def array(self, values: list[Any], keys: list[Any] | None = None) -> pa.Array:
        """`values` as a decimal array; `keys` (record ids) name a value that cannot fit."""
        numbers = [as_decimal(value) for value in values]
        try:
            # exact or it raises: Arrow refuses to drop a digit or overflow
            return pa.array(numbers, self.arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        fitted = []
        for i, number in enumerate(numbers):
            if number is not None:
                number = self._fit(number, None if keys is None else keys[i])
            fitted.append(number)
        self._warn()
        return pa.array(fitted, self.arrow_type)

    def _fit(self, number: Decimal, key: Any) -> Decimal:
        where = f" (record {key})" if key is not None else ""
        holds = f"decimal({DECIMAL_PRECISION},{self.scale})"
        if number.adjusted() >= DECIMAL_PRECISION - self.scale:
            raise ValueOutOfRangeError(
                f"the number {number} in column {self.column}{where} has more than "
                f"{DECIMAL_PRECISION - self.scale} digits before the decimal point, more "
                f"than {holds} holds",
                resource=self.resource,
            )
        fitted = number.quantize(self._quantum, context=_CONTEXT)
        if fitted != number:
            if not self.rounds:
                raise ValueOutOfRangeError(
                    f"the number {number} in column {self.column}{where} has more than "
                    f"{self.scale} decimal places, more than {holds} holds",
                    resource=self.resource,
                )
            self.rounded += 1
        return fitted

    def _warn(self) -> None:
        if self.rounded and not self._warned:
            self._warned = True
            log.warning(
                "%s: %s: %d value(s) had digits past the %dth decimal place; rounded half-even",
                self.resource or "",
                self.column,
                self.rounded,
                self.scale,
            )


def decimal_hint(scale: int = DECIMAL_SCALE) -> dict[str, Any]:
    """The dlt column hint of a decimal column (a fresh dict: dlt writes into hints)."""
    return {
        "data_type": "decimal",
        "precision": DECIMAL_PRECISION,
        "scale": scale,
        "nullable": True,
    }


# A GraphQL `Decimal` field's column: dlt's own default decimal, `decimal(38,9)` on every
# warehouse, which tables loaded before this was declared already have (a wider scale would be
# cut back to 9 places by their existing column, silently): a value with more places fails.
GRAPHQL_DECIMAL_SCALE = 9
