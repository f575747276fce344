"""PlusPlus GraphQL sandbox data: the entity catalogue, seeded rows, filters, order and mutations.

Every entity is described as data (`ENTITIES`): its GraphQL node type, its fields (a small type
notation, see `FieldSpec`), its connection filters and whether it is incremental (has the
`modified_gte` filter and is ordered by `(modified, pk)`). Rows are plain dicts keyed by field
name; a reference to another entity is stored as its pk (a list of pks for lists of objects), and
computed fields (`id`, signed image URLs) are derived when a row is served. Private keys start
with `_` (`_m`: `modified` in integer microseconds, `_c`: has an image).
"""

from __future__ import annotations

import base64
import bisect
import functools
import gc
import hashlib
import itertools
import random
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from lxp_sync_sandbox.base import EPOCH, OFFSETS, now, parse_iso

# -- the entity catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a node type.

    `type` notation: a GraphQL type (`Int!`, `[String]!`, `DateTime`, `EventStatus!`), or `@entity`
    for a nested object of another entity (always nullable), `[@entity]!` for a list of them.
    """

    name: str
    type: str
    description: str | None = None
    deprecation_reason: str | None = None
    drift: bool = False  # only present while schema drift is switched on

    @property
    def ref(self) -> str | None:
        return self.type.strip("[]!").removeprefix("@") if "@" in self.type else None

    @property
    def many(self) -> bool:
        return self.type.startswith("[")


@dataclass(frozen=True)
class FilterSpec:
    """A connection argument that filters rows: `in` (list, OR), `any` (list field overlaps), `eq`."""

    arg: str
    field: str
    kind: str  # in | any | eq | after (a datetime at or after) | contains (case-insensitive)
    type: str  # GraphQL input type
    vendor: bool = False  # only with the `vendor_filters` switch (the names PlusPlus's pages use)


@dataclass(frozen=True)
class EntitySpec:
    name: str  # root connection name; also the truth/mutate entity name
    type_name: str  # GraphQL node type
    share: float  # of config.rows
    minimum: int
    first_pk: int
    fields: tuple[FieldSpec, ...]
    filters: tuple[FilterSpec, ...] = ()
    incremental: bool = False  # `modified_gte` filter; ordered by (modified, pk)
    root: bool = True  # a root connection (content items are only nested)
    image: str | None = None  # name of the signed image URL field
    optional: bool = False  # a root connection only with its switch (`created_only`)

    @property
    def has_modified(self) -> bool:
        return any(f.name == "modified" for f in self.fields)

    def visible_fields(self, drift: bool) -> list[FieldSpec]:
        return [f for f in self.fields if drift or not f.drift]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)


def _common_head() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("pk", "Int!", "Primary key."),
        FieldSpec("id", "ID!", "The ID of the object (relay global id)."),
    )


def _common_tail() -> tuple[FieldSpec, ...]:
    return (
        FieldSpec("created", "DateTime!"),
        FieldSpec("modified", "DateTime!"),
        FieldSpec("is_deleted", "Boolean!"),
    )


_IS_DELETED = FilterSpec("is_deleted", "is_deleted", "eq", "Boolean")
_PK = FilterSpec("pk", "pk", "in", "[Int]")

ENUMS: dict[str, tuple[str, ...]] = {
    "UserRole": ("ADMIN", "ORGANIZER", "REGULAR"),
    "EventStatus": ("DRAFT", "SCHEDULED", "CANCELLED", "COMPLETED"),
    "EnrollmentStatus": ("GOING", "WAITLIST", "NOT_GOING", "ATTENDED", "NO_SHOW"),
    "AssignmentState": ("NOT_STARTED", "IN_PROGRESS", "COMPLETED", "DROPPED", "EXEMPTED"),
}

ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "users",
            "UserType",
            0.12,
            20,
            10,
            _common_head()
            + (
                FieldSpec("name", "String!", "Full name."),
                FieldSpec("first_name", "String!"),
                FieldSpec("last_name", "String!"),
                FieldSpec("email", "String!"),
                FieldSpec("username", "String", deprecation_reason="Use email."),
                FieldSpec("title", "String"),
                FieldSpec("department", "String"),
                FieldSpec("role", "UserRole!"),
                FieldSpec("is_active", "Boolean!"),
                FieldSpec("timezone", "String!"),
                FieldSpec("language", "String"),
                FieldSpec("avatar_url", "String", "Signed URL, valid for 7 days."),
                FieldSpec("manager", "@users"),
                FieldSpec("tags", "[String]!"),
                FieldSpec("last_login", "DateTime"),
            )
            + _common_tail(),
            (_IS_DELETED, _PK, FilterSpec("email", "email", "eq", "String")),
            incremental=True,
            image="avatar_url",
        ),
        EntitySpec(
            "event_types",
            "EventTypeType",
            0.03,
            5,
            31,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("slug", "String!"),
                FieldSpec("description", "String"),
                FieldSpec("duration_minutes", "Int"),
                FieldSpec("is_published", "Boolean!"),
                FieldSpec("average_feedback_rating", "Float"),
                FieldSpec("cover_url", "String", "Signed URL, valid for 7 days."),
                FieldSpec("tags", "[String]!"),
                FieldSpec("owner", "@users"),
            )
            + _common_tail(),
            (_IS_DELETED, _PK),
            image="cover_url",
        ),
        EntitySpec(
            "locations",
            "LocationType",
            0.02,
            3,
            3,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("address", "String"),
                FieldSpec("timezone", "String!"),
                FieldSpec("is_online", "Boolean!"),
                FieldSpec("capacity", "Int"),
                FieldSpec("latitude", "Float"),
                FieldSpec("longitude", "Float"),
            )
            + _common_tail(),
            (_IS_DELETED, _PK),
        ),
        EntitySpec(
            "events",
            "EventType",
            0.28,
            30,
            407,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("description", "String"),
                FieldSpec("status", "EventStatus!"),
                FieldSpec("starts_at", "DateTime!"),
                FieldSpec("ends_at", "DateTime!"),
                FieldSpec("duration_minutes", "Int!"),
                FieldSpec("duration", "Int", deprecation_reason="Use duration_minutes."),
                FieldSpec("is_online", "Boolean!"),
                FieldSpec("watch_link", "String"),
                FieldSpec("enrollment_limit", "Int"),
                FieldSpec("enrollment_count", "Int!"),
                FieldSpec("price", "Float"),
                FieldSpec("event_type", "@event_types"),
                FieldSpec("location", "@locations"),
                FieldSpec("presenters", "[@users]!"),
                FieldSpec("tags", "[String]!"),
                FieldSpec("custom_fields", "GenericScalar"),
                FieldSpec("registration_form", "JSONString", "The sign-up form, as JSON text."),
                FieldSpec("cover_url", "String", "Signed URL, valid for 7 days."),
            )
            + _common_tail()
            + (FieldSpec("capacity_note", "String", "Notes on capacity.", drift=True),),
            (
                _IS_DELETED,
                _PK,
                FilterSpec("presenter_id", "presenters", "any", "[Int]"),
                FilterSpec("event_type_id", "event_type", "in", "[Int]"),
                FilterSpec("location_id", "location", "in", "[Int]"),
                FilterSpec("starts_at_after", "starts_at", "after", "DateTime", vendor=True),
                FilterSpec("name", "name", "contains", "String", vendor=True),
            ),
            incremental=True,
            image="cover_url",
        ),
        EntitySpec(
            "enrollments",
            "EnrollmentType",
            0.34,
            40,
            1001,
            _common_head()
            + (
                FieldSpec("user", "@users"),
                FieldSpec("event", "@events"),
                FieldSpec("status", "EnrollmentStatus!"),
                FieldSpec("checked_in", "Boolean!"),
                FieldSpec("rating", "Int"),
                FieldSpec("feedback", "String"),
                FieldSpec("enrolled_at", "DateTime!"),
            )
            + _common_tail(),
            (
                _IS_DELETED,
                _PK,
                FilterSpec("user_id", "user", "in", "[Int]"),
                FilterSpec("event_id", "event", "in", "[Int]"),
            ),
            incremental=True,
        ),
        EntitySpec(
            "content_items",
            "ContentItemType",
            0.02,
            10,
            5001,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("content_type", "String!"),
            )
            + _common_tail(),
            root=False,
        ),
        EntitySpec(
            "assignments",
            "AssignmentType",
            0.14,
            20,
            70001,
            _common_head()
            + (
                FieldSpec("user", "@users"),
                FieldSpec("assigner", "@users"),
                FieldSpec("content_item", "@content_items"),
                FieldSpec("state", "AssignmentState!"),
                FieldSpec("progress", "Float!"),
                FieldSpec("due_date", "Date"),
                FieldSpec("completed_at", "DateTime"),
            )
            + _common_tail(),
            (
                _IS_DELETED,
                _PK,
                FilterSpec("user_id", "user", "in", "[Int]"),
                FilterSpec("content_item_id", "content_item", "in", "[Int]"),
            ),
        ),
        EntitySpec(
            "tracks",
            "TrackType",
            0.04,
            5,
            801,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("description", "String"),
                FieldSpec("items_count", "Int!"),
                FieldSpec("duration_minutes", "Int"),
                FieldSpec("is_published", "Boolean!"),
                FieldSpec("cover_url", "String", "Signed URL, valid for 7 days."),
                FieldSpec("tags", "[String]!"),
                FieldSpec("owner", "@users"),
            )
            + _common_tail(),
            (_IS_DELETED, _PK),
            image="cover_url",
        ),
        EntitySpec(
            "tags",
            "TagType",
            0.03,
            5,
            1,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("slug", "String!"),
            )
            + _common_tail(),
            (_IS_DELETED, _PK),
        ),
        # A type with `created` and no `modified`: its soft deletes (and updates) move no cursor.
        EntitySpec(
            "badges",
            "BadgeType",
            0.02,
            5,
            90001,
            _common_head()
            + (
                FieldSpec("name", "String!"),
                FieldSpec("user", "@users"),
                FieldSpec("created", "DateTime!"),
                FieldSpec("is_deleted", "Boolean!"),
            ),
            (_IS_DELETED, _PK),
        ),
        EntitySpec(
            "comments",
            "CommentType",
            0.02,
            10,
            95001,
            _common_head()
            + (
                FieldSpec("body", "String!"),
                FieldSpec("author", "@users"),
                FieldSpec("event", "@events"),
                FieldSpec("created", "DateTime!"),
                FieldSpec("is_deleted", "Boolean!"),
            ),
            (_IS_DELETED, _PK),
            optional=True,
        ),
    )
}

# -- values ---------------------------------------------------------------------------------------

START = datetime(2019, 1, 1, tzinfo=UTC)
_START_S = int(START.timestamp())
_EPOCH_S = int(EPOCH.timestamp())
_DAY = 86400

FIRST_NAMES = (
    "Ana", "José", "Zoë", "Łukasz", "Søren", "Aiko", "Chloé", "Mohammed", "Priya", "Björn",
    "Nguyễn", "Olúwaseun", "Ingrid", "Mateo", "Fatima", "Jürgen", "Siobhán", "Wei", "Dmitrii",
    "Émilie", "Kwame", "Lucía", "Noa", "Ren", "Michael", "Sarah",
)  # fmt: skip
LAST_NAMES = (
    "García", "Müller", "O'Brien", "Dvořák", "Kowalski", "Tanaka", "Okafor", "Svensson",
    "Nakamura", "Rossi", "Petrov", "Haddad", "Silva", "Chen 陈", "Ng", "Andersen", "Fernández",
    "Ivanova", "Kim", "Wallace", "Øvergaard", "Núñez",
)  # fmt: skip
TITLES = ("Engineer", "Senior Engineer", "Product Manager", "Designer", "Data Analyst",
          "Head of People", "Sales Lead", "Directeur financier", "Support Specialist")  # fmt: skip
DEPARTMENTS = ("Engineering", "Product", "People", "Finance", "Sales", "Support", "R&D")
TIMEZONES = ("America/Los_Angeles", "America/New_York", "Europe/Berlin", "Europe/London",
             "Asia/Kolkata", "Asia/Tokyo", "America/Sao_Paulo", "Australia/Sydney")  # fmt: skip
LANGUAGES = ("en", "de", "pt-br", "es", "ja", "fr")
TOPICS = (
    "Agile Training", "High Output Management", "Core Python", "Data Literacy 101",
    "Négociation avancée", "Führung im Wandel", "Design Thinking", "SQL for Analysts",
    "Public Speaking", "🚀 Product Launch Workshop", "Kubernetes Deep Dive",
    "Onboarding – Week 1", "Inclusive Leadership", "Time Management", "会議ファシリテーション",
    "Security Awareness", "Customer Empathy Lab", "Effective 1:1s", 'Writing "Great" Docs',
    "Excel Tips & Tricks",
)  # fmt: skip
DESCRIPTIONS = (
    "An introduction for new joiners.",
    "Hands-on session; bring a laptop.\nSlides are shared afterwards.",
    "<p>Covers the <b>basics</b> and a few advanced topics.</p>",
    "Sessão em português, com tradução simultânea.",
    "",
    "Deep dive with exercises — 90 minutes, no recording.",
    "Für alle Führungskräfte. Anmeldung erforderlich.",
    "Q&A at the end ✅",
)
TAG_NAMES = ("python", "leadership", "onboarding", "sql", "compliance", "ux", "agile", "data",
             "security", "soft-skills", "management", "devops", "sales", "café", "ñandú",
             "🚀launch")  # fmt: skip
PLACES = ("Berlin HQ – Room 4.01", "São Paulo Office", "NYC 5th Ave", "Zoom", "Google Meet",
          "Tokyo Shibuya", "Bengaluru Campus", "London King's Cross", "Remote")  # fmt: skip
CONTENT_TYPES = ("article", "video", "event_type", "track", "course", "link")

_SIGNING_KEY = b"sandbox-cdn-signing-key"


@functools.lru_cache(maxsize=4096)
def ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() else "-" for c in folded.lower()).strip("-") or "x"


class FastRandom(random.Random):
    """`random.Random` with cheaper `choice`, `randint` and weighted `choices` (1M rows to make)."""

    _cumulative: dict[tuple, list[float]] = {}

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choices(self, population: Any, weights: Any = None, **kwargs: Any) -> list[Any]:
        if weights is None or kwargs:
            return super().choices(population, weights, **kwargs)
        cumulative = self._cumulative.get(weights)
        if cumulative is None:
            cumulative = self._cumulative[weights] = list(itertools.accumulate(weights))
        index = bisect.bisect(cumulative, self.random() * cumulative[-1])
        return [population[index]]


# (seconds east of UTC, ISO suffix) of each offset the sandbox writes.
_OFFSETS = [
    (int(tz.utcoffset(None).total_seconds()), datetime(2000, 1, 1, tzinfo=tz).isoformat()[19:])
    for tz in OFFSETS
]


@functools.lru_cache(maxsize=8192)
def _day_prefix(day: int) -> str:
    return time.strftime("%Y-%m-%dT", time.gmtime(day * _DAY))


def stamp(seconds: int, rng: random.Random) -> str:
    """Timezone-aware ISO-8601 as graphene's DateTime writes it (`+00:00`, never `Z`)."""
    shift, suffix = _OFFSETS[int(rng.random() * len(_OFFSETS))]
    day, rest = divmod(seconds + shift, _DAY)
    hours, rest = divmod(rest, 3600)
    return f"{_day_prefix(day)}{_TWO[hours]}:{_TWO[rest // 60]}:{_TWO[rest % 60]}{suffix}"


