"""The Pluvo GraphQL API of the sandbox, mounted at `/pluvo/` (one organization's root).

What it serves, following the vendor's document (seeds/001):

- `POST /pluvo/oauth/token/`: OAuth2 `client_credentials`, form-encoded (`client_id` and
  `client_secret` in the body or as HTTP Basic), `scope` space-separated (omitted: every scope of
  the client). Tokens are random, remembered with their expiry and scopes, and live
  `token_lifetime_s` (86400) seconds. Errors follow RFC 6749: 401 `invalid_client`,
  400 `unsupported_grant_type`, 400 `invalid_scope`.
- `POST /pluvo/graphql/` with `Authorization: Bearer <token>`, executed by graphql-core, so
  introspection works. No or an unknown/expired token: HTTP 401 `{"detail": ...}`. A root field
  whose scope the token lacks: HTTP 403 `{"detail": "Missing required scope: <scope>",
  "required_scope", "missing_scopes", "token_scopes"}`. Any other error: HTTP 200 with `errors`.
- Both paths without the trailing slash answer 301 with the slashed URL in `Location`.

Schema: root relay-style connections `paginatedUsers`, `paginatedGroups` (scope `users.read`),
`paginatedTrainings` (`trainings.read`) and `paginatedEvents` (`events.read`), each
`(first: Int, after: String, id: ID, ref: String[, email: String])` ->
`{ edges { cursor node } pageInfo { hasNextPage endCursor ... } count }`, where `count` is the
number of rows matching the filters (`email` matches case-insensitively). `first` defaults to
50, and pages hold at most 50 rows: with `page_size_mode` "cap"
(default) a larger `first` gets 50 rows, with "error" it is a GraphQL error "first must be <= 50".
`page_limit` (configure) lowers that 50, for an organization whose API is set up with less.
Rows are ordered by (updatedAt, id) ascending; a cursor encodes that pair, so paging continues
after the cursor's position even when rows change in between. Two plain root fields, `me` and
`organisation`, are not connections and need no scope. `Training.settings` is a free-form `JSON`
scalar (an object, a list, a lone number, or null) and `Training.metadata` a `JSONString` (JSON
text: an object, a lone string, or null); both are assumed (the document names no such field).

Ground truth: `truth(entity)`, `entity` being the connection name (`paginatedUsers`; the short
names `users`, `groups`, `trainings`, `events` work too), is every node of the connection in page
order, with every field that is NOT deprecated, valued exactly as the API serializes it
(DateTime as ISO-8601 text with the row's own offset, enums by name, lists as lists), and nested
objects reduced to `{"id": ...}` (or null). With `schema_drift` on, the drift fields appear in
the schema and in the truth alike.

`mutate({"entity", "insert", "update", "delete"})`: `insert` is a count or a list of field
overrides, `update` and `delete` a count (rows picked at random from the seed) or a list of ids
(for `update` also `{"id": ..., field: value}`). Inserted and updated rows get `updatedAt` = now.
Deleting a row sets the references to it to null and bumps those rows' `updatedAt` (assumed:
the document is silent; this keeps incremental loads able to see it). Returns the ids:
`{"inserted", "updated", "deleted", "cascaded": {entity: ids}}`.

`configure(...)` switches: `token_lifetime_s`, `revoke_tokens` (forget every issued token now),
`revoke_tokens_after` (N: the Nth GraphQL request from now finds every token issued so far
revoked, so a test can revoke between two pages), `refuse_client` (the token endpoint answers
401 invalid_client), `page_size_mode` ("cap" | "error"), `schema_drift` (adds `User.department`
and `Training.category`), `count_extra` (N: every `count` over-reports by N, a vendor counting
rows it does not serve), `token_redirect` (a path or URL: the token endpoint answers 301 to it;
null turns it off), `cursor_mode` ("keyset", default, or "offset": cursors are graphene's
`arrayconnection:<offset>`, so a row deleted before the cursor shifts every later row up by one),
`silent_cap` (N: pages hold at most N rows whatever `first` asks, without saying so).

Data: deterministic from `config.seed`; `config.rows` split 25% users, 5% groups, 10% trainings,
60% events; each entity is generated on first use (a million rows take some seconds).

Speed: a query that selects one connection with plain fields (what a connector sends) is served
from cached per-row edge bytes without running graphql-core's executor; anything else (fragments,
directives, nested fields beyond `id`, several root fields) runs through graphql-core. Both give
the same JSON (tested).
"""

from __future__ import annotations

import base64
import binascii
import gc
import random
import secrets
import time
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NonNullTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    build_schema,
    execute,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from lxp_sync_sandbox.base import (
    EPOCH,
    OFFSETS,
    Api,
    iso,
    json_response,
    now,
    seeded_uuid,
    serving_odd_timestamps,
)

CLIENT_ID = "sandbox-pluvo-client"
CLIENT_SECRET = "sandbox-pluvo-secret"
ALL_SCOPES = "users.read trainings.read events.read"
MAX_PAGE_SIZE = 50
DEFAULT_TOKEN_LIFETIME_S = 86400

_SCOPE_ORDER = ALL_SCOPES.split()
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_US = (EPOCH - _UNIX) // timedelta(microseconds=1)
_SPAN_US = 3 * 365 * 86400 * 1_000_000  # generated rows were created in the 3 years before EPOCH


# --- The schema, as data -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # GraphQL type as written in SDL
    ref: str | None = None  # entity key of a nested object
    deprecated: str | None = None
    drift: bool = False  # only in the schema while `schema_drift` is on


@dataclass(frozen=True)
class Entity:
    key: str  # users, groups, trainings, events
    connection: str  # root field name
    type_name: str
    scope: str
    share: float  # of config.rows
    filters: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    description: str

    def visible(self, drift: bool) -> list[FieldSpec]:
        return [f for f in self.fields if drift or not f.drift]


def _f(name: str, type_: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, type_, **kw)


_STAMPS = (_f("createdAt", "DateTime!"), _f("updatedAt", "DateTime!"))

