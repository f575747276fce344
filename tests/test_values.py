"""The core's value rules: exact JSON numbers and decimal columns."""

from __future__ import annotations

import logging
from decimal import Decimal

import pyarrow as pa
import pytest

from lxp_sync.sources.core.numbers import DecimalColumn, ValueOutOfRangeError, loads_exact

# --- numbers --------------------------------------------------------------------------------------


def test_json_numbers_keep_the_digits_of_their_text() -> None:
    body = loads_exact(
        b'{"a": 9007199254740993, "b": 0.12345678901234567890, "c": 1.5, '
        b'"d": -18446744073709551617, "e": 12345678.123456789012}'
    )
    assert body["a"] == 9007199254740993 and isinstance(body["a"], int)
    assert body["b"] == Decimal("0.12345678901234567890")
    assert body["c"] == Decimal("1.5")
    assert body["d"] == -18446744073709551617
    assert body["e"] == Decimal("12345678.123456789012")
    # short numbers take orjson's path: a double prints back as its text
    assert loads_exact(b'{"x": 2304.5, "y": 7}') == {"x": 2304.5, "y": 7}


def test_a_decimal_column_is_exact_rounds_past_18_places_and_refuses_overflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    column = DecimalColumn("growth", "pitchly.sales__companies")
    exact = [9007199254740993, 2304.5, Decimal("-73.786976294838206464"), None, True, "12"]
    assert column.array(exact).to_pylist() == [
        Decimal(9007199254740993),
        Decimal("2304.5"),
        Decimal("-73.786976294838206464"),
        None,
        None,  # a boolean is not a number
        None,  # nor is a text
    ]
    assert column.array([]).type == pa.decimal128(38, 18)

    with caplog.at_level(logging.WARNING, logger="lxp_sync"):
        rounded = column.array([3.3333333333333335e-05, Decimal("1.0000000000000000005")])
    assert rounded.to_pylist() == [Decimal("0.000033333333333333"), Decimal("1")]
    assert column.rounded == 2
    assert "growth: 2 value(s) had digits past the 18th decimal place" in caplog.text

    with pytest.raises(ValueOutOfRangeError) as error:
        column.array([1, Decimal("1e20")], keys=["wks|rec1", "wks|rec2"])
    line = str(error.value)
    assert line.startswith("pitchly.sales__companies: the number 1E+20 in column growth")
    assert "(record wks|rec2)" in line and "decimal(38,18)" in line
    assert column.array([Decimal("99999999999999999999.999999999999999999")]).to_pylist() == [
        Decimal("99999999999999999999.999999999999999999")
    ]