_TWO = [f"{n:02d}" for n in range(60)]


def micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def global_id(type_name: str, pk: int) -> str:
    return base64.b64encode(f"{type_name}:{pk}".encode()).decode()


def url_expiry() -> int:
    """`Expires` of signed URLs: 7 to 8 days from now, the same all UTC day (so truth matches)."""
    return (int(time.time()) // _DAY + 8) * _DAY


def signed_url(entity: str, pk: int, expires: int) -> str:
    """A CDN URL signed with a keyed BLAKE2 MAC (cheaper than hmac's wrapper, same idea)."""
    path = f"/{entity}/{pk}/cover.png"
    digest = hashlib.blake2b(f"{path}:{expires}".encode(), key=_SIGNING_KEY, digest_size=18)
    signature = base64.urlsafe_b64encode(digest.digest()).decode()
    return f"https://cdn.example.com{path}?Expires={expires}&Signature={signature}"


# -- row generators -------------------------------------------------------------------------------


@dataclass
class GenContext:
    """What a generator needs besides its rng: the pks of the entities it references."""

    pks: Callable[[str], list[int]]


def _lifetime(rng: random.Random) -> tuple[int, int]:
    created = rng.randint(_START_S, _EPOCH_S - 30 * _DAY)
    modified = created + int((_EPOCH_S - 1 - created) * rng.random() ** 2)
    return created, modified


def _times(row: dict[str, Any], rng: random.Random, created: int, modified: int) -> None:
    row["created"] = stamp(created, rng)
    row["modified"] = stamp(modified, rng)
    row["_m"] = modified * 1_000_000
    row["is_deleted"] = rng.random() < 0.05


def _maybe(rng: random.Random, share: float, value: Any) -> Any:
    return value if rng.random() >= share else None


def _few(rng: random.Random, population: Any, most: int) -> list[Any]:
    """0 to `most` distinct picks (cheaper than `sample` for a handful out of many)."""
    count = int(rng.random() * (most + 1))
    return list(dict.fromkeys(rng.choice(population) for _ in range(count)))


def _tags(rng: random.Random) -> list[str]:
    return _few(rng, TAG_NAMES, 3)


def _gen_user(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    created, modified = _lifetime(rng)
    users = ctx.pks("users")
    email = f"{ascii_slug(first)}.{ascii_slug(last)}.{pk}@example.com"
    row = {
        "pk": pk,
        "name": f"{first} {last}",
        "first_name": first,
        "last_name": last,
        "email": email,
        "username": _maybe(rng, 0.3, email.split("@")[0]),
        "title": _maybe(rng, 0.2, rng.choice(TITLES)),
        "department": _maybe(rng, 0.25, rng.choice(DEPARTMENTS)),
        "role": rng.choices(ENUMS["UserRole"], (1, 3, 30))[0],
        "is_active": rng.random() < 0.9,
        "timezone": rng.choice(TIMEZONES),
        "language": _maybe(rng, 0.1, rng.choice(LANGUAGES)),
        "manager": _maybe(rng, 0.3, rng.choice(users)),
        "tags": _tags(rng),
        "last_login": None,
        "_c": rng.random() < 0.6,
    }
    if rng.random() < 0.85:
        row["last_login"] = stamp(rng.randint(created, _EPOCH_S - 1), rng)
    _times(row, rng, created, modified)
    return row


def _gen_event_type(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    topic = rng.choice(TOPICS)
    name = topic if rng.random() < 0.5 else f"{topic} ({pk})"
    created, modified = _lifetime(rng)
    row = {
        "pk": pk,
        "name": name,
        "slug": f"{ascii_slug(topic)}-{pk}",
        "description": _maybe(rng, 0.3, rng.choice(DESCRIPTIONS)),
        "duration_minutes": _maybe(rng, 0.1, rng.choice((30, 45, 60, 90, 120, 480))),
        "is_published": rng.random() < 0.8,
        "average_feedback_rating": _maybe(rng, 0.4, round(rng.uniform(1, 5), 2)),
        "tags": _tags(rng),
        "owner": _maybe(rng, 0.1, rng.choice(ctx.pks("users"))),
        "_c": rng.random() < 0.7,
    }
    _times(row, rng, created, modified)
    return row


def _gen_location(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    place = rng.choice(PLACES)
    online = place in ("Zoom", "Google Meet", "Remote")
    created, modified = _lifetime(rng)
    row = {
        "pk": pk,
        "name": place if rng.random() < 0.5 else f"{place} #{pk}",
        "address": None if online else f"{rng.randint(1, 400)} Example Street, {place}",
        "timezone": rng.choice(TIMEZONES),
        "is_online": online,
        "capacity": None if online else rng.choice((8, 12, 20, 50, 200)),
        "latitude": None if online else round(rng.uniform(-60, 60), 6),
        "longitude": None if online else round(rng.uniform(-170, 170), 6),
    }
    _times(row, rng, created, modified)
    return row


def _custom_fields(rng: random.Random) -> dict[str, Any] | None:
    roll = rng.random()
    if roll < 0.5:
        return None
    if roll < 0.8:
        return {
            "cost_center": f"CC-{rng.randint(100, 999)}",
            "region": rng.choice(("EMEA", "AMER")),
        }
    return {"internal": rng.random() < 0.5, "codes": [rng.randint(1, 9) for _ in range(2)],
            "note": "Ünïcode ✓"}  # fmt: skip


def registration_form(pk: int) -> str | None:
    """JSON text (graphene's JSONString): objects, lists, a lone string, or null; from the pk
    alone, so that the other fields' random draws stay as they were."""
    kind = pk % 10
    if kind < 4:
        return None
    if kind < 7:
        fields = [{"name": "dietary", "required": kind == 5}, {"name": "t-shirt", "size": "M"}]
        return orjson.dumps({"fields": fields, "capacity": pk % 50, "ratio": 0.125}).decode()
    if kind < 9:
        return orjson.dumps(["name", "email", {"consent": True}]).decode()
    return orjson.dumps("closed — ask the organizer").decode()  # a lone string: '"..."'


def _gen_event(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    topic = rng.choice(TOPICS)
    created, modified = _lifetime(rng)
    starts = created + rng.randint(_DAY, 120 * _DAY)
    minutes = rng.choice((30, 45, 60, 90, 120, 240))
    online = rng.random() < 0.4
    limit = _maybe(rng, 0.3, rng.choice((10, 20, 30, 100)))
    users = ctx.pks("users")
    row = {
        "pk": pk,
        "name": topic if rng.random() < 0.3 else f"{topic} – Cohort {rng.randint(1, 40)}",
        "description": _maybe(rng, 0.25, rng.choice(DESCRIPTIONS)),
        "status": rng.choices(ENUMS["EventStatus"], (1, 4, 1, 6))[0],
        "starts_at": stamp(starts, rng),
        "ends_at": stamp(starts + minutes * 60, rng),
        "duration_minutes": minutes,
        "duration": minutes,
        "is_online": online,
        "watch_link": f"https://meet.example.com/{pk}" if online else None,
        "enrollment_limit": limit,
        "enrollment_count": rng.randint(0, limit or 60),
        "price": _maybe(rng, 0.7, round(rng.uniform(0, 500), 2)),
        "event_type": rng.choice(ctx.pks("event_types")),
        "location": _maybe(rng, 0.1, rng.choice(ctx.pks("locations"))),
        "presenters": _few(rng, users, 3),
        "tags": _tags(rng),
        "custom_fields": _custom_fields(rng),
        "registration_form": registration_form(pk),
        "_c": rng.random() < 0.5,
        "capacity_note": _maybe(rng, 0.4, rng.choice(("Room fits 12", "Overflow room booked",
                                                       "Hybrid — 8 seats on site", "Sin límite"))),
    }  # fmt: skip
    _times(row, rng, created, modified)
    return row


def _gen_enrollment(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, modified = _lifetime(rng)
    status = rng.choices(ENUMS["EnrollmentStatus"], (6, 1, 1, 5, 1))[0]
    row = {
        "pk": pk,
        "user": rng.choice(ctx.pks("users")),
        "event": rng.choice(ctx.pks("events")),
        "status": status,
        "checked_in": status == "ATTENDED",
        "rating": rng.randint(1, 5) if status == "ATTENDED" and rng.random() < 0.6 else None,
        "feedback": _maybe(rng, 0.85, rng.choice(("Great!", "Très utile 👍", "Too long", "OK"))),
        "enrolled_at": stamp(created, rng),
    }
    _times(row, rng, created, modified)
    return row


def _gen_content_item(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, modified = _lifetime(rng)
    row = {
        "pk": pk,
        "name": f"{rng.choice(TOPICS)} · {rng.choice(CONTENT_TYPES)}",
        "content_type": rng.choice(CONTENT_TYPES),
    }
    _times(row, rng, created, modified)
    return row


def _gen_assignment(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, modified = _lifetime(rng)
    state = rng.choices(ENUMS["AssignmentState"], (4, 3, 6, 1, 1))[0]
    users = ctx.pks("users")
    done = state == "COMPLETED"
    due = created + rng.randint(7, 90) * _DAY
    row = {
        "pk": pk,
        "user": rng.choice(users),
        "assigner": _maybe(rng, 0.2, rng.choice(users)),
        "content_item": rng.choice(ctx.pks("content_items")),
        "state": state,
        "progress": 1.0 if done else (0.0 if state == "NOT_STARTED" else round(rng.random(), 3)),
        "due_date": _maybe(rng, 0.3, datetime.fromtimestamp(due, UTC).date().isoformat()),
        "completed_at": stamp(rng.randint(created, modified), rng) if done else None,
    }
    _times(row, rng, created, modified)
    return row


def _gen_track(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, modified = _lifetime(rng)
    row = {
        "pk": pk,
        "name": f"{rng.choice(TOPICS)} Track",
        "description": _maybe(rng, 0.3, rng.choice(DESCRIPTIONS)),
        "items_count": rng.randint(0, 25),
        "duration_minutes": _maybe(rng, 0.2, rng.randint(10, 2000)),
        "is_published": rng.random() < 0.75,
        "tags": _tags(rng),
        "owner": _maybe(rng, 0.1, rng.choice(ctx.pks("users"))),
        "_c": rng.random() < 0.5,
    }
    _times(row, rng, created, modified)
    return row


def _gen_tag(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    base = TAG_NAMES[pk % len(TAG_NAMES)]
    name = base if pk <= len(TAG_NAMES) else f"{base}-{pk}"
    created, modified = _lifetime(rng)
    row = {"pk": pk, "name": name, "slug": ascii_slug(name) + f"-{pk}"}
    _times(row, rng, created, modified)
    return row


def _gen_badge(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, modified = _lifetime(rng)
    row = {"pk": pk, "name": rng.choice(BADGE_NAMES), "user": rng.choice(ctx.pks("users"))}
    _times(row, rng, created, modified)  # `modified` is kept, not served: the type has none
    return row


BADGE_NAMES = ("First event", "Ten events", "Presenter", "Mentor", "Early bird", "Completionist")


def _gen_comment(pk: int, rng: random.Random, ctx: GenContext) -> dict[str, Any]:
    created, _ = _lifetime(rng)
    row = {
        "pk": pk,
        "body": rng.choice(("Looking forward!", "Merci 🙏", "Slides?", "")),
        "author": _maybe(rng, 0.1, rng.choice(ctx.pks("users"))),
        "event": rng.choice(ctx.pks("events")),
    }
    _times(row, rng, created, created)
    del row["modified"]  # only `created`: nothing records a later change
    return row


GENERATORS: dict[str, Callable[[int, random.Random, GenContext], dict[str, Any]]] = {
    "users": _gen_user,
    "event_types": _gen_event_type,
    "locations": _gen_location,
    "events": _gen_event,
    "enrollments": _gen_enrollment,
    "content_items": _gen_content_item,
    "assignments": _gen_assignment,
    "tracks": _gen_track,
    "tags": _gen_tag,
    "badges": _gen_badge,
    "comments": _gen_comment,
}


def _update_row(entity: str, row: dict[str, Any], rng: random.Random) -> None:
    """Change a value a client can see (the caller bumps `modified`)."""
    if entity == "enrollments":
        row["status"] = "ATTENDED"
        row["checked_in"] = True
        row["rating"] = rng.randint(1, 5)
    elif entity == "assignments":
        row["state"] = "IN_PROGRESS"
        row["progress"] = round(rng.uniform(0.01, 0.99), 3)
    elif entity == "users":
        row["title"] = f"{rng.choice(TITLES)} (updated)"
    elif entity == "comments":
        row["body"] = f"{row['body']} (edited)"
    else:
        row["name"] = f"{row['name'].removesuffix(' (updated)')} (updated)"


# -- tables ---------------------------------------------------------------------------------------


@dataclass
class Selection:
    """The filtered rows of a connection in order, and their `modified` keys (for `modified_gte`)."""

    rows: list[dict[str, Any]]
    keys: list[int] | None

    def since(self, modified_gte: datetime | None) -> tuple[list[dict[str, Any]], int]:
        """Rows (and the offset where they start) whose `modified` is at or after the bound."""
        if modified_gte is None or self.keys is None:
            return self.rows, 0
        return self.rows, bisect.bisect_left(self.keys, micros(modified_gte))


class Table:
    """One entity's rows, generated on first use, ordered as its connection lists them."""

    def __init__(self, spec: EntitySpec, store: Store) -> None:
        self.spec = spec
        self.store = store
        self.by_pk: dict[int, dict[str, Any]] = {}  # never replaced: compiled plans hold it
        self._ordered: list[dict[str, Any]] | None = None
        self._selections: OrderedDict[tuple, Selection] = OrderedDict()
        self._generated = False
        self._pks: list[int] | None = None
        self._next_pk = spec.first_pk

    @property
    def size(self) -> int:
        return max(self.spec.minimum, round(self.store.rows * self.spec.share))

    def initial_pks(self) -> list[int]:
        """The pks of the generated rows (cheap: references are drawn from these)."""
        if self._pks is None:
            rng = random.Random(f"{self.store.seed}:{self.spec.name}:pks")
            pk, pks = self.spec.first_pk, []
            for _ in range(self.size):
                pks.append(pk)
                pk += 1 if rng.random() >= 0.03 else 2
            self._pks = pks
        return self._pks

    def ensure(self) -> Table:
        if not self._generated:
            rng = FastRandom(f"{self.store.seed}:{self.spec.name}")
            make, ctx = GENERATORS[self.spec.name], self.store.context
            # Hundreds of thousands of new dicts would trigger full collections over and over;
            # once made, the rows live as long as the process, so keep them out of the GC's way.
            collecting = gc.isenabled()
            gc.disable()
            try:
                self.by_pk.update((pk, make(pk, rng, ctx)) for pk in self.initial_pks())
            finally:
                if collecting:
                    gc.enable()
            gc.freeze()
            self._next_pk = self.initial_pks()[-1] + 1
            self._generated = True
        return self

    def ordered(self) -> list[dict[str, Any]]:
        """Every row in connection order: (modified, pk) when incremental, else pk."""
        self.ensure()
        if self._ordered is None:
            rows = list(self.by_pk.values())
            if self.spec.incremental:
                rows.sort(key=lambda r: (r["_m"], r["pk"]))
            else:
                rows.sort(key=lambda r: r["pk"])
            self._ordered = rows
        return self._ordered

    def select(self, filters: dict[str, Any]) -> Selection:
        """Rows matching the filters (None and empty lists do not filter); cached until a change."""
        active = {
            spec.arg: filters[spec.arg]
            for spec in self.spec.filters
            if filters.get(spec.arg) is not None and filters[spec.arg] != []
        }
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in active.items()))
        cached = self._selections.get(key)
        if cached is not None:
            self._selections.move_to_end(key)
            return cached
        rows = self.ordered()
        for spec in self.spec.filters:
            if spec.arg in active:
                rows = [r for r in rows if _matches(spec, r, active[spec.arg])]
        keys = [r["_m"] for r in rows] if self.spec.incremental else None
        selection = Selection(rows, keys)
        self._selections[key] = selection
        if len(self._selections) > 32:
            self._selections.popitem(last=False)
        return selection

    def changed(self) -> None:
        self._ordered = None
        self._selections.clear()

    # -- mutations

    def insert(self, count: int, rng: random.Random) -> list[int]:
        self.ensure()
        make, ctx = GENERATORS[self.spec.name], self.store.context
        pks = []
        for _ in range(count):
            pk = self._next_pk
            self._next_pk += 1
            row = make(pk, rng, ctx)
            moment = now()
            row["created"] = stamp_now(moment, rng)
            if self.spec.has_modified:
                row["modified"] = row["created"]
            row["_m"] = micros(moment)
            row["is_deleted"] = False
            self.by_pk[pk] = row
            pks.append(pk)
        self.changed()
        return pks

    def pick(self, how: int | list[int], rng: random.Random) -> list[int]:
        """`how` pks as given (KeyError if unknown), or that many live rows picked at random."""
        self.ensure()
        if isinstance(how, list):
            for pk in how:
                if pk not in self.by_pk:
                    raise KeyError(f"{self.spec.name} pk {pk}")
            return list(how)
        live = [pk for pk, row in self.by_pk.items() if not row["is_deleted"]]
        return sorted(rng.sample(live, min(int(how), len(live))))

    def touch(self, pk: int, rng: random.Random) -> dict[str, Any]:
        """The row, its `modified` bumped to now (a type with only `created` bumps nothing)."""
        row = self.by_pk[pk]
        if not self.spec.has_modified:
            return row
        moment = now()
        row["modified"] = stamp_now(moment, rng)
        row["_m"] = micros(moment)
        return row

    def update(self, pks: Iterable[int], rng: random.Random) -> list[int]:
        done = []
        for pk in pks:
            _update_row(self.spec.name, self.touch(pk, rng), rng)
            done.append(pk)
        self.changed()
        return done

    def soft_delete(self, pks: Iterable[int], rng: random.Random) -> list[int]:
        done = []
        for pk in pks:
            self.touch(pk, rng)["is_deleted"] = True
            done.append(pk)
        self.changed()
        return done

    def hard_delete(self, pks: Iterable[int]) -> list[int]:
        done = [pk for pk in pks if self.by_pk.pop(pk, None) is not None]
        self.changed()
        return done


def stamp_now(moment: datetime, rng: random.Random) -> str:
    return moment.astimezone(rng.choice(OFFSETS)).isoformat()


def _matches(spec: FilterSpec, row: dict[str, Any], value: Any) -> bool:
    have = row[spec.field]
    if spec.kind == "eq":
        return have == value
    if spec.kind == "in":
        return have in value
    if spec.kind == "after":
        return parse_iso(have) >= value
    if spec.kind == "contains":
        return value.casefold() in have.casefold()
    return any(item in value for item in have)


@dataclass
class Store:
    """Every table of the API; tables generate their rows on first use."""

    rows: int
    seed: int
    tables: dict[str, Table] = field(default_factory=dict)
    mutations: int = 0

    def __post_init__(self) -> None:
        self.tables = {name: Table(spec, self) for name, spec in ENTITIES.items()}
        self.context = GenContext(pks=lambda entity: self.tables[entity].initial_pks())

    def table(self, entity: str) -> Table:
        return self.tables[entity].ensure()

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        entity = spec["entity"]
        if entity not in self.tables or not self.tables[entity].spec.root:
            raise KeyError(f"unknown entity {entity!r}")
        table = self.table(entity)
        self.mutations += 1
        rng = FastRandom(f"{self.seed}:{entity}:mutation:{self.mutations}")
        result: dict[str, Any] = {"inserted": [], "updated": [], "deleted": [], "hard_deleted": []}
        if spec.get("insert"):
            result["inserted"] = table.insert(int(spec["insert"]), rng)
        if spec.get("update"):
            result["updated"] = table.update(table.pick(spec["update"], rng), rng)
        if spec.get("delete"):
            result["deleted"] = table.soft_delete(table.pick(spec["delete"], rng), rng)
        if spec.get("hard_delete"):
            result["hard_deleted"] = table.hard_delete(table.pick(spec["hard_delete"], rng))
        return result