ENTITIES: dict[str, Entity] = {
    e.key: e
    for e in (
        Entity(
            "users",
            "paginatedUsers",
            "User",
            "users.read",
            0.25,
            ("id", "ref", "email"),
            (
                _f("id", "ID!"),
                _f("ref", "String"),
                _f("name", "String!"),
                _f("firstName", "String!"),
                _f("lastName", "String!"),
                _f("email", "String"),
                _f("username", "String", deprecated="Use `email` instead."),
                _f("isActive", "Boolean!"),
                _f("isAdmin", "Boolean!"),
                _f("language", "Language!"),
                _f("status", "UserStatus!"),
                _f("roles", "[String!]!"),
                _f("manager", "User", ref="users"),
                _f("lastLoginAt", "DateTime"),
                *_STAMPS,
                _f("department", "String", drift=True),
            ),
            "A person in the organization.",
        ),
        Entity(
            "groups",
            "paginatedGroups",
            "Group",
            "users.read",
            0.05,
            ("id", "ref"),
            (
                _f("id", "ID!"),
                _f("ref", "String"),
                _f("name", "String!"),
                _f("description", "String"),
                _f("isSmart", "Boolean!"),
                _f("memberCount", "Int!"),
                _f("size", "Int", deprecated="Use `memberCount` instead."),
                _f("parent", "Group", ref="groups"),
                *_STAMPS,
            ),
            "A group of users; smart groups fill themselves from rules.",
        ),
        Entity(
            "trainings",
            "paginatedTrainings",
            "Training",
            "trainings.read",
            0.10,
            ("id", "ref"),
            (
                _f("id", "ID!"),
                _f("ref", "String"),
                _f("title", "String!"),
                _f("name", "String", deprecated="Use `title` instead."),
                _f("description", "String"),
                _f("status", "TrainingStatus!"),
                _f("isMandatory", "Boolean!"),
                _f("durationMinutes", "Int"),
                _f("passingScore", "Float"),
                _f("tags", "[String!]!"),
                _f("language", "Language!"),
                _f("owner", "User", ref="users"),
                _f("startsAt", "DateTime"),
                _f("settings", "JSON"),
                _f("metadata", "JSONString"),
                *_STAMPS,
                _f("category", "String", drift=True),
            ),
            "A training (course) that users follow.",
        ),
        Entity(
            "events",
            "paginatedEvents",
            "Event",
            "events.read",
            0.60,
            ("id", "ref"),
            (
                _f("id", "ID!"),
                _f("ref", "String"),
                _f("type", "EventType!"),
                _f("user", "User", ref="users"),
                _f("userId", "ID", deprecated="Use `user { id }` instead."),
                _f("training", "Training", ref="trainings"),
                _f("score", "Float"),
                _f("progress", "Int!"),
                _f("durationSeconds", "Int"),
                _f("occurredAt", "DateTime!"),
                *_STAMPS,
            ),
            "Something a user did in a training.",
        ),
    )
}
_BY_CONNECTION = {e.connection: e for e in ENTITIES.values()}
_REQUIRED_SCOPE = {e.connection: e.scope for e in ENTITIES.values()}
_FILTER_TYPES = {"id": "ID", "ref": "String", "email": "String"}

_ENUMS = {
    "Language": ("NL", "EN", "DE", "FR", "ES"),
    "UserStatus": ("ACTIVE", "INVITED", "ARCHIVED"),
    "TrainingStatus": ("DRAFT", "PUBLISHED", "ARCHIVED"),
    "EventType": ("ENROLLED", "STARTED", "COMPLETED", "FAILED", "CERTIFICATE_ISSUED"),
}


def schema_sdl(drift: bool = False) -> str:
    """The API's schema in SDL; `drift` adds the fields a vendor release would add."""
    out = [
        '"""An ISO-8601 date and time with a UTC offset."""',
        "scalar DateTime",
        '"""Any JSON value: an object, a list, or a lone string, number or boolean."""',
        "scalar JSON",
        '"""A JSON document serialized as a string (its text)."""',
        "scalar JSONString",
        *(f"enum {name} {{ {' '.join(values)} }}" for name, values in _ENUMS.items()),
        "type PageInfo {\n  hasNextPage: Boolean!\n  hasPreviousPage: Boolean!\n"
        "  startCursor: String\n  endCursor: String\n}",
        "type ApiClient {\n  clientId: String!\n  name: String!\n  scopes: [String!]!\n}",
        "type Organisation {\n  id: ID!\n  name: String!\n  slug: String!\n"
        "  language: Language!\n  createdAt: DateTime!\n}",
    ]
    query = [
        '  "The API client of the access token."\n  me: ApiClient!',
        '  "The organization this endpoint belongs to."\n  organisation: Organisation!',
    ]
    for e in ENTITIES.values():
        lines = []
        for f in e.visible(drift):
            dep = f' @deprecated(reason: "{f.deprecated}")' if f.deprecated else ""
            lines.append(f"  {f.name}: {f.type}{dep}")
        out.append(f'"""{e.description}"""\ntype {e.type_name} {{\n' + "\n".join(lines) + "\n}")
        out.append(f"type {e.type_name}Edge {{\n  cursor: String!\n  node: {e.type_name}!\n}}")
        out.append(
            f"type {e.type_name}Connection {{\n  edges: [{e.type_name}Edge!]!\n"
            f"  pageInfo: PageInfo!\n  count: Int!\n}}"
        )
        args = ", ".join(
            ["first: Int", "after: String"]
            + [f"{name}: {_FILTER_TYPES[name]}" for name in e.filters]
        )
        query.append(
            f'  "{e.type_name} rows by (updatedAt, id); at most {MAX_PAGE_SIZE} a page. '
            f'Scope: {e.scope}."\n  {e.connection}({args}): {e.type_name}Connection'
        )
    out.append("type Query {\n" + "\n".join(query) + "\n}")
    return "\n\n".join(out) + "\n"


# --- Seeded data ---------------------------------------------------------------------------------

_FIRST = [
    "Daan",
    "Sanne",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Anaïs",
    "François",
    "Björn",
    "María",
    "Jürgen",
    "Fatima",
    "Mehmet",
    "Aoife",
    "Chloé",
    "Noah",
    "Emma",
    "Lars",
    "Ngọc",
    "Siobhán",
    "Priya",
    "Kenji",
    "Ólafur",
    "Thijs",
    "Ümit",
    "Renée",
    "Wei",
]
_LAST = [
    "de Vries",
    "Janssen",
    "van den Berg",
    "Bakker",
    "Müller",
    "García",
    "Nguyễn",
    "Øster",
    "O'Brien",
    "Dubois",
    "Kowalski",
    "Yılmaz",
    "El Amrani",
    "Smit",
    "Visser",
    "Ståhl",
    "Peeters",
    "Rossi",
    "Sørensen",
    "Tanaka",
    "Van Dijk",
    "Mertens",
    "Çelik",
]
_DOMAINS = ["example.com", "voorbeeld.nl", "example.org"]
_DEPARTMENTS = ["Zorg", "Sales", "HR", "IT", "Logistiek", "Finance", "Klantenservice"]
_GROUP_A = ["Team", "Afdeling", "Regio", "Locatie", "Cohort", "Werkgroep"]
_GROUP_B = [
    "Noord",
    "Zuid",
    "Oost",
    "West",
    "Utrecht",
    "Köln",
    "Zorg & Welzijn",
    "Onboarding",
    "Leidinggevenden",
    "São Paulo",
    "Ærø",
]
_TITLES = [
    "Veiligheid op de werkvloer",
    "AVG/GDPR basis",
    "Leiderschap & coaching",
    "Excel für Fortgeschrittene",
    "Feedback geven — en ontvangen",
    "Brandveiligheid 🔥",
    "Medicatieveiligheid",
    "Onboarding: welkom!",
    "Timemanagement",
    "Sécurité incendie",
    "Klantgericht werken",
    "Agile in de praktijk",
    "Omgaan met agressie",
]
_TAGS = [
    "verplicht",
    "compliance",
    "soft-skills",
    "zorg",
    "it",
    "nieuw",
    "e-learning",
    "klassikaal",
    "blended",
    "certificaat",
]
_CATEGORIES = ["Compliance", "Vaardigheden", "Vakinhoud", "Onboarding"]
_DESCRIPTIONS = [
    "Een korte introductie.",
    "Leer de basis in 20 minuten. ✅",
    "Für alle Mitarbeiter:innen verpflichtend.",
    "Inclusief praktijkopdracht\nen toets.",
    "Cours en français — niveau débutant.",
    "",
]


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


