"""The Pitchly sandbox's organization: workspaces, tables, field definitions and records.

The structure (workspaces, tables, fields) is built at once; a table's records are generated
on its first use, deterministically from the seed. A record holds, for each field slot, the
entry the API returns (`{"fieldId", "value", "stringValue"}`) or None when it has no value.
Entries are shared between records where the value is the same (drawn from a per-field pool),
which keeps a million records cheap to build and to hold. Created At / Updated At entries are
made when a record is serialized, from the record's own timestamps.
See `sandbox/pitchly.py` for the value shapes and the choices made where the doc is silent.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from lxp_sync_sandbox.base import EPOCH, now

ORGANIZATION_ID = "org_sandbox"

TEXT = "text"
MULTILINE_TEXT = "multilineText"
NUMBER = "number"
BOOLEAN = "boolean"
DROPDOWN = "dropdown"
DROPDOWN_MULTIPLE = "dropdownMultiple"
DATE = "date"
CURRENCY = "currency"
ATTACHMENT = "attachment"
REFERENCE = "reference"
REFERENCE_MULTIPLE = "referenceMultiple"
LOOKUP = "lookup"
CREATED_AT = "createdAt"
UPDATED_AT = "updatedAt"
FORMULA = "formula"

FIELD_TYPES = (TEXT, MULTILINE_TEXT, NUMBER, BOOLEAN, DROPDOWN, DROPDOWN_MULTIPLE, DATE)
FIELD_TYPES += (CURRENCY, ATTACHMENT, REFERENCE, REFERENCE_MULTIPLE, LOOKUP, CREATED_AT)
FIELD_TYPES += (UPDATED_AT, FORMULA)
COMPUTED_TYPES = frozenset({LOOKUP, CREATED_AT, UPDATED_AT, FORMULA})
STAMP_TYPES = frozenset({CREATED_AT, UPDATED_AT})
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF "}

# Meteor's Random.id alphabet: Pitchly ids look like "wksdMHiQmzTt6Dhf9N77" (prefix + 17 chars).
METEOR_CHARS = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
_TRIPLES = [a + b + c for a in METEOR_CHARS for b in METEOR_CHARS for c in METEOR_CHARS]
_PAIRS = [a + b for a in METEOR_CHARS for b in METEOR_CHARS]

_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MS = int((EPOCH - _UNIX).total_seconds() * 1000)
_HISTORY_MS = 3 * 365 * 86400 * 1000  # generated records were created within 3 years before EPOCH
_FIRST_DAY = date(2010, 1, 1).toordinal()
_LAST_DAY = date(2025, 12, 31).toordinal()
POOL_SIZE = 4096  # distinct values per field at most, for generated records


def meteor_id(rng: random.Random, prefix: str = "") -> str:
    r, n3, n2 = rng.random, len(_TRIPLES), len(_PAIRS)
    t = _TRIPLES
    return f"{prefix}{t[int(r() * n3)]}{t[int(r() * n3)]}{t[int(r() * n3)]}{t[int(r() * n3)]}{t[int(r() * n3)]}{_PAIRS[int(r() * n2)]}"


def now_ms() -> int:
    return int((now() - _UNIX).total_seconds() * 1000)


def iso_ms(ms: int) -> str:
    """`2025-06-01T12:34:56.789Z`: how Pitchly (a MongoDB app) writes instants."""
    return stamp_strings(ms)[0]


_TWO = [f"{i:02d}" for i in range(100)]
_THREE = [f"{i:03d}" for i in range(1000)]
_DAYS: dict[int, tuple[str, str]] = {}


def stamp_strings(ms: int) -> tuple[str, str]:
    """(ISO value, display string `06/01/2025 12:34 PM`) of an instant (by table lookups:
    a million of these are made for a large sync)."""
    day, rest = divmod(ms, 86_400_000)
    names = _DAYS.get(day)
    if names is None:
        t = time.gmtime(day * 86400)
        names = _DAYS[day] = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T",
            f"{t.tm_mon:02d}/{t.tm_mday:02d}/{t.tm_year:04d} ",
        )
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    two = _TWO
    iso = f"{names[0]}{two[hour]}:{two[minute]}:{two[second]}.{_THREE[millis]}Z"
    display = f"{names[1]}{two[hour % 12 or 12]}:{two[minute]} {'AM' if hour < 12 else 'PM'}"
    return iso, display


def format_number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,f}".rstrip("0").rstrip(".")
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_currency(amount: int | float, code: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(code, code + " ")
    if isinstance(amount, int) or code == "JPY":
        return f"{symbol}{round(amount):,}"
    return f"{symbol}{amount:,.2f}"


# --- value vocabularies -------------------------------------------------------------------

FIRST_NAMES = [
    "Jacob",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Ava",
    "Mia",
    "Lucas",
    "Sofía",
    "Zoë",
    "José",
    "Chloé",
    "Björn",
    "Ana",
    "Wei",
    "Yuki",
    "Priya",
    "Olumide",
    "Łukasz",
    "Søren",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "García",
    "Müller",
    "Nguyen",
    "Kowalski",
    "O'Brien",
    "Rossi",
    "Dubois",
    "Tanaka",
    "Ivanova",
    "Okafor",
    "Svensson",
    "Schäfer",
    "李",
    "Patel",
]
COMPANY_WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Müller",
    "Café Zürich",
    "Nordlicht",
    "北京科技",
    "東京データ",
    "Łódź Logistics",
    "Société Lumière",
    "Omaha Steel",
]
COMPANY_SUFFIXES = [
    "Inc.",
    "LLC",
    "GmbH",
    "Ltd",
    "S.A.",
    "AG",
    "Co.",
    "Holdings",
    "集团",
    "Partners",
]
PRODUCTS = ["Renewal", "Expansion", "Pilot", "Migration", "Audit", "Retainer", "Licence", "Upsell"]
SENTENCES = [
    "Met at the Omaha summit.", "Follow up in Q3.", "Budget approved by the CFO.",
    "See https://example.com/brief for the brief.", "Prefers e-mail over calls.",
    "Contract under review — legal has comments.", "Größere Bestellung erwartet.",
    "客户要求中文合同。", "Multiple stakeholders; decision by committee.", "🚀 Fast mover.",
]  # fmt: skip
CITIES = ["Lincoln", "Omaha", "Kearney", "Grand Island", "Zürich", "São Paulo", "Kraków", "上海"]
INDUSTRIES = ["Legal", "Finance", "Healthcare", "Energy", "Retail", "Technology", "Logistics"]
STAGES = ["Lead", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
COUNTRIES = ["United States", "Germany", "France", "Japan", "Brazil", "Poland", "China", "Nigeria"]
PRACTICE_AREAS = ["M&A", "Litigation", "IP", "Tax", "Employment", "Real Estate"]
JOB_TITLES = ["Partner", "Associate", "Paralegal", "Analyst", "Director", "Counsel"]
SKILLS = ["Negotiation", "Research", "Drafting", "Excel", "SQL", "Mandarin", "German", "Python"]
FILES = [("image/jpeg", "jpg"), ("image/png", "png"), ("application/pdf", "pdf"),
         ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx")]  # fmt: skip
SIZES = ["small", "medium", "large", "XL"]


# --- the model ----------------------------------------------------------------------------


@dataclass(eq=False)
class Field:
    """A field definition; `slot` indexes `Record.values`."""

    id: str
    name: str
    type: str
    table_id: str
    slot: int = -1
    primary: bool = False
    options: tuple[str, ...] | None = None
    currencies: tuple[str, ...] = ("USD",)
    reference_table_id: str | None = None
    lookup_reference_field_id: str | None = None
    lookup_field_id: str | None = None
    formula: str | None = None
    formula_fn: Callable[[list[Any]], Any] | None = None  # record values -> raw result
    depends_on: tuple[str, ...] = ()  # the fields a formula reads
    gen: str | None = None  # the generator kind for text and number fields
    empty: float = 0.0  # share of generated records without a value
    entry_cache: dict[Any, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The field as the API serializes it (every scalar of the `Field` type)."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "tableId": self.table_id,
            "isPrimary": self.primary,
            "isReadOnly": self.type in COMPUTED_TYPES,
            "options": list(self.options) if self.options is not None else None,
            "referenceTableId": self.reference_table_id,
            "lookupReferenceFieldId": self.lookup_reference_field_id,
            "lookupFieldId": self.lookup_field_id,
            "formula": self.formula,
        }


class Record:
    """One record: an API entry (or None) per field slot, and its timestamps (epoch ms)."""

    __slots__ = ("seq", "id", "created", "updated", "values")

    def __init__(self, seq: int, rid: str, created: int, updated: int, values: list[Any]) -> None:
        self.seq, self.id, self.created, self.updated = seq, rid, created, updated
        self.values = values


@dataclass(eq=False)
class Workspace:
    id: str
    name: str
    table_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "organizationId": ORGANIZATION_ID}


@dataclass
class Page:
    records: list[Record]
    total: int
    has_next: bool
    has_previous: bool
    start: int = 0  # the offset of the first record in the (filtered) list


# How a reference's `val` names the record: "space" as the field-type page's sample shows it
# (`wks... rec...`), "pipe" as record ids are everywhere else (`wks...|rec...`).
REFERENCE_FORMS = ("space", "pipe")


def referenced_ids(value: Any) -> Any:
    """The record id(s) in a reference `val`, whichever form it is served in, as `wks...|rec...`
    (Meteor ids hold no space, so the two forms map one to one)."""
    if isinstance(value, str):
        return value.replace(" ", "|")
    return [rid.replace(" ", "|") for rid in value or ()]


def entry(fid: str, value: Any, string_value: Any) -> dict[str, Any]:
    return {"fieldId": fid, "value": value, "stringValue": string_value}


class Table:
    """A Pitchly table; records are generated on first use."""

    def __init__(self, org: Organization, workspace_id: str, tid: str, name: str, ready: bool,
                 size: int) -> None:  # fmt: skip
        self.org, self.workspace_id, self.id, self.name = org, workspace_id, tid, name
        self.ready, self.size = ready, size
        self.fields: list[Field] = []
        self.by_id: dict[str, Field] = {}
        self.next_slot = 0
        self.next_seq = 0
        self._records: dict[str, Record] | None = None
        self._primary_slot: int | None = None
        self._computers: list[tuple[int, Callable[[list[Any]], Any]]] | None = None
        self._layout: tuple[Callable[[list[Any]], Any], list[tuple[int, str, str]]] | None = None
        self._ordered: tuple[list[Record], list[int]] | None = None
        self._cache_version = -1
        self.filter_cache: dict[bytes, tuple[list[Record], list[int]]] = {}
        self.node_cache: dict[Any, dict[str, bytes]] = {}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "workspaceId": self.workspace_id,
                "isReady": self.ready}  # fmt: skip

    # fields

    def add_field(self, f: Field) -> Field:
        f.slot = self.next_slot
        self.next_slot += 1
        self.fields.append(f)
        self.by_id[f.id] = f
        self._layout = self._primary_slot = self._computers = None
        self.node_cache.clear()
        if self._records is not None:
            for rec in self._records.values():
                rec.values.append(None)
        return f

    def remove_field(self, f: Field) -> None:
        self.fields.remove(f)
        del self.by_id[f.id]
        self._layout = self._primary_slot = self._computers = None
        self.node_cache.clear()

    def field(self, fid: str) -> Field:
        return self.by_id[fid]

    def field_named(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def primary(self) -> Field | None:
        return next((f for f in self.fields if f.primary), None)

    # records

    @property
    def records(self) -> dict[str, Record]:
        if self._records is None:
            self._records = {}
            self.org.generate(self)
        return self._records

    def ordered(self) -> tuple[list[Record], list[int]]:
        """Every record in creation order, and their sequence numbers (for cursors)."""
        self._check_caches()
        if self._ordered is None:
            rows = list(self.records.values())
            self._ordered = (rows, [r.seq for r in rows])
        return self._ordered

    def caches(self) -> tuple[dict[bytes, Any], dict[Any, dict[str, bytes]]]:
        """The filter-result cache (emptied by any change in the organization: filters can
        read other tables) and the serialized-record cache (emptied record by record)."""
        self._check_caches()
        return self.filter_cache, self.node_cache

    def _check_caches(self) -> None:
        if self._cache_version != self.org.version:
            self._cache_version = self.org.version
            self._ordered = None
            self.filter_cache.clear()

    def forget(self, ids: list[str]) -> None:
        """Drop changed records from the serialized-record cache."""
        for cache in self.node_cache.values():
            for rid in ids:
                cache.pop(rid, None)

    def entry(self, rec: Record, f: Field) -> dict[str, Any] | None:
        """The API entry of `f` in `rec`, or None when the record has no value."""
        if f.type == CREATED_AT:
            return self._stamp_entry(f.id, rec.created)
        if f.type == UPDATED_AT:
            return self._stamp_entry(f.id, rec.updated)
        return rec.values[f.slot]

    @staticmethod
    def _stamp_entry(fid: str, ms: int) -> dict[str, Any]:
        iso, display = stamp_strings(ms)
        return {"fieldId": fid, "value": {"val": iso}, "stringValue": display}

    def value(self, rec: Record, f: Field) -> Any:
        """What filters compare: the entry's `value` object; epoch ms for Created/Updated At."""
        if f.type == CREATED_AT:
            return rec.created
        if f.type == UPDATED_AT:
            return rec.updated
        found = rec.values[f.slot]
        return None if found is None else found["value"]

    def node(self, rec: Record) -> dict[str, Any]:
        """A record as the API serializes it: id, tableId, and its non-empty fields in order."""
        if self._layout is None:
            slots = [f.slot for f in self.fields]
            getter = itemgetter(*slots) if len(slots) > 1 else lambda v, s=slots: (v[s[0]],)
            stamps = [(i, f.type, f.id) for i, f in enumerate(self.fields) if f.type in STAMP_TYPES]
            self._layout = (getter, stamps)  # type: ignore[assignment]
        getter, stamps = self._layout  # type: ignore[misc]
        entries = getter(rec.values)
        if stamps:
            entries = list(entries)
            for i, kind, fid in stamps:
                entries[i] = self._stamp_entry(
                    fid, rec.created if kind == CREATED_AT else rec.updated
                )
        return {"id": rec.id, "tableId": self.id, "fields": [e for e in entries if e is not None]}

    def page(self, rows: list[Record], seqs: list[int], first: int | None, after: int | None,
             last: int | None, before: int | None) -> Page:  # fmt: skip
        """Relay slicing of `rows` (ordered by seq) by cursor positions."""
        start = bisect_right(seqs, after) if after is not None else 0
        end = bisect_left(seqs, before) if before is not None else len(rows)
        end = max(start, end)
        if first is not None:
            end = min(end, start + first)
        if last is not None:
            start = max(start, end - last)
        return Page(rows[start:end], len(rows), end < len(rows), start > 0, start)

    # values

    def display(self, rid: str) -> str | None:
        """How a reference to `rid` reads: the referenced record's primary field."""
        rec = self.records.get(rid)
        if self._primary_slot is None:
            primary = self.primary
            self._primary_slot = -1 if primary is None else primary.slot
        found = (
            rec.values[self._primary_slot] if rec is not None and self._primary_slot >= 0 else None
        )
        return None if found is None else found["stringValue"]

    def render(self, f: Field, raw: Any) -> dict[str, Any]:
        """The entry of a raw value, in the shapes of Pitchly's field-type page."""
        kind, fid = f.type, f.id
        if kind in (TEXT, MULTILINE_TEXT, DROPDOWN):
            return entry(fid, {"val": raw}, raw)
        if kind == NUMBER:
            return entry(fid, {"val": raw}, format_number(raw))
        if kind == BOOLEAN:
            return entry(fid, {"val": raw}, "Yes" if raw else "No")
        if kind == DROPDOWN_MULTIPLE:
            return entry(fid, {"val": list(raw)}, list(raw))
        if kind == DATE:
            return entry(fid, {"val": raw + "T00:00:00.000Z"}, f"{raw[5:7]}/{raw[8:10]}/{raw[:4]}")
        if kind == CURRENCY:
            value = {"val": raw[0], "currency": raw[1]}
            return entry(fid, value, format_currency(raw[0], raw[1]))
        if kind == ATTACHMENT:
            return entry(fid, {"val": raw[0], "type": raw[1], "size": raw[2]}, raw[0])
        target, served = self.org.tables[f.reference_table_id or ""], self.org.served_id
        if kind == REFERENCE:
            return entry(fid, {"val": served(raw)}, target.display(raw))
        if kind == REFERENCE_MULTIPLE:
            return entry(fid, {"val": [served(r) for r in raw]}, [target.display(r) for r in raw])
        raise ValueError(f"{kind} fields are computed, not stored")

    def reference_entry(self, f: Field, rid: str) -> dict[str, Any]:
        cached = f.entry_cache.get(rid)
        if cached is None:
            cached = f.entry_cache[rid] = self.render(f, rid)
        return cached

    def lookup_target(self, f: Field) -> tuple[Table, Field]:
        ref_field = self.field(f.lookup_reference_field_id or "")
        target = self.org.tables[ref_field.reference_table_id or ""]
        return target, target.field(f.lookup_field_id or "")

    def compute(self, rec: Record) -> None:
        """Set the record's lookup and formula entries from its other values."""
        if self._computers is None:
            self._computers = [(f.slot, self._computer(f)) for f in self.fields
                               if f.type in (LOOKUP, FORMULA)]  # fmt: skip
        values = rec.values
        for slot, compute in self._computers:
            values[slot] = compute(values)

    def _computer(self, f: Field) -> Callable[[list[Any]], dict[str, Any] | None]:
        cache = f.entry_cache
        if f.type == FORMULA:
            formula = f.formula_fn
            assert formula is not None

            def compute_formula(values: list[Any]) -> dict[str, Any] | None:
                raw = formula(values)
                if raw is None:
                    return None
                if isinstance(raw, str):
                    return entry(f.id, {"val": raw}, raw)
                cached = cache.get(raw)
                if cached is None:
                    cached = cache[raw] = entry(f.id, {"val": raw}, format_number(raw))
                return cached

            return compute_formula
        ref_slot = self.field(f.lookup_reference_field_id or "").slot
        target, target_field = self.lookup_target(f)

        def compute_lookup(values: list[Any]) -> dict[str, Any] | None:
            ref = values[ref_slot]
            if ref is None:
                return None
            rid = referenced_ids(ref["value"]["val"])
            cached = cache.get(rid)
            if cached is None:
                rec = target.records.get(rid)
                found = target.entry(rec, target_field) if rec is not None else None
                if found is None:
                    return None
                cached = cache[rid] = entry(f.id, found["value"], found["stringValue"])
            return cached

        return compute_lookup


