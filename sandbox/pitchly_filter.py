"""Pitchly's record filter grammar, evaluated server-side by the sandbox.

A filter is `{"conditions": [...], "logicalOperator": "and" | "or"}`; each condition is
`{"left": {"type": "field", "value": fieldId}, "comparison": {"operator": op},
"right": {"type": "input", "value": v[, "currency": code]}}` or a condition group
`{"conditionGroup": [...conditions], "logicalOperator": "and" | "or"}` (groups may nest).
`left.value` may be `referenceFieldId.subFieldId` (one dot at most): the condition applies to the
referenced record's field (any referenced record, for a reference multiple field).

Operators by field type (the doc's lists; dates, yes/no and lookups are the sandbox's choice):

- text, multi-line text: contains, does-not-contain, is, is-not, starts-with, ends-with,
  is-empty, has-any-value (case-insensitive)
- number: is, is-not, is-more-than, is-less-than, is-empty, has-any-value
- currency: as number; `right.currency` is required and must match the record's currency
- dropdown: has-any-of, is, has-none-of, is-empty, has-any-value
- dropdown multiple, reference multiple: has-any-of, has-all-of, is, has-none-of, is-empty,
  has-any-value (reference values are record ids)
- reference: is, is-not, is-empty, has-any-value (a record id)
- attachment: is-empty, has-any-value
- formula: the text operators plus is-more-than, is-less-than
- yes/no: is, is-not, is-empty, has-any-value (`true`/`false` or "Yes"/"No")
- date, created at, updated at: is, is-not, is-before, is-after, is-on-or-before,
  is-on-or-after (is-less-than / is-more-than are accepted as is-before / is-after),
  is-empty, has-any-value; `right.value` is an ISO date (compared by UTC day) or an ISO
  datetime with offset (compared by instant)
- lookup: the operators of the looked-up field's type
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lxp_sync_sandbox.base import parse_iso
from lxp_sync_sandbox.pitchly_data import (
    ATTACHMENT,
    BOOLEAN,
    CREATED_AT,
    CURRENCY,
    DATE,
    DROPDOWN,
    DROPDOWN_MULTIPLE,
    FORMULA,
    LOOKUP,
    MULTILINE_TEXT,
    NUMBER,
    REFERENCE,
    REFERENCE_MULTIPLE,
    TEXT,
    UPDATED_AT,
    Field,
    Record,
    Table,
    format_number,
    iso_ms,
    referenced_ids,
)

Predicate = Callable[[Record], bool]
ValueTest = Callable[[Any], bool]

EMPTY_OPS = ("is-empty", "has-any-value")
TEXT_OPS = ("contains", "does-not-contain", "is", "is-not", "starts-with", "ends-with", *EMPTY_OPS)
NUMBER_OPS = ("is", "is-not", "is-more-than", "is-less-than", *EMPTY_OPS)
DROPDOWN_OPS = ("has-any-of", "is", "has-none-of", *EMPTY_OPS)
MULTIPLE_OPS = ("has-any-of", "has-all-of", "is", "has-none-of", *EMPTY_OPS)
DATE_OPS = (
    "is",
    "is-not",
    "is-before",
    "is-after",
    "is-on-or-before",
    "is-on-or-after",
    "is-less-than",
    "is-more-than",
    *EMPTY_OPS,
)
OPERATORS: dict[str, tuple[str, ...]] = {
    TEXT: TEXT_OPS,
    MULTILINE_TEXT: TEXT_OPS,
    NUMBER: NUMBER_OPS,
    CURRENCY: NUMBER_OPS,
    DROPDOWN: DROPDOWN_OPS,
    DROPDOWN_MULTIPLE: MULTIPLE_OPS,
    REFERENCE_MULTIPLE: MULTIPLE_OPS,
    REFERENCE: ("is", "is-not", *EMPTY_OPS),
    ATTACHMENT: EMPTY_OPS,
    FORMULA: (*TEXT_OPS, "is-more-than", "is-less-than"),
    BOOLEAN: ("is", "is-not", *EMPTY_OPS),
    DATE: DATE_OPS,
    CREATED_AT: DATE_OPS,
    UPDATED_AT: DATE_OPS,
}


class FilterError(ValueError):
    """The filter does not follow the grammar; the API answers BAD_USER_INPUT."""


def compile_filter(spec: Any, table: Table) -> Predicate | None:
    """A predicate over `table`'s records, or None when the filter selects everything."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("conditions"), list):
        raise FilterError("A filter must be an object with a 'conditions' list.")
    predicate = _group(spec["conditions"], spec.get("logicalOperator"), table)
    return predicate if spec["conditions"] else None