_EMAIL_NAMES = {name: _ascii(name) for name in _FIRST + _LAST}
# The instant 0 in each offset: adding a timedelta keeps the offset, which is cheaper than
# `astimezone` per value (a million rows carry three million timestamps).
_ZEROS = [_UNIX.astimezone(tz) for tz in OFFSETS]


def _iso(us: int, r: Callable[[], float]) -> str:
    """`sandbox.base.iso` of an epoch-microsecond instant, in an offset drawn with `r`."""
    text = (_ZEROS[int(r() * len(_ZEROS))] + timedelta(microseconds=us)).isoformat()
    return text.replace("+00:00", "Z")


def _uuid(rng: random.Random) -> str:
    """`seeded_uuid`, without building a `uuid.UUID` (same text for the same bits)."""
    h = f"{rng.getrandbits(128) & _UUID_MASK | _UUID_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_BITS = (0x4000 << 64) | (0x8000 << 48)


def _stamps(r: Callable[[], float], created_us: int | None = None) -> tuple[int, int]:
    """(createdAt, updatedAt) in epoch microseconds, before EPOCH; half on whole seconds."""
    if created_us is None:
        created_us = _EPOCH_US - 1 - int(r() * _SPAN_US)
        if r() < 0.5:
            created_us -= created_us % 1_000_000
    updated_us = created_us + int(r() * (_EPOCH_US - created_us))
    if r() < 0.5:
        updated_us = max(created_us, updated_us - updated_us % 1_000_000)
    return created_us, updated_us


# Generators: `rng.random()` only, indexing by hand, as `rng.choice` costs several times more.
# References are stored as the referenced id (or None); the API shows them as `{ id }` objects.


def _gen_user(rng: random.Random, i: int, ids: list[str], refs: dict[str, list[str]]) -> dict:
    r = rng.random
    first, last = _FIRST[int(r() * len(_FIRST))], _LAST[int(r() * len(_LAST))]
    email = None
    if r() >= 0.03:
        domain = _DOMAINS[int(r() * len(_DOMAINS))]
        email = f"{_EMAIL_NAMES[first]}.{_EMAIL_NAMES[last]}.{i + 1}@{domain}"
    active = r() < 0.9
    created, updated = _stamps(r)
    roles = ["learner"]
    if r() < 0.15:
        roles.append("manager")
    if r() < 0.05:
        roles.append("author")
    languages = _ENUMS["Language"]
    return {
        "ref": f"EMP-{i + 1:06d}" if r() < 0.8 else None,
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "email": email,
        "username": email.split("@")[0] if email else None,
        "isActive": active,
        "isAdmin": r() < 0.05,
        "language": languages[int(r() * len(languages))],
        "status": "ACTIVE" if active else ("INVITED" if r() < 0.5 else "ARCHIVED"),
        "roles": roles,
        "manager": ids[int(r() * i)] if i and r() < 0.6 else None,
        "lastLoginAt": (
            _iso(created + int(r() * (_EPOCH_US - created)), r) if r() < 0.75 else None
        ),
        "createdAt": _iso(created, r),
        "updatedAt": _iso(updated, r),
        "department": _DEPARTMENTS[int(r() * len(_DEPARTMENTS))] if r() < 0.8 else None,
        "_us": updated,
    }


def _gen_group(rng: random.Random, i: int, ids: list[str], refs: dict[str, list[str]]) -> dict:
    r = rng.random
    created, updated = _stamps(r)
    members = int(r() * 500)
    name = f"{_GROUP_A[int(r() * len(_GROUP_A))]} {_GROUP_B[int(r() * len(_GROUP_B))]} {i + 1}"
    return {
        "ref": f"GRP-{i + 1:05d}" if r() < 0.5 else None,
        "name": name,
        "description": _DESCRIPTIONS[int(r() * len(_DESCRIPTIONS))] if r() < 0.5 else None,
        "isSmart": r() < 0.2,
        "memberCount": members,
        "size": members,
        "parent": ids[int(r() * i)] if i and r() < 0.3 else None,
        "createdAt": _iso(created, r),
        "updatedAt": _iso(updated, r),
        "_us": updated,
    }


def _training_settings(i: int) -> Any:
    """A free-form `JSON` value (from `i` alone: the other fields' draws stay as they were)."""
    kind = i % 8
    if kind < 3:
        return None
    if kind < 6:
        return {"maxAttempts": 1 + i % 5, "certificate": {"enabled": kind == 4, "validDays": 365}}
    return ["self-paced", i % 3] if kind == 6 else 42  # a list, and a lone number


def _training_metadata(i: int) -> str | None:
    """A `JSONString` value: JSON text."""
    if i % 5 == 0:
        return None
    if i % 5 == 4:
        return orjson.dumps(f"legacy-{i}").decode()  # a lone string, as JSON text
    return orjson.dumps(
        {"source": "import", "batch": i % 7, "labels": ["a", "b"][: i % 3]}
    ).decode()


