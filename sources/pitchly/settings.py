"""Pitchly's URLs, auth modes, page size, and how each field type becomes columns, as data."""

from __future__ import annotations

GRAPHQL_URL = "https://api.pitchly.com/graphql"
TOKEN_URL = "https://platform.pitchly.com/api/oauth/token"

AUTH_MODES = ("jwt", "client_credentials", "refresh_token")
JWT_LIFETIME_S = 300  # "a short exp": minted again after about 4.5 minutes

# The document gives no maximum; the sandbox's is 1000. `page_size` lowers it.
MAX_PAGE_SIZE = 1000

# Resources that describe the organization (one row per workspace, table, field).
METADATA_RESOURCES = ("workspaces", "tables", "fields")

# A record as the document shows it; the rest of the node is not needed.
RECORD_SELECTION = "id fields { fieldId value stringValue }"
RECORDS_CONNECTION = "recordsConnection"

PRIMARY_KEY = "id"
# Column names a field may not take (the record id, dlt's own columns).
RESERVED_COLUMNS = frozenset({PRIMARY_KEY})
RESERVED_PREFIX = "_dlt"

CREATED_AT = "createdAt"
UPDATED_AT = "updatedAt"
LOOKUP = "lookup"

# Updates made while a run pages through a table can land behind pages already read: the next
# run starts this much before the start of the last one (and never after the newest Updated At
# it loaded). Also covers a client clock running ahead of Pitchly's by up to this much.
INCREMENTAL_LAG_S = 300.0

# Where a column's value comes from in a record's `{fieldId, value, stringValue}`:
# a key of `value` (`val`, `currency`, `type`, `size`), or the `stringValue`.
STRING_VALUE = "stringValue"

# Numbers (number, currency amounts, numeric formula results) are `decimal(38, 18)`: the
# field-type page says only "Number with possible decimal", no setting makes a field an integer,
# so one type holds every value exactly (64-bit integers, 18 decimal places) on every run.
# field type -> columns: (suffix, kind, source). The first column is named after the field; the
# others get `__<suffix>`. Value shapes follow Pitchly's field-type page. A kind is a dlt data
# type, or one of `LOADED_AS` (converted on the way). `json` columns hold lists (of options).
FIELD_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "text": (("", "text", "val"),),
    "multilineText": (("", "text", "val"),),
    "dropdown": (("", "text", "val"),),
    "number": (("", "decimal", "val"),),
    "boolean": (("", "bool", "val"),),
    "dropdownMultiple": (("", "json", "val"),),
    "date": (("", "timestamp", "val"),),
    "createdAt": (("", "timestamp", "val"),),
    "updatedAt": (("", "timestamp", "val"),),
    "currency": (("", "decimal", "val"), ("currency", "text", "currency")),
    "attachment": (("", "text", "val"), ("mime_type", "text", "type"), ("size", "bigint", "size")),
    "reference": (("", "record_id", "val"),),
    "referenceMultiple": (("", "record_ids", "val"),),
    # numeric results typed; text results (and Pitchly's display of every result) in string_value
    "formula": (("", "decimal", "val"), ("string_value", "text", STRING_VALUE)),
}
# Column kinds that are not dlt data types, and the type each loads as. A reference's `val` is
# `wks... rec...` in the field-type page's sample (workspace id, a space, record id) while record
# ids are `wks...|rec...` everywhere else: `record_id` columns hold the id form, which joins.
LOADED_AS = {"record_id": "text", "record_ids": "json"}
# A lookup takes the columns of the field it looks up, plus Pitchly's display of the value.
LOOKUP_EXTRA = ("string_value", "text", STRING_VALUE)
# A field type this code does not know: its value (as JSON text unless it is text), and
# Pitchly's display of it.
UNKNOWN_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("", "text", "val"),
    ("string_value", "text", STRING_VALUE),
)