def _group(items: list[Any], operator: Any, table: Table) -> Predicate:
    logical = "and" if operator is None else str(operator).lower()
    if logical not in ("and", "or"):
        raise FilterError(f"logicalOperator must be 'and' or 'or', not {operator!r}.")
    predicates = [_node(item, table) for item in items]
    if not predicates:
        return lambda rec: True
    if len(predicates) == 1:
        return predicates[0]
    if logical == "and":
        return lambda rec: all(p(rec) for p in predicates)
    return lambda rec: any(p(rec) for p in predicates)


def _node(item: Any, table: Table) -> Predicate:
    if not isinstance(item, dict):
        raise FilterError("Each condition must be an object.")
    if "conditionGroup" in item:
        group = item["conditionGroup"]
        if not isinstance(group, list):
            raise FilterError("conditionGroup must be a list of conditions.")
        return _group(group, item.get("logicalOperator"), table)
    return _condition(item, table)


def _condition(item: dict[str, Any], table: Table) -> Predicate:
    left, comparison, right = item.get("left"), item.get("comparison"), item.get("right") or {}
    if (
        not isinstance(left, dict)
        or left.get("type") != "field"
        or not isinstance(left.get("value"), str)
    ):
        raise FilterError('A condition\'s \'left\' must be {"type": "field", "value": fieldId}.')
    if not isinstance(comparison, dict) or not isinstance(comparison.get("operator"), str):
        raise FilterError("A condition's 'comparison' must be {\"operator\": ...}.")
    if not isinstance(right, dict):
        raise FilterError("A condition's 'right' must be an object.")
    operator = comparison["operator"]
    path = left["value"].split(".")
    if len(path) > 2:
        raise FilterError("Reference subfield filters cannot follow a reference of a reference.")
    if len(path) == 1:
        f = _field(table, path[0])
        if f.type == CREATED_AT and table.org.created_at_filter != "applied":
            if table.org.created_at_filter == "refused":
                raise FilterError(f"Field {f.id} (Created At) cannot be filtered on.")
            return lambda rec: True
        test = _value_test(table, f, operator, right)
        get = _getter(table, f)
        return lambda rec: test(get(rec))
    ref_field = _field(table, path[0])
    if ref_field.type not in (REFERENCE, REFERENCE_MULTIPLE):
        raise FilterError(f"Field {ref_field.id} is not a reference field; it has no subfields.")
    target = table.org.tables[ref_field.reference_table_id or ""]
    sub = _field(target, path[1])
    test = _value_test(target, sub, operator, right)
    get_ids, get_sub = _getter(table, ref_field), _getter(target, sub)
    records = target.records

    def on_reference(rec: Record) -> bool:
        ids = get_ids(rec)
        ids = (ids,) if isinstance(ids, str) else ids or ()
        refs = [records[i] for i in ids if i in records]
        if not refs:
            return test(None)
        return any(test(get_sub(r)) for r in refs)

    return on_reference


def _getter(table: Table, f: Field) -> Callable[[Record], Any]:
    """Record -> what the tests compare: the entry's `val` (a currency as (val, currency)),
    epoch ms for Created / Updated At, None when empty."""
    if f.type in (CREATED_AT, UPDATED_AT):
        return lambda rec: table.value(rec, f)
    kind = table.lookup_target(f)[1].type if f.type == LOOKUP else f.type
    slot = f.slot
    if kind == CURRENCY:

        def currency(rec: Record) -> Any:
            found = rec.values[slot]
            return None if found is None else (found["value"]["val"], found["value"]["currency"])

        return currency

    if kind in (REFERENCE, REFERENCE_MULTIPLE):  # filters name records as `wks...|rec...`

        def ids(rec: Record) -> Any:
            found = rec.values[slot]
            return None if found is None else referenced_ids(found["value"]["val"])

        return ids

    def val(rec: Record) -> Any:
        found = rec.values[slot]
        return None if found is None else found["value"]["val"]

    return val


def _field(table: Table, fid: str) -> Field:
    try:
        return table.field(fid)
    except KeyError:
        raise FilterError(f"Unknown field {fid!r} in table {table.id}.") from None


def _is_empty(raw: Any) -> bool:
    return raw is None or raw == "" or raw == [] or raw == ()