def _gen_training(rng: random.Random, i: int, ids: list[str], refs: dict[str, list[str]]) -> dict:
    r = rng.random
    created, updated = _stamps(r)
    title = f"{_TITLES[int(r() * len(_TITLES))]} ({i + 1})"
    users, statuses, languages = refs["users"], _ENUMS["TrainingStatus"], _ENUMS["Language"]
    tag_start = int(r() * len(_TAGS))
    return {
        "ref": f"TRN-{i + 1:05d}" if r() < 0.7 else None,
        "title": title,
        "name": title,
        "description": _DESCRIPTIONS[int(r() * len(_DESCRIPTIONS))] if r() < 0.7 else None,
        "status": statuses[int(r() * len(statuses))],
        "isMandatory": r() < 0.3,
        "durationMinutes": 5 + int(r() * 475) if r() < 0.8 else None,
        "passingScore": round(50 + r() * 40, 1) if r() < 0.5 else None,
        "tags": _TAGS[tag_start : tag_start + int(r() * 4)],
        "language": languages[int(r() * len(languages))],
        "owner": users[int(r() * len(users))] if users and r() < 0.9 else None,
        "startsAt": _iso(created + int(r() * 90 * 86400e6), r) if r() < 0.3 else None,
        "createdAt": _iso(created, r),
        "updatedAt": _iso(updated, r),
        "category": _CATEGORIES[int(r() * len(_CATEGORIES))] if r() < 0.9 else None,
        "settings": _training_settings(i),
        "metadata": _training_metadata(i),
        "_us": updated,
    }


def _gen_event(rng: random.Random, i: int, ids: list[str], refs: dict[str, list[str]]) -> dict:
    r = rng.random
    occurred = _EPOCH_US - 10_000_000 - int(r() * _SPAN_US)
    created, updated = _stamps(r, occurred + int(r() * 5_000_000))
    kinds = _ENUMS["EventType"]
    kind = kinds[int(r() * len(kinds))]
    users, trainings = refs["users"], refs["trainings"]
    user = users[int(r() * len(users))] if users else None
    return {
        "ref": f"EVT-{i + 1:07d}" if r() < 0.3 else None,
        "type": kind,
        "user": user,
        "userId": user,
        "training": trainings[int(r() * len(trainings))] if trainings and r() < 0.97 else None,
        "score": round(r() * 100, 2) if kind in ("COMPLETED", "FAILED") else None,
        "progress": 100 if kind in ("COMPLETED", "CERTIFICATE_ISSUED") else int(r() * 100),
        "durationSeconds": 1 + int(r() * 7200) if r() < 0.6 else None,
        "occurredAt": _iso(occurred, r),
        "createdAt": _iso(created, r),
        "updatedAt": _iso(updated, r),
        "_us": updated,
    }


_GENERATORS: dict[str, Callable[..., dict]] = {
    "users": _gen_user,
    "groups": _gen_group,
    "trainings": _gen_training,
    "events": _gen_event,
}


def _touch(entity: str, row: dict, rng: random.Random) -> None:
    """What an update changes besides `updatedAt`."""
    if entity == "users":
        row["isActive"] = not row["isActive"]
        row["status"] = "ACTIVE" if row["isActive"] else "ARCHIVED"
        row["lastLoginAt"] = iso(now(), rng)
    elif entity == "groups":
        row["memberCount"] = row["size"] = row["memberCount"] + 1
    elif entity == "trainings":
        row["status"] = rng.choice(_ENUMS["TrainingStatus"])
        row["isMandatory"] = not row["isMandatory"]
    else:
        row["progress"] = min(100, row["progress"] + 10)
        row["durationSeconds"] = (row["durationSeconds"] or 0) + 60


# --- Tables and pages ----------------------------------------------------------------------------


class PageError(Exception):
    """A bad page request; becomes a GraphQL error."""