class Organization:
    """The one organization of the sandbox, with its workspaces and tables."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rows, self.seed = rows, seed
        self.version = 0
        self.reference_form = "space"
        # how a condition on Created At is served: "applied", "ignored" (every record passes)
        # or "refused" (`BAD_USER_INPUT`), for APIs that do not filter on that system field
        self.created_at_filter = "applied"
        self.workspaces: list[Workspace] = []
        self.tables: dict[str, Table] = {}
        self._mutations = 0
        _build_structure(self, random.Random(f"pitchly:{seed}"))

    def workspace(self, wid: str) -> Workspace:
        for ws in self.workspaces:
            if ws.id == wid:
                return ws
        raise KeyError(wid)

    def all_fields(self) -> list[Field]:
        return [f for table in self.tables.values() for f in table.fields]

    def served_id(self, rid: str) -> str:
        """A record id as a reference `val` shows it, in `reference_form`."""
        return rid.replace("|", " ") if self.reference_form == "space" else rid

    def set_reference_form(self, form: str) -> None:
        """Serve every reference (stored and looked up) in `form` from now on."""
        if form not in REFERENCE_FORMS:
            raise ValueError(f"reference_form must be one of {REFERENCE_FORMS}, not {form!r}")
        if form == self.reference_form:
            return
        self.reference_form = form
        refs = (REFERENCE, REFERENCE_MULTIPLE)
        generated = [t for t in self.tables.values() if t._records is not None]
        for table in self.tables.values():
            for f in table.fields:
                f.entry_cache.clear()
            table.node_cache.clear()
        for table in generated:  # stored references first, then what looks them up
            stored = [f for f in table.fields if f.type in refs]
            for rec in table.records.values():
                for f in stored:
                    found = rec.values[f.slot]
                    if found is not None:
                        ids = referenced_ids(found["value"]["val"])
                        raw = tuple(ids) if f.type == REFERENCE_MULTIPLE else ids
                        rec.values[f.slot] = table.render(f, raw)
        for table in generated:
            for rec in table.records.values():
                table.compute(rec)
        self.changed()

    def changed(self) -> None:
        """Drop every cache: a change can reach other tables (references, lookups)."""
        self.version += 1

    def mutation_rng(self) -> random.Random:
        self._mutations += 1
        return random.Random(f"pitchly-mutate:{self.seed}:{self._mutations}")

    def lookups_reading(self, f: Field) -> bool:
        return any(
            other.type == LOOKUP
            and f.id in (other.lookup_field_id, other.lookup_reference_field_id)
            for other in self.all_fields()
        )

    # generation

    def generate(self, table: Table) -> None:
        rng = random.Random(f"pitchly:{self.seed}:{table.id}")
        pools: list[list[Any]] = [[None] for _ in range(table.next_slot)]
        for f in table.fields:
            if f.type not in COMPUTED_TYPES:
                pools[f.slot] = _pool(table, f, rng, table.size)
        sized = [(pool, len(pool)) for pool in pools]
        computed = any(f.type in (LOOKUP, FORMULA) for f in table.fields)
        step = _HISTORY_MS / max(1, table.size)
        start = EPOCH_MS - _HISTORY_MS
        rand = rng.random
        records = table._records
        assert records is not None
        prefix = table.workspace_id + "|rec"
        for i in range(table.size):
            created = int(start + (i + rand() * 0.9) * step)
            updated = created
            if rand() >= 0.3:
                updated += int(rand() ** 2 * (EPOCH_MS - 1 - created))
            values = [pool[int(rand() * size)] for pool, size in sized]
            rec = Record(i, meteor_id(rng, prefix), created, updated, values)
            if computed:
                table.compute(rec)
            records[rec.id] = rec
        table.next_seq = table.size

    def insert(self, table: Table, count: int, rng: random.Random) -> list[Record]:
        """`count` new records, created now, with a value in every stored field."""
        records = table.records  # generate first: new records come after the generated ones
        stored = [f for f in table.fields if f.type not in COMPUTED_TYPES]
        inserted = []
        for _ in range(count):
            stamp = now_ms()
            values: list[Any] = [None] * table.next_slot
            for f in stored:
                values[f.slot] = fresh_entry(table, f, rng)
            rec = Record(table.next_seq, meteor_id(rng, table.workspace_id + "|rec"), stamp, stamp,
                         values)  # fmt: skip
            table.compute(rec)
            table.next_seq += 1
            records[rec.id] = rec
            inserted.append(rec)
        return inserted

    def update(self, table: Table, f: Field, recs: list[Record], rng: random.Random) -> None:
        """Give `f` a new value in each of `recs`, and move their Updated At to now."""
        for rec in recs:
            old = rec.values[f.slot]
            for _ in range(10):
                rec.values[f.slot] = fresh_entry(table, f, rng)
                if rec.values[f.slot] != old:
                    break
            table.compute(rec)
            touch(rec)
        table.forget([rec.id for rec in recs])

    def delete(self, table: Table, recs: list[Record]) -> list[str]:
        """Delete `recs`; references to them are removed (an update of the referencing records).

        Returns the ids of the records whose references changed.
        """
        for rec in recs:
            del table.records[rec.id]
        deleted = {rec.id for rec in recs}
        table.forget(list(deleted))
        touched: list[str] = []
        for other in self.tables.values():
            refs = [f for f in other.fields if f.type in (REFERENCE, REFERENCE_MULTIPLE)
                    and f.reference_table_id == table.id]  # fmt: skip
            if not refs or not deleted:
                continue
            before = len(touched)
            for rec in other.records.values():
                changed = False
                for f in refs:
                    current = rec.values[f.slot]
                    if current is None:
                        continue
                    ids = referenced_ids(current["value"]["val"])
                    if f.type == REFERENCE and ids in deleted:
                        rec.values[f.slot], changed = None, True
                    elif f.type == REFERENCE_MULTIPLE and deleted.intersection(ids):
                        kept = tuple(r for r in ids if r not in deleted)
                        rec.values[f.slot] = other.render(f, kept)
                        changed = True
                if changed:
                    other.compute(rec)
                    touch(rec)
                    touched.append(rec.id)
            other.forget(touched[before:])
        return touched


def touch(rec: Record) -> None:
    rec.updated = max(now_ms(), rec.updated + 1)


# --- generators ---------------------------------------------------------------------------


def _pick(rng: random.Random, items: list[Any] | tuple[Any, ...]) -> Any:
    return items[int(rng.random() * len(items))]


def _text(kind: str | None, rng: random.Random) -> str:
    if kind == "company":
        return f"{_pick(rng, COMPANY_WORDS)} {_pick(rng, COMPANY_SUFFIXES)}"
    if kind == "deal":
        return f"{_pick(rng, COMPANY_WORDS)} {_pick(rng, PRODUCTS)} {2019 + int(rng.random() * 7)}"
    if kind == "person":
        return f"{_pick(rng, FIRST_NAMES)} {_pick(rng, LAST_NAMES)}"
    if kind == "email":
        first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
        return f"{first}.{last}{int(rng.random() * 100)}@example.com".lower()
    if kind == "matter":
        number = int(rng.random() * 9000) + 1000
        return f"{_pick(rng, PRACTICE_AREAS)} – {_pick(rng, COMPANY_WORDS)} #{number}"
    if kind == "size":
        return _pick(rng, SIZES)
    if kind == "paragraph":
        return "\n".join(_pick(rng, SENTENCES) for _ in range(1 + int(rng.random() * 3)))
    return " ".join(_pick(rng, SENTENCES).split()[:4])


def raw_value(f: Field, rng: random.Random) -> Any:
    """A random raw value for a stored field that is not a reference."""
    kind = f.type
    if kind in (TEXT, MULTILINE_TEXT):
        return _text(f.gen or ("paragraph" if kind == MULTILINE_TEXT else None), rng)
    if kind == NUMBER:
        if f.gen == "float":
            return round(rng.random() * 500000, 2)
        if f.gen == "big":  # past 2**53: a double would change the last digits
            return (-1 if rng.random() < 0.1 else 1) * (2**53 + rng.getrandbits(62))
        if f.gen == "precise":  # 18 decimal places, up to 21 digits: more than a double holds
            return Decimal(rng.getrandbits(67) - 2**66).scaleb(-18)
        return int(rng.random() ** 3 * 250000)
    if kind == BOOLEAN:
        return rng.random() < 0.5
    if kind == DROPDOWN:
        return _pick(rng, f.options or ("A",))
    if kind == DROPDOWN_MULTIPLE:
        options = f.options or ("A",)
        chosen = {_pick(rng, options) for _ in range(int(rng.random() * 4))}
        return tuple(o for o in options if o in chosen)
    if kind == DATE:
        day = _FIRST_DAY + int(rng.random() * (_LAST_DAY - _FIRST_DAY))
        return date.fromordinal(day).isoformat()
    if kind == CURRENCY:
        code = _pick(rng, f.currencies)
        amount = int(rng.random() ** 2 * 1_000_000)
        if code != "JPY" and rng.random() < 0.3:
            return round(amount + rng.random(), 2), code
        return amount, code
    if kind == ATTACHMENT:
        mime, ext = _pick(rng, FILES)
        name = f"{_pick(rng, PRODUCTS).lower()}.{ext}"
        return f"https://files.sandbox.pitchly.com/{meteor_id(rng)}/{name}", mime, 1000 + int(rng.random() ** 2 * 5_000_000)  # fmt: skip
    raise ValueError(f"no raw values for {kind} fields")


def fresh_entry(table: Table, f: Field, rng: random.Random,
                ids: list[str] | None = None) -> dict[str, Any] | None:  # fmt: skip
    """A new random entry for a stored field (inserts and updates: never empty); references
    pick from `ids` (default: every record of the referenced table)."""
    if f.type in (REFERENCE, REFERENCE_MULTIPLE):
        if ids is None:
            ids = list(table.org.tables[f.reference_table_id or ""].records)
        if not ids:
            return None
        if f.type == REFERENCE:
            return table.reference_entry(f, _pick(rng, ids))
        chosen = dict.fromkeys(_pick(rng, ids) for _ in range(1 + int(rng.random() * 3)))
        return table.render(f, tuple(chosen))
    return table.render(f, raw_value(f, rng))


def _pool(table: Table, f: Field, rng: random.Random, size: int) -> list[Any]:
    """Entries generated records draw from: at most POOL_SIZE values, and a share `f.empty`
    of empty ones (a third of them cleared - present but blank -, the rest never set)."""
    blank = None
    if f.type in (TEXT, MULTILINE_TEXT):
        blank = entry(f.id, {"val": ""}, "")
    elif f.type == DROPDOWN_MULTIPLE:
        blank = entry(f.id, {"val": []}, [])
    ids = None
    if f.type in (REFERENCE, REFERENCE_MULTIPLE):
        ids = list(table.org.tables[f.reference_table_id or ""].records)
    pool = []
    for _ in range(max(1, min(size, POOL_SIZE))):
        roll = rng.random()
        if roll < f.empty:
            pool.append(blank if roll < f.empty / 3 else None)
        else:
            pool.append(fresh_entry(table, f, rng, ids))
    return pool


# --- the organization's structure -----------------------------------------------------------

FieldSpec = tuple[str, str, dict[str, Any]]
# (workspace, [(table, share of config.rows, ready, [(field name, type, options)])])
STRUCTURE: list[tuple[str, list[tuple[str, float, bool, list[FieldSpec]]]]] = [
    ("Sales", [
        ("Companies", 0.10, True, [
            ("Name", TEXT, {"primary": True, "gen": "company"}),
            ("Description", MULTILINE_TEXT, {"empty": 0.2}),
            ("City", DROPDOWN, {"options": CITIES, "empty": 0.05}),
            ("Industries", DROPDOWN_MULTIPLE, {"options": INDUSTRIES, "empty": 0.1}),
            ("Employees", NUMBER, {"empty": 0.1}),
            ("Public", BOOLEAN, {"empty": 0.2}),
            ("Founded", DATE, {"empty": 0.1}),
            ("Logo", ATTACHMENT, {"empty": 0.3}),
            ("Market Cap", NUMBER, {"gen": "big", "empty": 0.2}),
            ("Growth Rate", NUMBER, {"gen": "precise", "empty": 0.2}),
            ("Created At", CREATED_AT, {}),
            ("Updated At", UPDATED_AT, {}),
        ]),
        ("Deals", 0.40, True, [
            ("Name", TEXT, {"primary": True, "gen": "deal"}),
            ("Company", REFERENCE, {"ref": "Companies", "empty": 0.05}),
            ("Company City", LOOKUP, {"lookup": ("Company", "City")}),
            ("Partners", REFERENCE_MULTIPLE, {"ref": "Companies", "empty": 0.3}),
            ("Deal Size", NUMBER, {"gen": "float", "empty": 0.1}),
            ("deal_size", TEXT, {"gen": "size", "empty": 0.2}),
            ("Amount ($)", CURRENCY, {"currencies": ("USD",), "empty": 0.1}),
            ("Amount", CURRENCY, {"currencies": ("USD", "EUR", "GBP", "JPY"), "empty": 0.1}),
            ("Stage", DROPDOWN, {"options": STAGES}),
            ("Close Date", DATE, {"empty": 0.2}),
            ("Won", BOOLEAN, {"empty": 0.3}),
            ("Commission", FORMULA, {"formula": ("multiply", "Amount ($)", 0.1)}),
            ("Created At", CREATED_AT, {}),
            ("Updated At", UPDATED_AT, {}),
        ]),
        ("Pipeline Draft", 0.02, False, [
            ("Name", TEXT, {"primary": True, "gen": "deal"}),
            ("Amount", NUMBER, {"empty": 0.2}),
            ("Created At", CREATED_AT, {}),
            ("Updated At", UPDATED_AT, {}),
        ]),
    ]),
    ("Legal", [
        ("Clients", 0.08, True, [
            ("Name", TEXT, {"primary": True, "gen": "company"}),
            ("Country", DROPDOWN, {"options": COUNTRIES, "empty": 0.1}),
            ("Contract", ATTACHMENT, {"empty": 0.4}),
            ("Created At", CREATED_AT, {}),
            ("Updated At", UPDATED_AT, {}),
        ]),
        # No Updated At field: a client can only re-read this table in full.
        ("Matters", 0.25, True, [
            ("Title", TEXT, {"primary": True, "gen": "matter"}),
            ("Client", REFERENCE, {"ref": "Clients", "empty": 0.1}),
            ("Client Country", LOOKUP, {"lookup": ("Client", "Country")}),
            ("Größe", NUMBER, {"empty": 0.2}),
            ("客户", TEXT, {"gen": "person", "empty": 0.3}),
            ("Notes", MULTILINE_TEXT, {"empty": 0.4}),
            ("Opened", DATE, {}),
            ("Billable", BOOLEAN, {"empty": 0.1}),
            ("Fee", CURRENCY, {"currencies": ("EUR", "CHF", "USD"), "empty": 0.2}),
            ("Summary", FORMULA, {"formula": ("concat", "Title", "客户")}),
            ("Created At", CREATED_AT, {}),
        ]),
    ]),
    ("Archive", [
        ("Employees", 0.13, True, [
            ("Name", TEXT, {"primary": True, "gen": "person"}),
            ("Email", TEXT, {"gen": "email", "empty": 0.05}),
            ("Title", DROPDOWN, {"options": JOB_TITLES}),
            ("Skills", DROPDOWN_MULTIPLE, {"options": SKILLS, "empty": 0.2}),
            ("Start Date", DATE, {"empty": 0.05}),
            ("Salary", CURRENCY, {"currencies": ("USD", "GBP"), "empty": 0.3}),
            ("Photo", ATTACHMENT, {"empty": 0.5}),
            ("Active", BOOLEAN, {}),
            ("Created At", CREATED_AT, {}),
            ("Updated At", UPDATED_AT, {}),
        ]),
        ("Legacy Import", 0.02, False, [
            ("Name", TEXT, {"primary": True, "gen": "person"}),
            ("Notes", MULTILINE_TEXT, {"empty": 0.5}),
            ("Created At", CREATED_AT, {}),
        ]),
    ]),
]  # fmt: skip


def _formula(table: Table, spec: tuple[Any, ...]) -> tuple[str, Callable[[list[Any]], Any], tuple[str, ...]]:  # fmt: skip
    """(expression as Pitchly shows it, values -> raw result, source field ids)."""
    if spec[0] == "multiply":
        source, factor = table.field_named(spec[1]), spec[2]
        slot = source.slot

        def multiply(values: list[Any]) -> Any:
            found = values[slot]
            return None if found is None else round(found["value"]["val"] * factor, 2)

        return f"{{{source.name}}} * {factor}", multiply, (source.id,)
    left, right = table.field_named(spec[1]), table.field_named(spec[2])
    slots = (left.slot, right.slot)

    def concat(values: list[Any]) -> Any:
        parts = [values[s]["stringValue"] for s in slots if values[s] is not None]
        return " · ".join(p for p in parts if p)

    return f'CONCATENATE({{{left.name}}}, " · ", {{{right.name}}})', concat, (left.id, right.id)


def make_field(rng: random.Random, table: Table, name: str, kind: str, options: dict[str, Any]) -> Field:  # fmt: skip
    """A new field of `table` (not yet added) from a name, a type and STRUCTURE's options."""
    if kind not in FIELD_TYPES:
        raise ValueError(f"unknown field type {kind!r}; one of {', '.join(FIELD_TYPES)}")
    f = Field(id=meteor_id(rng, table.workspace_id + "|fld"), name=name, type=kind,
              table_id=table.id, primary=bool(options.get("primary")), gen=options.get("gen"),
              empty=float(options.get("empty", 0.0)))  # fmt: skip
    if kind in (DROPDOWN, DROPDOWN_MULTIPLE):
        f.options = tuple(options.get("options") or INDUSTRIES)
    if kind == CURRENCY:
        f.currencies = tuple(options.get("currencies") or ("USD",))
    if kind in (REFERENCE, REFERENCE_MULTIPLE):
        ref = options.get("ref") or options.get("referenceTableId")
        ws = table.org.workspace(table.workspace_id)
        by_name = {table.org.tables[t].name: t for t in ws.table_ids}
        target = by_name.get(ref, ref)
        if target not in table.org.tables:
            raise ValueError(f"a {kind} field needs a referenceTableId")
        f.reference_table_id = target
    if kind == LOOKUP:
        via, target_name = options["lookup"]
        ref_field = table.field_named(via)
        target = table.org.tables[ref_field.reference_table_id or ""]
        f.lookup_reference_field_id = ref_field.id
        f.lookup_field_id = target.field_named(target_name).id
    if kind == FORMULA:
        f.formula, f.formula_fn, f.depends_on = _formula(table, options["formula"])
    return f


def _build_structure(org: Organization, rng: random.Random) -> None:
    for ws_name, tables in STRUCTURE:
        ws = Workspace(meteor_id(rng, "wks"), ws_name)
        org.workspaces.append(ws)
        for table_name, share, ready, fields in tables:
            size = max(3, round(org.rows * share))
            table = Table(org, ws.id, meteor_id(rng, ws.id + "|tbl"), table_name, ready, size)
            org.tables[table.id] = table
            ws.table_ids.append(table.id)
            for name, kind, options in fields:
                table.add_field(make_field(rng, table, name, kind, options))