def _value_test(table: Table, f: Field, operator: str, right: dict[str, Any]) -> ValueTest:
    """A test of what `_getter` returns for `f`."""
    kind = f.type
    if kind == LOOKUP:
        target, target_field = table.lookup_target(f)
        return _value_test(target, target_field, operator, right)
    allowed = OPERATORS.get(kind, EMPTY_OPS)
    if operator not in allowed:
        raise FilterError(
            f"Operator {operator!r} is not supported for {kind} fields "
            f"(supported: {', '.join(allowed)})."
        )
    if operator == "is-empty":
        return _is_empty
    if operator == "has-any-value":
        return lambda raw: not _is_empty(raw)
    if "value" not in right:
        raise FilterError(f"Operator {operator!r} needs right.value.")
    value = right["value"]
    if kind in (TEXT, MULTILINE_TEXT):
        return _text_test(operator, value, str)
    if kind == FORMULA:
        if operator in ("is-more-than", "is-less-than"):
            return _number_test(operator, _number(value))
        return _text_test(
            operator, value, lambda raw: raw if isinstance(raw, str) else format_number(raw)
        )
    if kind == NUMBER:
        return _number_test(operator, _number(value))
    if kind == CURRENCY:
        currency = right.get("currency")
        if not isinstance(currency, str):
            raise FilterError('A currency condition needs right.currency (e.g. "USD").')
        amount_test = _number_test(operator, _number(value))
        return lambda raw: raw is not None and raw[1] == currency and amount_test(raw[0])
    if kind == BOOLEAN:
        wanted = _boolean(value)
        if operator == "is":
            return lambda raw: raw is wanted
        return lambda raw: raw is not wanted
    if kind in (REFERENCE, REFERENCE_MULTIPLE) and isinstance(value, str | list):
        value = referenced_ids(value)
    if kind == REFERENCE:
        if operator == "is":
            return lambda raw: raw == value
        return lambda raw: raw != value
    if kind in (DROPDOWN, DROPDOWN_MULTIPLE, REFERENCE_MULTIPLE):
        return _set_test(kind, operator, value)
    if kind in (DATE, CREATED_AT, UPDATED_AT):
        return _date_test(operator, value)
    raise FilterError(f"Operator {operator!r} is not supported for {kind} fields.")


def _text_test(operator: str, value: Any, as_text: Callable[[Any], str]) -> ValueTest:
    needle = str(value).lower()

    def text(raw: Any) -> str:
        return "" if raw is None else as_text(raw).lower()

    tests: dict[str, ValueTest] = {
        "contains": lambda raw: needle in text(raw),
        "does-not-contain": lambda raw: needle not in text(raw),
        "is": lambda raw: text(raw) == needle,
        "is-not": lambda raw: text(raw) != needle,
        "starts-with": lambda raw: text(raw).startswith(needle),
        "ends-with": lambda raw: text(raw).endswith(needle),
    }
    return tests[operator]


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise FilterError(f"Expected a number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FilterError(f"Expected a number, got {value!r}.") from None


def _number_test(operator: str, wanted: float) -> ValueTest:
    tests: dict[str, ValueTest] = {
        "is": lambda raw: raw is not None and raw == wanted,
        "is-not": lambda raw: raw is None or raw != wanted,
        "is-more-than": lambda raw: raw is not None and raw > wanted,
        "is-less-than": lambda raw: raw is not None and raw < wanted,
    }
    return tests[operator]


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("yes", "true"):
        return True
    if text in ("no", "false"):
        return False
    raise FilterError(f"Expected true/false or Yes/No, got {value!r}.")


def _set_test(kind: str, operator: str, value: Any) -> ValueTest:
    wanted = {value} if isinstance(value, str) else set(value) if isinstance(value, list) else None
    if wanted is None or not all(isinstance(v, str) for v in wanted):
        raise FilterError(f"Operator {operator!r} needs a list of values.")

    def values(raw: Any) -> set[str]:
        if raw is None:
            return set()
        return {raw} if kind == DROPDOWN else set(raw)

    tests: dict[str, ValueTest] = {
        "has-any-of": lambda raw: bool(values(raw) & wanted),
        "has-all-of": lambda raw: wanted <= values(raw),
        "is": lambda raw: values(raw) == wanted,
        "has-none-of": lambda raw: not values(raw) & wanted,
    }
    return tests[operator]


def _date_test(operator: str, value: Any) -> ValueTest:
    """Dates are ISO strings (`val`), Created / Updated At epoch ms (or ISO, through a lookup)."""
    if not isinstance(value, str):
        raise FilterError(f"Expected an ISO date or datetime, got {value!r}.")
    by_day = len(value) == 10
    try:
        moment = parse_iso(value + "T00:00:00Z" if by_day else value)
    except ValueError:
        raise FilterError(f"Expected an ISO date or datetime, got {value!r}.") from None
    if by_day:
        wanted: Any = value

        def key(raw: Any) -> Any:
            return raw[:10] if isinstance(raw, str) else iso_ms(raw)[:10]
    else:
        wanted = (moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000

        def key(raw: Any) -> Any:
            return parse_iso(raw).timestamp() * 1000 if isinstance(raw, str) else raw

    compare: dict[str, Callable[[Any], bool]] = {
        "is": lambda k: k == wanted,
        "is-not": lambda k: k != wanted,
        "is-before": lambda k: k < wanted,
        "is-less-than": lambda k: k < wanted,
        "is-after": lambda k: k > wanted,
        "is-more-than": lambda k: k > wanted,
        "is-on-or-before": lambda k: k <= wanted,
        "is-on-or-after": lambda k: k >= wanted,
    }
    check = compare[operator]
    if operator == "is-not":
        return lambda raw: raw is None or check(key(raw))
    return lambda raw: raw is not None and check(key(raw))