def encode_cursor(key: tuple[int, str]) -> str:
    return base64.b64encode(f"pluvo:{key[0]}:{key[1]}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        prefix, micros, row_id = base64.b64decode(cursor, validate=True).decode().split(":", 2)
        if prefix != "pluvo":
            raise ValueError(prefix)
        return int(micros), row_id
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise PageError(f"Invalid cursor: {cursor!r}") from exc


def encode_offset(offset: int) -> str:
    """A graphene-style cursor, `arrayconnection:<offset>` (the `cursor_mode = "offset"` switch)."""
    return base64.b64encode(f"arrayconnection:{offset}".encode()).decode()


def decode_offset(cursor: str) -> int:
    try:
        prefix, offset = base64.b64decode(cursor, validate=True).decode().split(":", 1)
        if prefix != "arrayconnection":
            raise ValueError(prefix)
        return int(offset)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise PageError(f"Invalid cursor: {cursor!r}") from exc


@dataclass
class Page:
    rows: list[dict]
    count: int
    has_next: bool
    has_previous: bool
    start: int = 0  # the offset of the first row in the filtered list
    offset_cursors: bool = False

    def cursor(self, index: int) -> str:
        """The cursor of `rows[index]`: its (updatedAt, id) key, or its offset."""
        if self.offset_cursors:
            return encode_offset(self.start + index)
        return encode_cursor(self.rows[index]["_key"])


class Table:
    """The rows of one entity, in (updatedAt, id) order, with caches that mutations drop."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.by_id = {row["id"]: row for row in rows}
        self.edge_cache: dict[Any, dict[str, bytes]] = {}
        self.changed()

    def changed(self) -> None:
        # Nearly sorted after a mutation (changed rows are the newest): timsort is linear then.
        self.rows.sort(key=itemgetter("_key"))
        self.keys = [row["_key"] for row in self.rows]
        self.indexes: dict[str, dict[Any, list[dict]]] = {}
        self.edge_cache.clear()

    def _index(self, name: str) -> dict[Any, list[dict]]:
        index = self.indexes.get(name)
        if index is None:
            index = {}
            for row in self.rows:
                value = row[name].lower() if name == "email" and row[name] else row[name]
                index.setdefault(value, []).append(row)
            self.indexes[name] = index
        return index

    def select(self, filters: dict[str, Any]) -> tuple[list[dict], list[tuple[int, str]]]:
        filters = {k: v for k, v in filters.items() if v is not None}
        if not filters:
            return self.rows, self.keys
        if "id" in filters:
            row = self.by_id.get(str(filters.pop("id")))
            rows = [row] if row else []
        else:
            name = "email" if "email" in filters else "ref"
            value = filters.pop(name)
            rows = self._index(name).get(value.lower() if name == "email" else value, [])
        for name, value in filters.items():
            if name == "email":
                rows = [r for r in rows if r["email"] and r["email"].lower() == value.lower()]
            else:
                rows = [r for r in rows if r[name] == value]
        return rows, [row["_key"] for row in rows]

    def page(
        self,
        first: int | None,
        after: str | None,
        filters: dict[str, Any],
        cap: bool,
        offsets: bool = False,
        limit: int = MAX_PAGE_SIZE,
    ) -> Page:
        if first is None:
            first = limit
        elif first < 0:
            raise PageError("first must be >= 0")
        elif first > limit:
            if not cap:
                raise PageError(f"first must be <= {limit}")
            first = limit
        rows, keys = self.select(filters)
        if offsets:
            start = min(len(rows), decode_offset(after) + 1) if after else 0
        else:
            start = bisect_right(keys, decode_cursor(after)) if after else 0
        end = start + first
        return Page(rows[start:end], len(rows), end < len(rows), start > 0, start, offsets)


# --- The fast path: one connection with plain fields, from cached edge bytes --------------------

_PAGE_INFO_FIELDS = {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor", "__typename"}


@dataclass
class Plan:
    entity: Entity
    response_key: str
    field_node: FieldNode
    variable_defs: dict[str, Any]
    parts: list[tuple[str, str, Any]]  # (response key, what, detail) in selection order


def _plain_fields(selection_set: SelectionSetNode | None) -> list[FieldNode] | None:
    """The selections if all are fields without directives and with distinct response keys."""
    if selection_set is None:
        return None
    fields, keys = [], set()
    for sel in selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.directives:
            return None
        key = sel.alias.value if sel.alias else sel.name.value
        if key in keys:
            return None
        keys.add(key)
        fields.append(sel)
    return fields


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _node_shape(entity: Entity, selection_set: SelectionSetNode | None) -> tuple | None:
    fields = _plain_fields(selection_set)
    if fields is None:
        return None
    specs = {f.name: f for f in entity.fields}
    shape = []
    for node in fields:
        name = node.name.value
        if node.arguments:
            return None
        if name == "__typename":
            shape.append((_key(node), name, entity.type_name))
            continue
        spec = specs.get(name)
        if spec is None:
            return None
        if spec.ref is None:
            shape.append((_key(node), name, None))
            continue
        subs = _plain_fields(node.selection_set)
        if subs is None or any(s.name.value not in ("id", "__typename") for s in subs):
            return None
        ref_type = ENTITIES[spec.ref].type_name
        shape.append((_key(node), name, tuple((_key(s), s.name.value, ref_type) for s in subs)))
    return tuple(shape)


def _make_plan(document: DocumentNode, operation: OperationDefinitionNode) -> Plan | None:
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    roots = _plain_fields(operation.selection_set)
    if not roots or len(roots) != 1 or roots[0].name.value not in _BY_CONNECTION:
        return None
    root = roots[0]
    entity = _BY_CONNECTION[root.name.value]
    variable_defs = {d.variable.name.value: d for d in operation.variable_definitions or ()}
    selections = _plain_fields(root.selection_set)
    if selections is None:
        return None
    plan = Plan(entity, _key(root), root, variable_defs, [])
    for node in selections:
        name, key = node.name.value, _key(node)
        if name in ("count", "__typename"):
            plan.parts.append((key, name, f"{entity.type_name}Connection"))
        elif name == "pageInfo":
            subs = _plain_fields(node.selection_set)
            if subs is None or any(s.name.value not in _PAGE_INFO_FIELDS for s in subs):
                return None
            plan.parts.append((key, name, [(_key(s), s.name.value) for s in subs]))
        elif name == "edges":
            subs = _plain_fields(node.selection_set)
            if subs is None:
                return None
            shape = []
            for sub in subs:
                if sub.name.value == "node":
                    node_shape = _node_shape(entity, sub.selection_set)
                    if node_shape is None:
                        return None
                    shape.append((_key(sub), "node", node_shape))
                elif sub.name.value in ("cursor", "__typename"):
                    shape.append((_key(sub), sub.name.value, f"{entity.type_name}Edge"))
                else:
                    return None
            plan.parts.append((key, name, tuple(shape)))
        else:
            return None
    return plan


def _literal(node: Any) -> Any:
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, StringValueNode):
        return node.value
    raise TypeError(type(node).__name__)


def plain_arguments(
    node: FieldNode, variable_defs: dict[str, Any], variables: dict[str, Any]
) -> dict[str, Any] | None:
    """The field's arguments when they are plain (Int/String/ID values), else None."""
    args: dict[str, Any] = {}
    for arg in node.arguments or ():
        value_node = arg.value
        try:
            if isinstance(value_node, VariableNode):
                name = value_node.name.value
                definition = variable_defs.get(name)
                if definition is None:
                    return None
                if name in variables:
                    value = variables[name]
                elif definition.default_value is not None:
                    value = _literal(definition.default_value)
                elif isinstance(definition.type, NonNullTypeNode):
                    return None
                else:
                    continue
            else:
                value = _literal(value_node)
        except TypeError:
            return None
        arg_name = arg.name.value
        if arg_name == "first":
            if value is not None and (type(value) is not int or abs(value) >= 2**31):
                return None
        elif arg_name == "id" and type(value) is int:
            value = str(value)
        elif value is not None and type(value) is not str:
            return None
        args[arg_name] = value
    return args


def _edge_bytes(row: dict, shape: tuple) -> bytes:
    edge: dict[str, Any] = {}
    for key, what, detail in shape:
        if what == "cursor":
            edge[key] = encode_cursor(row["_key"])
        elif what == "__typename":
            edge[key] = detail
        else:
            node: dict[str, Any] = {}
            for field_key, name, sub in detail:
                if name == "__typename":
                    node[field_key] = sub
                elif sub is None:
                    node[field_key] = row[name]
                else:
                    ref = row[name]
                    node[field_key] = (
                        None if ref is None else {k: (ref if n == "id" else t) for k, n, t in sub}
                    )
            edge[key] = node
    return orjson.dumps(edge)


# --- Tokens --------------------------------------------------------------------------------------


@dataclass
class Token:
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float  # time.time()


def _oauth_error(status: int, error: str, description: str) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return json_response({"error": error, "error_description": description}, status, headers)


def _unauthorized(detail: str, invalid: bool) -> Response:
    challenge = 'Bearer realm="api"' + (', error="invalid_token"' if invalid else "")
    return json_response({"detail": detail}, 401, {"WWW-Authenticate": challenge})


def _graphql_errors(errors: list[GraphQLError], status: int = 200) -> Response:
    return json_response({"errors": [e.formatted for e in errors]}, status)


# --- The API -------------------------------------------------------------------------------------


@dataclass
class Settings:
    token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S
    refuse_client: bool = False
    page_size_mode: str = "cap"
    schema_drift: bool = False
    count_extra: int = 0
    revoke_tokens_after: int | None = None
    # a path or URL: the token endpoint answers 301 to it (an organization moved, a proxy)
    token_redirect: str | None = None
    cursor_mode: str = "keyset"  # "offset": graphene-style `arrayconnection:N` cursors
    silent_cap: int | None = None  # pages hold at most this many rows, whatever `first` asks
    page_limit: int = MAX_PAGE_SIZE  # the cap `page_size_mode` applies (an organization's own)


@dataclass
class _Documents:
    """Parsed and validated queries, and their fast-path plans, by query text."""

    parsed: dict[str, tuple[DocumentNode | None, list[GraphQLError]]] = field(default_factory=dict)
    plans: dict[tuple[str, str | None], Plan | None] = field(default_factory=dict)

    def clear(self) -> None:
        self.parsed.clear()
        self.plans.clear()


class PluvoApi(Api):
    """Pluvo's OAuth2 token endpoint and GraphQL API; see the module docstring."""

    name = "pluvo"

    def __init__(self, rows: int = 1000, seed: int = 42) -> None:
        self.rows_total, self.seed = rows, seed
        self.settings = Settings()
        self.tokens: dict[str, Token] = {}
        self.tables: dict[str, Table] = {}
        self.documents = _Documents()
        self.mutations = 0
        self.organisation = {
            "id": seeded_uuid(random.Random(f"{seed}:pluvo:org")),
            "name": "Sandbox Academy",
            "slug": "pluvo",
            "language": "NL",
            "createdAt": "2019-03-14T09:26:53+01:00",
        }
        self.schema = self._build_schema()

    # schema and data

    def _build_schema(self) -> GraphQLSchema:
        schema = build_schema(schema_sdl(self.settings.schema_drift))
        query = schema.query_type
        assert query is not None
        query.fields["me"].resolve = lambda _root, info: {
            "clientId": info.context.client_id,
            "name": "Sandbox API client",
            "scopes": list(info.context.scopes),
        }
        query.fields["organisation"].resolve = lambda _root, _info: self.organisation
        for entity in ENTITIES.values():
            query.fields[entity.connection].resolve = self._connection_resolver(entity)
            node_type = schema.get_type(entity.type_name)
            for spec in entity.fields:
                if spec.ref and spec.name in node_type.fields:  # type: ignore[union-attr]
                    node_type.fields[spec.name].resolve = self._ref_resolver(spec)  # type: ignore[union-attr]
        return schema

    def _connection_resolver(self, entity: Entity) -> Callable[..., Any]:
        def resolve(
            _root: Any,
            _info: Any,
            first: int | None = None,
            after: str | None = None,
            **filters: Any,
        ) -> dict[str, Any]:
            try:
                page = self._page(entity, first, after, filters)
            except PageError as exc:
                raise GraphQLError(str(exc)) from exc
            cursors = [page.cursor(i) for i in range(len(page.rows))]
            return {
                "edges": [
                    {"cursor": c, "node": r} for c, r in zip(cursors, page.rows, strict=True)
                ],
                "pageInfo": {
                    "hasNextPage": page.has_next,
                    "hasPreviousPage": page.has_previous,
                    "startCursor": cursors[0] if cursors else None,
                    "endCursor": cursors[-1] if cursors else None,
                },
                "count": page.count,
            }

        return resolve

    def _ref_resolver(self, spec: FieldSpec) -> Callable[..., Any]:
        def resolve(row: dict, _info: Any) -> dict | None:
            ref = row[spec.name]
            return None if ref is None else self.table(spec.ref or "").by_id.get(ref)

        return resolve

    def _count(self, entity: str) -> int:
        return max(1, round(self.rows_total * ENTITIES[entity].share))

    def _ids(self, entity: str) -> list[str]:
        rng = random.Random(f"{self.seed}:pluvo:{entity}:ids")
        return [_uuid(rng) for _ in range(self._count(entity))]

    def table(self, entity: str) -> Table:
        """The entity's table, generated on first use (references use the generated ids)."""
        table = self.tables.get(entity)
        if table is None:
            ids = self._ids(entity)
            refs = {name: self._ids(name) for name in ("users", "trainings") if name != entity}
            refs[entity] = ids
            rng = random.Random(f"{self.seed}:pluvo:{entity}")
            generate = _GENERATORS[entity]
            rows = []
            collecting = gc.isenabled()
            gc.disable()  # millions of new dicts, none garbage: collections would only cost time
            try:
                for i, row_id in enumerate(ids):
                    row = generate(rng, i, ids, refs)
                    row["id"] = row_id
                    row["_key"] = (row.pop("_us"), row_id)
                    rows.append(row)
            finally:
                if collecting:
                    gc.enable()
            table = self.tables[entity] = Table(rows)
        return table

    def _entity(self, name: str) -> Entity:
        entity = _BY_CONNECTION.get(name) or ENTITIES.get(name)
        if entity is None:
            raise KeyError(name)
        return entity

    def _page(
        self, entity: Entity, first: int | None, after: str | None, filters: dict[str, Any]
    ) -> Page:
        cap = self.settings.page_size_mode == "cap"
        offsets = self.settings.cursor_mode == "offset"
        if self.settings.silent_cap and (first is None or first > self.settings.silent_cap):
            first = self.settings.silent_cap
        limit = self.settings.page_limit
        page = self.table(entity.key).page(first, after, filters, cap, offsets, limit)
        page.count += self.settings.count_extra
        return page

    # Api interface

    def routes(self) -> list[Any]:
        return [
            Route("/oauth/token/", self.token_endpoint, methods=["POST"]),
            Route("/oauth/token", self.add_slash, methods=["GET", "POST"]),
            Route(
                "/graphql/",
                serving_odd_timestamps(self, self.graphql_endpoint),
                methods=["GET", "POST"],
            ),
            Route("/graphql", self.add_slash, methods=["GET", "POST"]),
        ]

    def describe(self, base_url: str) -> dict[str, Any]:
        return {
            "base_url": f"{base_url}/pluvo/",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ALL_SCOPES,
        }

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        spec = dict(spec)
        result: dict[str, Any] = {}
        if "token_lifetime_s" in spec:
            self.settings.token_lifetime_s = float(spec.pop("token_lifetime_s"))
        if spec.pop("revoke_tokens", False):
            result["revoked"] = len(self.tokens)
            self.tokens.clear()
        if "refuse_client" in spec:
            self.settings.refuse_client = bool(spec.pop("refuse_client"))
        if "page_size_mode" in spec:
            mode = spec.pop("page_size_mode")
            if mode not in ("cap", "error"):
                raise ValueError(f"pluvo: page_size_mode must be 'cap' or 'error', not {mode!r}")
            self.settings.page_size_mode = mode
        if "cursor_mode" in spec:
            mode = spec.pop("cursor_mode")
            if mode not in ("keyset", "offset"):
                raise ValueError(f"pluvo: cursor_mode must be 'keyset' or 'offset', not {mode!r}")
            self.settings.cursor_mode = mode
        if "silent_cap" in spec:
            cap = spec.pop("silent_cap")
            self.settings.silent_cap = None if cap is None else int(cap)
        if "page_limit" in spec:
            self.settings.page_limit = max(1, int(spec.pop("page_limit")))
        if "count_extra" in spec:
            self.settings.count_extra = int(spec.pop("count_extra"))
        if "token_redirect" in spec:
            target = spec.pop("token_redirect")
            self.settings.token_redirect = None if target is None else str(target)
        if "revoke_tokens_after" in spec:
            after = spec.pop("revoke_tokens_after")
            self.settings.revoke_tokens_after = None if after is None else int(after)
        if "schema_drift" in spec:
            self.settings.schema_drift = bool(spec.pop("schema_drift"))
            self.schema = self._build_schema()
            self.documents.clear()
        super().configure(spec)
        return {**result, "settings": vars(self.settings).copy()}

    def truth(self, entity: str) -> list[dict[str, Any]]:
        spec = self._entity(entity)
        fields = [
            (f.name, f.ref is not None)
            for f in spec.visible(self.settings.schema_drift)
            if not f.deprecated
        ]
        rows = []
        for row in self.table(spec.key).rows:
            out = {}
            for name, is_ref in fields:
                value = row[name]
                out[name] = {"id": value} if is_ref and value is not None else value
            rows.append(out)
        return rows

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        entity = self._entity(spec["entity"])
        for name in ENTITIES:  # references must point at generated rows from here on
            self.table(name)
        self.mutations += 1
        rng = random.Random(f"{self.seed}:pluvo:mutate:{self.mutations}")
        table = self.tables[entity.key]
        touched: dict[str, set[str]] = {}
        inserted = self._insert(entity, table, spec.get("insert") or 0, rng)
        updated = self._update(entity, table, spec.get("update") or 0, rng)
        deleted = self._delete(table, spec.get("delete") or 0, rng)
        cascaded = self._cascade(entity.key, set(deleted), rng, touched)
        for name in {entity.key, *touched}:
            self.tables[name].changed()
        return {
            "inserted": inserted,
            "updated": updated,
            "deleted": deleted,
            "cascaded": {name: sorted(ids) for name, ids in cascaded.items()},
        }

    # mutations

    def _stamp(self, row: dict, rng: random.Random) -> None:
        moment = now()
        row["updatedAt"] = iso(moment, rng)
        row["_key"] = ((moment - _UNIX) // timedelta(microseconds=1), row["id"])

    def _apply(self, entity: Entity, row: dict, values: dict[str, Any]) -> None:
        specs = {f.name: f for f in entity.fields}
        for name, value in values.items():
            spec = specs.get(name)
            if spec is None or name == "id":
                raise ValueError(f"{entity.connection} has no settable field {name!r}")
            if spec.ref and value is not None:
                ref_id = value["id"] if isinstance(value, dict) else str(value)
                if ref_id not in self.tables[spec.ref].by_id:
                    raise ValueError(f"{name}: no {spec.ref} row {ref_id!r}")
                value = ref_id
            row[name] = value
            if name == "user":
                row["userId"] = value

    def _insert(self, entity: Entity, table: Table, spec: Any, rng: random.Random) -> list[str]:
        overrides = [{}] * spec if isinstance(spec, int) else list(spec)
        refs = {name: list(self.tables[name].by_id) for name in ENTITIES}
        ids = refs[entity.key]
        inserted = []
        for values in overrides:
            row = _GENERATORS[entity.key](rng, len(ids), ids, refs)
            del row["_us"]
            row["id"] = _uuid(rng)
            moment = now()
            row["createdAt"] = iso(moment, rng)
            if entity.key == "events":
                row["occurredAt"] = row["createdAt"]
            self._stamp(row, rng)
            self._apply(entity, row, dict(values))
            table.rows.append(row)
            table.by_id[row["id"]] = row
            ids.append(row["id"])
            inserted.append(row["id"])
        return inserted

    def _pick(self, table: Table, spec: Any, rng: random.Random) -> list[Any]:
        if isinstance(spec, int):
            ids = [row["id"] for row in table.rows]  # in page order: deterministic
            return rng.sample(ids, min(spec, len(ids)))
        return list(spec)

    def _update(self, entity: Entity, table: Table, spec: Any, rng: random.Random) -> list[str]:
        updated = []
        for item in self._pick(table, spec, rng):
            values = dict(item) if isinstance(item, dict) else {"id": item}
            row = table.by_id.get(str(values.pop("id", None)))
            if row is None:
                raise ValueError(f"{entity.connection}: unknown id in update: {item!r}")
            if values:
                self._apply(entity, row, values)
            else:
                _touch(entity.key, row, rng)
            self._stamp(row, rng)
            updated.append(row["id"])
        return updated

    def _delete(self, table: Table, spec: Any, rng: random.Random) -> list[str]:
        doomed = [str(row_id) for row_id in self._pick(table, spec, rng)]
        missing = [row_id for row_id in doomed if row_id not in table.by_id]
        if missing:
            raise ValueError(f"unknown ids in delete: {missing}")
        for row_id in doomed:
            del table.by_id[row_id]
        gone = set(doomed)
        table.rows = [row for row in table.rows if row["id"] not in gone]
        return doomed

    def _cascade(
        self, entity: str, deleted: set[str], rng: random.Random, touched: dict[str, set[str]]
    ) -> dict[str, set[str]]:
        """Null the references to deleted rows, bumping the referring rows' `updatedAt`."""
        if not deleted:
            return touched
        for other in ENTITIES.values():
            ref_fields = [f.name for f in other.fields if f.ref == entity]
            for row in self.tables[other.key].rows if ref_fields else ():
                hit = False
                for name in ref_fields:
                    ref = row[name]
                    if ref is not None and ref in deleted:
                        row[name] = None
                        if name == "user":
                            row["userId"] = None
                        hit = True
                if hit:
                    self._stamp(row, rng)
                    touched.setdefault(other.key, set()).add(row["id"])
        return touched

    # HTTP

    async def add_slash(self, request: Request) -> Response:
        """Django's APPEND_SLASH: a permanent redirect to the slashed URL, for any method."""
        url = request.url
        return RedirectResponse(str(url.replace(path=url.path + "/")), status_code=301)

    async def token_endpoint(self, request: Request) -> Response:
        if self.settings.token_redirect:
            return RedirectResponse(self.settings.token_redirect, status_code=301)
        form = dict(
            parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        )
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic[:6].lower() == "basic ":
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                client_id = None
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", "Only the client_credentials grant is supported."
            )
        if (
            self.settings.refuse_client
            or client_id != CLIENT_ID
            or not secrets.compare_digest(client_secret or "", CLIENT_SECRET)
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        requested = (form.get("scope") or "").split()
        unknown = [s for s in requested if s not in _SCOPE_ORDER]
        if unknown:
            return _oauth_error(400, "invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
        scopes = tuple(s for s in _SCOPE_ORDER if s in requested or not requested)
        lifetime = self.settings.token_lifetime_s
        access_token = secrets.token_urlsafe(30)
        self.tokens[access_token] = Token(client_id, scopes, time.time() + lifetime)
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(lifetime) if lifetime == int(lifetime) else lifetime,
            "scope": " ".join(scopes),
        }
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate(self, request: Request) -> Token | Response:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _unauthorized("Authentication credentials were not provided.", invalid=False)
        token = self.tokens.get(credentials.strip())
        if token is None or token.expires_at <= time.time():
            self.tokens.pop(credentials.strip(), None)
            return _unauthorized("Invalid or expired token.", invalid=True)
        return token

    def _document(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        cached = self.documents.parsed.get(query)
        if cached is None:
            try:
                document = parse(query)
            except GraphQLError as exc:
                cached = (None, [exc])
            else:
                errors = validate(self.schema, document)
                cached = (None, errors) if errors else (document, [])
            if len(self.documents.parsed) >= 1024:
                self.documents.clear()
            self.documents.parsed[query] = cached
        return cached

    async def graphql_endpoint(self, request: Request) -> Response:
        if self.settings.revoke_tokens_after is not None:
            self.settings.revoke_tokens_after -= 1
            if self.settings.revoke_tokens_after <= 0:
                self.settings.revoke_tokens_after = None
                self.tokens.clear()
        token = self._authenticate(request)
        if isinstance(token, Response):
            return token
        if request.method == "GET":
            params = request.query_params
            payload: Any = {
                "query": params.get("query"),
                "operationName": params.get("operationName"),
            }
            if params.get("variables"):
                try:
                    payload["variables"] = orjson.loads(params["variables"])
                except orjson.JSONDecodeError:
                    payload["variables"] = "invalid"
        else:
            try:
                payload = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return _graphql_errors([GraphQLError("POST body sent invalid JSON.")], 400)
        if not isinstance(payload, dict) or not payload.get("query"):
            return _graphql_errors([GraphQLError("Must provide query string.")], 400)
        query, operation_name = payload["query"], payload.get("operationName")
        variables = payload.get("variables") or {}
        if not isinstance(query, str) or not isinstance(variables, dict):
            return _graphql_errors([GraphQLError("Variables are invalid JSON.")], 400)

        document, errors = self._document(query)
        if document is None:
            return _graphql_errors(errors)
        operation = _operation(document, operation_name)
        if operation is not None:
            roots = _root_fields(document, operation.selection_set)
            log = request.scope.get("sandbox_log")
            if log is not None:
                log["root_fields"] = [node.name.value for node in roots]
                args = (
                    plain_arguments(roots[0], _variable_defs(operation), variables) if roots else {}
                )
                log["args"] = args or {}
            denied = _check_scopes(token, roots)
            if denied is not None:
                return denied
            body = self._fast(query, document, operation, operation_name, variables)
            if body is not None:
                return Response(body, media_type="application/json")
        result = execute(
            self.schema,
            document,
            variable_values=variables,
            operation_name=operation_name,
            context_value=token,
        )
        return json_response(result.formatted)  # type: ignore[union-attr]

    def _fast(
        self,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        operation_name: str | None,
        variables: dict[str, Any],
    ) -> bytes | None:
        """The response body from cached edge bytes, or None to let graphql-core execute."""
        plan_key = (query, operation_name)
        if plan_key in self.documents.plans:
            plan = self.documents.plans[plan_key]
        else:
            plan = self.documents.plans[plan_key] = _make_plan(document, operation)
        if plan is None:
            return None
        args = plain_arguments(plan.field_node, plan.variable_defs, variables)
        if args is None:
            return None
        first, after = args.pop("first", None), args.pop("after", None)
        try:
            page = self._page(plan.entity, first, after, args)
        except PageError:
            return None  # graphql-core words the error
        if page.offset_cursors and any(
            what == "edges" and any(w == "cursor" for _, w, _ in detail)
            for _, what, detail in plan.parts
        ):
            return None  # cached edges carry keyset cursors; graphql-core renders offsets
        table = self.tables[plan.entity.key]
        parts = []
        for key, what, detail in plan.parts:
            prefix = orjson.dumps(key) + b":"
            if what == "count":
                parts.append(prefix + str(page.count).encode())
            elif what == "__typename":
                parts.append(prefix + orjson.dumps(detail))
            elif what == "pageInfo":
                parts.append(prefix + orjson.dumps(_page_info(page, detail)))
            else:
                cache = table.edge_cache.setdefault(detail, {})
                edges = []
                for row in page.rows:
                    edge = cache.get(row["id"])
                    if edge is None:
                        edge = cache[row["id"]] = _edge_bytes(row, detail)
                    edges.append(edge)
                parts.append(prefix + b"[" + b",".join(edges) + b"]")
        return b'{"data":{' + orjson.dumps(plan.response_key) + b":{" + b",".join(parts) + b"}}}"


def _page_info(page: Page, fields: list[tuple[str, str]]) -> dict[str, Any]:
    values = {
        "hasNextPage": page.has_next,
        "hasPreviousPage": page.has_previous,
        "startCursor": page.cursor(0) if page.rows else None,
        "endCursor": page.cursor(len(page.rows) - 1) if page.rows else None,
        "__typename": "PageInfo",
    }
    return {key: values[name] for key, name in fields}


def _variable_defs(operation: OperationDefinitionNode) -> dict[str, Any]:
    return {d.variable.name.value: d for d in operation.variable_definitions or ()}


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> list[FieldNode]:
    """The root fields an operation selects, through fragments."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    fields: list[FieldNode] = []
    pending, seen = [selection_set], set()
    while pending:
        for sel in pending.pop(0).selections:
            if isinstance(sel, FieldNode):
                fields.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                pending.append(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                seen.add(sel.name.value)
                pending.append(fragments[sel.name.value].selection_set)
    return fields


def _check_scopes(token: Token, roots: list[FieldNode]) -> Response | None:
    required = {_REQUIRED_SCOPE[n.name.value] for n in roots if n.name.value in _REQUIRED_SCOPE}
    missing = [s for s in _SCOPE_ORDER if s in required and s not in token.scopes]
    if not missing:
        return None
    body = {
        "detail": f"Missing required scope: {missing[0]}",
        "required_scope": missing[0],
        "missing_scopes": missing,
        "token_scopes": list(token.scopes),
    }
    return json_response(body, 403)


def build(config: Any) -> PluvoApi:
    """The Pluvo API for this sandbox: sizes from `config.rows`, data from `config.seed`."""
    return PluvoApi(rows=config.rows, seed=config.seed)
