"""The rows behind the PlusPlus REST sandbox: seeded generation, cached bytes, and every write.

Rows are kept as the dicts the API serializes. Nested objects (an assignment's `user`, a content
item's `groups`, a user's `manager`) are shared dicts, one per referenced row, so a rename shows
everywhere; the cached bytes of the rows that embed it are dropped when that happens.
"""

from __future__ import annotations

import gc
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import orjson

from lxp_sync_sandbox.base import EPOCH, OFFSETS, iso, now

ENTITIES = ["users", "groups", "articles", "content_items", "assignments", "enrollments"]

ROLES = ["admin", "organizer", "user"]
GROUP_SOURCES = ["plusplus", "workday", "okta", "bamboohr", "scim"]
CONTENT_TYPES = [
    "article",
    "video",
    "course",
    "event_type",
    "track",
    "codelab",
    "link",
    "assessment",
    "program",
]
ASSIGNMENT_STATES = ["not_started", "in_progress", "completed", "dropped", "exempted"]
OUTSTANDING = ("not_started", "in_progress")
ENROLLMENT_STATUSES = ["enrolled", "waitlisted", "attended", "cancelled", "no_show"]
ENROLLMENT_STATE = {
    "enrolled": "not_started",
    "waitlisted": "not_started",
    "attended": "completed",
    "cancelled": "dropped",
    "no_show": "dropped",
}
ATTENDANCE_METHODS = ["in_person", "online"]

# Share of the total row count per entity; articles are also content items.
SHARES = {
    "users": 0.15,
    "groups": 0.02,
    "articles": 0.05,
    "content_items": 0.20,
    "assignments": 0.38,
    "enrollments": 0.20,
}
MINIMUM = {
    "users": 8,
    "groups": 3,
    "articles": 3,
    "content_items": 8,
    "assignments": 10,
    "enrollments": 6,
}

FIRST_NAMES = [
    ("Jane", "jane"),
    ("John", "john"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Søren", "soren"),
    ("Łukasz", "lukasz"),
    ("Ólafur", "olafur"),
    ("Amélie", "amelie"),
    ("Priya", "priya"),
    ("Mohammed", "mohammed"),
    ("Aoife", "aoife"),
    ("Björn", "bjorn"),
    ("Chloé", "chloe"),
    ("Dmitri", "dmitri"),
    ("Emma", "emma"),
    ("Fatima", "fatima"),
    ("Grace", "grace"),
    ("Hiro", "hiro"),
    ("Ingrid", "ingrid"),
    ("Kofi", "kofi"),
    ("Liam", "liam"),
    ("María", "maria"),
    ("Noah", "noah"),
    ("Olivia", "olivia"),
]
LAST_NAMES = [
    ("Doe", "doe"),
    ("Ångström", "angstrom"),
    ("Müller", "muller"),
    ("García", "garcia"),
    ("Nguyễn", "nguyen"),
    ("O'Brien", "obrien"),
    ("Kowalski", "kowalski"),
    ("Smith", "smith"),
    ("Johansson", "johansson"),
    ("Okafor", "okafor"),
    ("Patel", "patel"),
    ("Rossi", "rossi"),
    ("Dubois", "dubois"),
    ("Novák", "novak"),
    ("Yılmaz", "yilmaz"),
    ("Jensen", "jensen"),
    ("Tanaka", "tanaka"),
    ("Silva", "silva"),
]
FULL_NAMES = [
    ("李雷", "li.lei"),
    ("王芳", "wang.fang"),
    ("佐藤 花子", "hanako.sato"),
    ("김민준", "minjun.kim"),
    ("Мария Иванова", "maria.ivanova"),
    ("Νίκος Παπαδόπουλος", "nikos.papadopoulos"),
]
EMOJI = ["🚀", "🌱", "☕", "🎉", "✨"]
DOMAINS = ["company.example", "corp.example"]

DEPARTMENTS = [
    "Engineering",
    "Sales",
    "Marketing",
    "Support",
    "Finance",
    "People",
    "Product",
    "Design",
    "Legal",
    "Data",
    "Équipe Produit",
    "Vertrieb",
    "営業部",
    "Operações",
]
GROUP_SUFFIXES = [
    "Team",
    "EMEA",
    "APAC",
    "Americas",
    "Leads",
    "Cohort 2024",
    "Cohort 2025",
    "New Hires",
    "Guild",
    "チーム",
]
TOPICS = [
    "Introduction to Python",
    "Engineering Onboarding",
    "Secure Coding",
    "Leading Teams",
    "Giving Feedback",
    "SQL for Analysts",
    "Café Culture 101",
    "Führung für Einsteiger",
    "データ分析入門",
    "Kubernetes Basics",
    "Negotiation Skills",
    "Inclusive Hiring",
    "Incident Response",
    "Design Systems",
    "Onboarding 🚀",
    "Public Speaking",
    "Gestión del Tiempo",
    "Customer Empathy",
    "Observability",
    "Writing Clearly",
]
CONTENT_SUFFIXES = [
    "",
    " (Part 2)",
    " — Advanced",
    " for Managers",
    " Deep Dive",
    " 2025",
    " Workshop",
    " Essentials",
]
DESCRIPTIONS = [
    "A short introduction to the topic.",
    "Hands-on exercises with real examples.",
    "Covers the basics and common pitfalls.",
    "Für alle Mitarbeitenden.",
    "Práctica guiada con ejemplos.",
    "Required for every new hire ✅.",
    'Line one.\nLine two, with a "quote".',
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

START = datetime(2018, 1, 1, tzinfo=UTC).timestamp()
END = (EPOCH - timedelta(days=2)).timestamp()
LAST = (EPOCH - timedelta(hours=1)).timestamp()  # clamp for derived times
DAY = 86400.0


class Record:
    """One row: the serialized dict, its cached bytes, and parsed timestamps for filtering."""

    __slots__ = ("row", "blob", "article_blob", "created", "modified", "extra")

    def __init__(
        self, row: dict[str, Any], created: float, modified: float | None = None, extra: Any = None
    ) -> None:
        self.row = row
        self.blob: bytes | None = None
        self.article_blob: bytes | None = None
        self.created = created
        self.modified = modified
        self.extra = extra  # users: group public_ids; content items: channel public_id

    @property
    def public_id(self) -> str:
        return self.row["public_id"]


def _article_view(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record.row.items() if k != "groups"}


class Table:
    """Rows of one entity in creation order, with an index by public_id and a version."""

    def __init__(
        self,
        name: str,
        view: Callable[[Record], dict[str, Any]] | None = None,
        blob_attr: str = "blob",
    ) -> None:
        self.name = name
        self.records: list[Record] = []
        self.by_id: dict[str, Record] = {}
        self.version = 0
        self._view = view
        self._blob_attr = blob_attr
        self._created: tuple[int, list[float] | None] = (-1, None)

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.by_id[record.public_id] = record
        self.version += 1

    def remove(self, public_ids: set[str]) -> None:
        if not public_ids:
            return
        self.records = [r for r in self.records if r.public_id not in public_ids]
        for public_id in public_ids:
            self.by_id.pop(public_id, None)
        self.version += 1

    def view(self, record: Record) -> dict[str, Any]:
        return self._view(record) if self._view else record.row

    def blob(self, record: Record) -> bytes:
        blob = getattr(record, self._blob_attr)
        if blob is None:
            # orjson's result keeps a ~4 KB allocation behind a few hundred bytes; a compact copy
            # is what makes a million cached rows fit in well under a GB.
            blob = bytes(memoryview(orjson.dumps(self.view(record))))
            setattr(record, self._blob_attr, blob)
        return blob

    def rows(self) -> list[dict[str, Any]]:
        return [self.view(r) for r in self.records]

    def created_keys(self) -> list[float] | None:
        """`created` of every row in list order, or None when that order is not ascending."""
        version, keys = self._created
        if version != self.version:
            keys = [r.created for r in self.records]
            if any(a > b for a, b in zip(keys, keys[1:], strict=False)):
                keys = None
            self._created = (self.version, keys)
        return keys

    def created_span(self, low: float | None, high: float | None) -> tuple[int, int] | None:
        """Index range of rows with low <= created <= high, by bisection; None if unsorted."""
        keys = self.created_keys()
        if keys is None:
            return None
        start = 0 if low is None else bisect_left(keys, low)
        stop = len(keys) if high is None else bisect_right(keys, high)
        return start, max(start, stop)


def _sizes(rows: int) -> dict[str, int]:
    sizes = {k: max(MINIMUM[k], round(rows * share)) for k, share in SHARES.items()}
    sizes["content_items"] = max(sizes["content_items"], sizes["articles"] + 5)
    return sizes


def _spread(rng: random.Random, count: int, start: float, end: float) -> list[int]:
    """`count` ascending whole-second timestamps between start and end."""
    step = (end - start) / max(count, 1)
    rand = rng.random
    return [int(start + (i + rand() * 0.9) * step) for i in range(count)]


def _offset(tz: tzinfo) -> tuple[int, str]:
    seconds = int(tz.utcoffset(None).total_seconds())
    if not seconds:
        return 0, "Z"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return seconds, f"{'+' if seconds > 0 else '-'}{hours:02d}:{minutes:02d}"


_OFFSETS = [_offset(tz) for tz in OFFSETS]
_TIMES: list[str] = []
_DAYS: dict[int, str] = {}


def _day(days: int) -> str:
    text = _DAYS[days] = (datetime(1970, 1, 1) + timedelta(days=days)).date().isoformat() + "T"
    return text


def _date_text(days: int) -> str:
    """The ISO date `days` days after 1970-01-01."""
    return (_DAYS.get(days) or _day(days))[:-1]


def _stamp(ts: float, rng: random.Random) -> str:
    """`iso(moment, rng)` of a whole-second timestamp, in the same format, several times faster.

    Generation writes millions of timestamps; datetime's tz conversion was most of its time.
    """
    if not _TIMES:
        _TIMES.extend(
            f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
        )
    seconds, suffix = _OFFSETS[int(rng.random() * len(_OFFSETS))]
    days, rest = divmod(int(ts) + seconds, 86400)
    return (_DAYS.get(days) or _day(days)) + _TIMES[rest] + suffix


_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid(rng: random.Random) -> str:
    """`seeded_uuid(rng)` (the same value for the same draw), about four times faster."""
    h = f"{(rng.getrandbits(128) & _V4_CLEAR) | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class PlusPlusData:
    """Every table of the PlusPlus REST sandbox, generated from a seed, and the writes on them."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rng = random.Random(seed)
        # Mutations draw from their own stream, so that a sequence of calls is reproducible.
        self.mutation_rng = random.Random(seed + 1_000_003)
        self.users = Table("users")
        self.groups = Table("groups")
        self.content_items = Table("content_items")
        self.articles = Table("articles", view=_article_view, blob_attr="article_blob")
        self.assignments = Table("assignments")
        self.enrollments = Table("enrollments")
        self.tables = {
            "users": self.users,
            "groups": self.groups,
            "articles": self.articles,
            "content_items": self.content_items,
            "assignments": self.assignments,
            "enrollments": self.enrollments,
        }
        self.user_refs: dict[str, dict[str, Any]] = {}
        self.group_refs: dict[str, dict[str, Any]] = {}
        self.content_refs: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.channels: list[str] = []
        self.emails: set[str] = set()
        self._pairs: dict[tuple[str, str], Record] | None = None
        self._group_ref_list: list[dict[str, Any]] = []
        self._batching = 0
        self._renamed_refs: dict[str, dict[int, dict[str, Any]]] = {
            "users": {},
            "items": {},
            "groups": {},
        }
        self._generate(_sizes(rows))

    # ------------------------------------------------------------------ generation

    def _generate(self, sizes: dict[str, int]) -> None:
        # Millions of new dicts would trigger a full cyclic collection again and again; none of
        # them is garbage, so collect nothing while generating and freeze them afterwards.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._generate_tables(sizes)
        finally:
            if enabled:
                gc.enable()
            gc.freeze()

    def _generate_tables(self, sizes: dict[str, int]) -> None:
        rng = self.rng
        self._generate_groups(sizes["groups"])
        self._generate_users(sizes["users"])
        self.channels = [_uuid(rng) for _ in range(max(2, sizes["content_items"] // 50))]
        self._generate_content(sizes["content_items"], sizes["articles"])
        self.events = [
            {
                "public_id": _uuid(rng),
                "name": f"{rng.choice(TOPICS)} Workshop - {rng.choice(MONTHS)} {rng.randint(2019, 2025)}",
            }
            for _ in range(max(3, sizes["enrollments"] // 20))
        ]
        self._generate_assignments(sizes["assignments"])
        self._generate_enrollments(sizes["enrollments"])

    def _generate_groups(self, count: int) -> None:
        rng = self.rng
        for created in _spread(rng, count, START, END - 30 * DAY):
            modified = created if rng.random() < 0.4 else int(rng.uniform(created, END))
            name = f"{rng.choice(DEPARTMENTS)} {rng.choice(GROUP_SUFFIXES)}"
            row = {
                "public_id": _uuid(rng),
                "name": name,
                "source": GROUP_SOURCES[0] if rng.random() < 0.6 else rng.choice(GROUP_SOURCES),
                "member_count": 0,
                "created": _stamp(created, rng),
                "modified": _stamp(modified, rng),
            }
            self.groups.add(Record(row, float(created), float(modified)))
            self.group_refs[row["public_id"]] = {"public_id": row["public_id"], "name": name}

    def _generate_users(self, count: int) -> None:
        rng = self.rng
        rand = rng.random
        group_ids = [r.public_id for r in self.groups.records]
        refs: list[dict[str, Any]] = []
        counts = dict.fromkeys(group_ids, 0)
        for i, joined in enumerate(_spread(rng, count, START, END)):
            if rand() < 0.06:
                name, local = FULL_NAMES[int(rand() * len(FULL_NAMES))]
            else:
                first, first_ascii = FIRST_NAMES[int(rand() * len(FIRST_NAMES))]
                last, last_ascii = LAST_NAMES[int(rand() * len(LAST_NAMES))]
                name, local = f"{first} {last}", f"{first_ascii}.{last_ascii}"
            if rand() < 0.01:
                name = f"{name} {EMOJI[int(rand() * len(EMOJI))]}"
            email = self._unique_email(local, DOMAINS[int(rand() * len(DOMAINS))], i)
            role_draw = rand()
            role = "admin" if role_draw < 0.03 else "organizer" if role_draw < 0.1 else "user"
            manager = refs[int(rand() * i)] if i and rand() < 0.7 else None
            public_id = _uuid(rng)
            row = {
                "public_id": public_id,
                "email": email,
                "name": name,
                "role": role,
                "employee_id": f"EMP-{10000 + i}" if rand() < 0.9 else None,
                "is_active": rand() < 0.92,
                "manager": manager,
                "date_joined": _stamp(joined, rng),
            }
            draw = rand()
            k = 0 if draw < 0.3 else 1 if draw < 0.75 else 2 if draw < 0.93 else 3
            member_of = tuple({group_ids[int(rand() * len(group_ids))]: None for _ in range(k)})
            for group_id in member_of:
                counts[group_id] += 1
            self.users.add(Record(row, float(joined), None, member_of))
            ref = {"public_id": public_id, "name": name, "email": email}
            refs.append(ref)
            self.user_refs[public_id] = ref
        for record in self.groups.records:
            record.row["member_count"] = counts[record.public_id]

    def _unique_email(self, local: str, domain: str, n: int) -> str:
        email = f"{local}@{domain}"
        while email in self.emails:
            email = f"{local}{n}@{domain}"
            n += 1
        self.emails.add(email)
        return email

    def _content_row(self, content_type: str, created: float, modified: float) -> dict[str, Any]:
        rng = self.rng
        rand = rng.random
        name = TOPICS[int(rand() * len(TOPICS))] + CONTENT_SUFFIXES[int(rand() * 8)]
        completable = content_type != "link" and (content_type != "article" or rand() < 0.3)
        rated = rand() < 0.7
        groups: list[dict[str, Any]] = []
        if rand() < 0.4:
            refs = self._group_ref_list
            picked = {int(rand() * len(refs)) for _ in range(1 + int(rand() * 3))}
            groups = [refs[i] for i in sorted(picked)]
        return {
            "public_id": _uuid(rng),
            "name": name,
            "content_type": content_type,
            "description": DESCRIPTIONS[int(rand() * len(DESCRIPTIONS))] if rand() < 0.85 else None,
            "is_archived": rand() < 0.08,
            "is_hidden": rand() < 0.1,
            "is_completable": completable,
            "is_self_assignable": rand() < 0.6,
            "duration_minutes": 5 * (1 + int(rand() * 36)) if rand() < 0.8 else None,
            "avg_feedback_rating": round(1 + rand() * 4, 1) if rated else None,
            "total_assignments": 0,
            "completed_assignments_count": 0,
            "created": _stamp(created, rng),
            "modified": _stamp(modified, rng),
            "groups": groups,
        }

    def _generate_content(self, count: int, articles: int) -> None:
        rng = self.rng
        others = [t for t in CONTENT_TYPES if t != "article"]
        types = ["article"] * articles + [
            others[int(rng.random() * len(others))] for _ in range(count - articles)
        ]
        self._group_ref_list = list(self.group_refs.values())
        rng.shuffle(types)
        channels = self.channels
        for content_type, created in zip(
            types, _spread(rng, count, START + 60 * DAY, END), strict=True
        ):
            modified = (
                float(created) if rng.random() < 0.4 else float(int(rng.uniform(created, END)))
            )
            row = self._content_row(content_type, created, modified)
            channel = channels[int(rng.random() * len(channels))] if rng.random() < 0.7 else None
            self._add_content(Record(row, float(created), modified, channel))

    def _add_content(self, record: Record) -> None:
        row = record.row
        self.content_items.add(record)
        if row["content_type"] == "article":
            self.articles.add(record)
        self.content_refs[row["public_id"]] = {
            "public_id": row["public_id"],
            "name": row["name"],
            "content_type": row["content_type"],
        }

    def _generate_assignments(self, count: int) -> None:
        rng = self.rng
        rand = rng.random
        users, items = self.users.records, self.content_items.records
        user_refs = [self.user_refs[u.public_id] for u in users]
        item_refs = [self.content_refs[c.public_id] for c in items]
        n_users, n_items = len(users), len(items)
        count = min(count, n_users * n_items)
        seen: set[int] = set()
        epoch_day = int(EPOCH.timestamp() // DAY)
        table = self.assignments
        u_bound = c_bound = 0
        for created in _spread(rng, count, START + 365 * DAY, END):
            # Prefer a user and an item that existed when the assignment was made (both tables
            # are in ascending creation order, and so are these timestamps).
            while u_bound < n_users and users[u_bound].created <= created:
                u_bound += 1
            while c_bound < n_items and items[c_bound].created <= created:
                c_bound += 1
            u_range, c_range = max(1, u_bound), max(1, c_bound)
            for attempt in range(50):
                if attempt == 20:
                    u_range, c_range = n_users, n_items
                ui, ci = int(rand() * u_range), int(rand() * c_range)
                if ui * n_items + ci not in seen:
                    break
            else:
                continue
            seen.add(ui * n_items + ci)
            item_row = items[ci].row
            draw = rand()
            state = (
                "not_started"
                if draw < 0.25
                else "in_progress"
                if draw < 0.45
                else "completed"
                if draw < 0.9
                else "dropped"
                if draw < 0.96
                else "exempted"
            )
            started = completed = dropped = exempted = None
            progress = 0.0
            if (
                state == "in_progress"
                or state == "completed"
                or (state == "dropped" and rand() < 0.5)
            ):
                started = min(LAST, created + rand() * 30 * DAY)
                progress = round(0.05 + rand() * 0.9, 2)
            if state == "completed":
                completed = min(LAST, started + rand() * 60 * DAY)
                progress = 1.0
            elif state == "dropped":
                dropped = min(LAST, (started or created) + rand() * 45 * DAY)
            elif state == "exempted":
                exempted = min(LAST, created + rand() * 20 * DAY)
            score = round(0.4 + rand() * 0.6, 2) if completed and rand() < 0.6 else None
            due_day = int(created // DAY) + 7 + int(rand() * 120) if rand() < 0.55 else None
            expires = created + 365 * DAY if rand() < 0.1 else LAST
            row = {
                "public_id": _uuid(rng),
                "user": user_refs[ui],
                "content_item": item_refs[ci],
                "state": state,
                "progress": progress,
                "score": score,
                "is_success": (score is None or score >= 0.7) if completed else None,
                "due_date": _date_text(due_day) if due_day else None,
                "is_overdue": bool(due_day and due_day < epoch_day and state in OUTSTANDING),
                "started_at": _stamp(started, rng) if started else None,
                "completed_datetime": _stamp(completed, rng) if completed else None,
                "dropped_at": _stamp(dropped, rng) if dropped else None,
                "exempted_at": _stamp(exempted, rng) if exempted else None,
                "expires_at": _stamp(expires, rng) if expires < LAST else None,
                "feedback_rating": 1 + int(rand() * 5) if completed and rand() < 0.4 else None,
                "attempt": 1 if rand() < 0.9 else 2 + int(rand() * 2),
                "created": _stamp(created, rng),
            }
            record = Record(row, float(created))
            table.records.append(record)
            table.by_id[row["public_id"]] = record
            item_row["total_assignments"] += 1
            if completed:
                item_row["completed_assignments_count"] += 1
        table.version += 1

    def _generate_enrollments(self, count: int) -> None:
        rng = self.rng
        rand = rng.random
        users, events = self.users.records, self.events
        count = min(count, len(users) * len(events))
        seen: set[tuple[int, int]] = set()
        for created in _spread(rng, count, START + 365 * DAY, END):
            for _ in range(50):
                pair = (int(rand() * len(users)), int(rand() * len(events)))
                if pair not in seen:
                    break
            else:
                continue
            seen.add(pair)
            draw = rand()
            status = (
                "enrolled"
                if draw < 0.35
                else "attended"
                if draw < 0.75
                else "waitlisted"
                if draw < 0.83
                else "cancelled"
                if draw < 0.93
                else "no_show"
            )
            checkin = min(LAST, created + rand() * 60 * DAY) if status == "attended" else None
            row = {
                "public_id": _uuid(rng),
                "user": self.user_refs[users[pair[0]].public_id],
                "event": events[pair[1]],
                "status": status,
                "attendance_method": "in_person" if rand() < 0.55 else "online",
                "checkin_datetime": _stamp(checkin, rng) if checkin else None,
                "state": ENROLLMENT_STATE[status],
                "created": _stamp(created, rng),
            }
            self.enrollments.add(Record(row, float(created)))

    # ------------------------------------------------------------------ writes

    def _now(self) -> tuple[str, float]:
        moment = now()
        return iso(moment, self.mutation_rng), moment.timestamp()

    def _touch(self, record: Record, table: Table, bump: bool = True) -> None:
        """Drop the cached bytes of a changed row and, where it has one, bump `modified`."""
        record.blob = record.article_blob = None
        table.version += 1
        if table is self.content_items and record.row["content_type"] == "article":
            self.articles.version += 1
        if bump and "modified" in record.row:
            record.row["modified"], record.modified = self._now()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside share one pass over the tables that embed what they renamed."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching:
                self._refresh_embedded()

    def _renamed(self, kind: str, ref: dict[str, Any]) -> None:
        self._renamed_refs[kind][id(ref)] = ref
        if not self._batching:
            self._refresh_embedded()

    def _refresh_embedded(self) -> None:
        """Drop the cached bytes of rows that embed a renamed user or content item, and bump
        `modified` of the content items that list a renamed group."""
        users, items, groups = (self._renamed_refs[k] for k in ("users", "items", "groups"))
        for table, key, refs in (
            (self.users, "manager", users),
            (self.assignments, "user", users),
            (self.enrollments, "user", users),
            (self.assignments, "content_item", items),
        ):
            if refs:
                for record in table.records:
                    if id(record.row[key]) in refs:
                        record.blob = None
                table.version += 1
        if groups:
            for item in self.content_items.records:
                if any(id(g) in groups for g in item.row["groups"]):
                    self._touch(item, self.content_items)
        for refs in self._renamed_refs.values():
            refs.clear()

    def create_user(
        self,
        email: str,
        name: str,
        role: str = "user",
        employee_id: str | None = None,
        manager: Record | None = None,
    ) -> Record:
        text, moment = self._now()
        public_id = _uuid(self.mutation_rng)
        row = {
            "public_id": public_id,
            "email": email,
            "name": name,
            "role": role,
            "employee_id": employee_id,
            "is_active": True,
            "manager": self.user_refs[manager.public_id] if manager else None,
            "date_joined": text,
        }
        record = Record(row, moment, None, ())
        self.users.add(record)
        self.user_refs[public_id] = {"public_id": public_id, "name": name, "email": email}
        self.emails.add(email.lower())
        return record

    def update_user(self, record: Record, changes: dict[str, Any]) -> None:
        """Apply `changes` (name, role, employee_id, is_active, manager: Record | None)."""
        row = record.row
        for key in ("name", "role", "employee_id", "is_active"):
            if key in changes:
                row[key] = changes[key]
        if "manager" in changes:
            manager = changes["manager"]
            row["manager"] = self.user_refs[manager.public_id] if manager else None
        self._touch(record, self.users)
        ref = self.user_refs[record.public_id]
        if ref["name"] != row["name"]:
            ref["name"] = row["name"]
            self._renamed("users", ref)

    def create_content(self, content_type: str, fields: dict[str, Any]) -> Record:
        text, moment = self._now()
        row = {
            "public_id": _uuid(self.mutation_rng),
            "name": fields["name"],
            "content_type": content_type,
            "description": fields.get("description"),
            "is_archived": False,
            "is_hidden": fields.get("is_hidden", False),
            "is_completable": content_type not in ("article", "link"),
            "is_self_assignable": fields.get("is_self_assignable", True),
            "duration_minutes": fields.get("duration_minutes"),
            "avg_feedback_rating": None,
            "total_assignments": 0,
            "completed_assignments_count": 0,
            "created": text,
            "modified": text,
            "groups": [],
        }
        record = Record(row, moment, moment, None)
        self._add_content(record)
        return record

    def update_content(self, record: Record, changes: dict[str, Any]) -> None:
        """Apply `changes` (name, description, is_hidden, is_self_assignable, duration_minutes,
        is_archived, groups: list of group public_ids) and bump `modified`."""
        row = record.row
        for key, value in changes.items():
            row[key] = [self.group_refs[g] for g in value] if key == "groups" else value
        self._touch(record, self.content_items)
        ref = self.content_refs[record.public_id]
        if ref["name"] != row["name"]:
            ref["name"] = row["name"]
            self._renamed("items", ref)

    def _count_assignment(self, record: Record, total: int, completed: int) -> None:
        item = self.content_items.by_id.get(record.row["content_item"]["public_id"])
        if item is not None:
            item.row["total_assignments"] += total
            item.row["completed_assignments_count"] += completed
            self._touch(item, self.content_items)

    @property
    def pairs(self) -> dict[tuple[str, str], Record]:
        """Assignments by (user public_id, content item public_id), built on first use."""
        if self._pairs is None:
            self._pairs = {
                (r.row["user"]["public_id"], r.row["content_item"]["public_id"]): r
                for r in self.assignments.records
            }
        return self._pairs

    def create_assignment(
        self, user: Record, item: Record, due_date: str | None = None, expires_at: str | None = None
    ) -> Record:
        text, moment = self._now()
        row = {
            "public_id": _uuid(self.mutation_rng),
            "user": self.user_refs[user.public_id],
            "content_item": self.content_refs[item.public_id],
            "state": "not_started",
            "progress": 0.0,
            "score": None,
            "is_success": None,
            "due_date": due_date,
            "is_overdue": _overdue(due_date, "not_started"),
            "started_at": None,
            "completed_datetime": None,
            "dropped_at": None,
            "exempted_at": None,
            "expires_at": expires_at,
            "feedback_rating": None,
            "attempt": 1,
            "created": text,
        }
        record = Record(row, moment)
        self.assignments.add(record)
        self.pairs[(user.public_id, item.public_id)] = record
        self._count_assignment(record, 1, 0)
        return record

    def transition(self, record: Record, action: str) -> str | None:
        """Apply an assignment action; returns why it conflicts (HTTP 409), or None when done."""
        row = record.row
        state = row["state"]
        text, _ = self._now()
        if action == "complete":
            if state in ("completed", "dropped"):
                return f"Assignment is already {state}."
            row.update(
                state="completed",
                progress=1.0,
                completed_datetime=text,
                exempted_at=None,
                is_success=True,
                is_overdue=False,
            )
            row["started_at"] = row["started_at"] or text
            self._count_assignment(record, 0, 1)
        elif action == "drop":
            if state in ("completed", "dropped"):
                return f"Assignment is already {state}."
            row.update(state="dropped", dropped_at=text, is_overdue=False)
        elif action == "exempt":
            if state not in OUTSTANDING:
                return f"Assignment is not outstanding (it is {state})."
            row.update(state="exempted", exempted_at=text, is_overdue=False)
        elif action == "undo_complete":
            if state != "completed":
                return "Assignment is not completed."
            row.update(
                completed_datetime=None,
                score=None,
                is_success=None,
                progress=min(row["progress"], 0.99),
            )
            self._reopen(row)
            self._count_assignment(record, 0, -1)
        elif action == "undo_exempt":
            if state != "exempted":
                return "Assignment is not exempted."
            row["exempted_at"] = None
            self._reopen(row)
        else:
            raise ValueError(f"unknown assignment action {action!r}")
        self._touch(record, self.assignments)
        return None

    @staticmethod
    def _reopen(row: dict[str, Any]) -> None:
        row["state"] = "in_progress" if row["started_at"] else "not_started"
        if row["state"] == "not_started":
            row["progress"] = 0.0
        row["is_overdue"] = _overdue(row["due_date"], row["state"])

    def update_assignment(self, record: Record, changes: dict[str, Any]) -> None:
        record.row.update(changes)
        record.row["is_overdue"] = _overdue(record.row["due_date"], record.row["state"])
        self._touch(record, self.assignments)

    # ------------------------------------------------------------------ the sandbox's mutate

    def mutate(self, spec: dict[str, Any]) -> dict[str, list[str]]:
        """Insert, update and delete rows of one entity, as `/_sandbox/mutate` asks."""
        entity = spec["entity"]
        table = self.tables[entity]  # KeyError for an unknown entity
        rng = self.mutation_rng
        updates = self._pick(table, spec.get("update", 0), spec.get("created_within_days"), set())
        deletes = self._pick(table, spec.get("delete", 0), None, {r.public_id for r in updates})
        with self.batch():
            for record in updates:
                self._mutate_update(entity, record)
        self._delete(entity, deletes)
        inserted = [
            self._mutate_insert(entity, rng).public_id for _ in range(int(spec.get("insert", 0)))
        ]
        return {
            "inserted": inserted,
            "updated": [r.public_id for r in updates],
            "deleted": [r.public_id for r in deletes],
        }

    def _pick(
        self, table: Table, which: int | list[str], within_days: float | None, exclude: set[str]
    ) -> list[Record]:
        if isinstance(which, list):
            return [table.by_id[public_id] for public_id in which]
        candidates = table.records
        if within_days is not None and candidates:
            keys = table.created_keys()
            newest = keys[-1] if keys is not None else max(r.created for r in candidates)
            oldest = newest - float(within_days) * DAY
            span = table.created_span(oldest, None)
            if span is not None:
                candidates = candidates[span[0] : span[1]]
            else:
                candidates = [r for r in candidates if r.created >= oldest]
        if exclude:
            candidates = [r for r in candidates if r.public_id not in exclude]
        return self.mutation_rng.sample(candidates, min(int(which), len(candidates)))

    def _mutate_insert(self, entity: str, rng: random.Random) -> Record:
        if entity == "users":
            first, first_ascii = rng.choice(FIRST_NAMES)
            last, last_ascii = rng.choice(LAST_NAMES)
            email = self._unique_email(
                f"{first_ascii}.{last_ascii}", DOMAINS[0], len(self.users.records)
            )
            return self.create_user(email, f"{first} {last}")
        if entity == "groups":
            text, moment = self._now()
            name = f"{rng.choice(DEPARTMENTS)} {rng.choice(GROUP_SUFFIXES)}"
            row = {
                "public_id": _uuid(rng),
                "name": name,
                "source": "plusplus",
                "member_count": 0,
                "created": text,
                "modified": text,
            }
            record = Record(row, moment, moment)
            self.groups.add(record)
            self.group_refs[row["public_id"]] = {"public_id": row["public_id"], "name": name}
            return record
        if entity in ("articles", "content_items"):
            content_type = "article" if entity == "articles" else rng.choice(CONTENT_TYPES)
            return self.create_content(
                content_type,
                {
                    "name": rng.choice(TOPICS) + rng.choice(CONTENT_SUFFIXES),
                    "description": rng.choice(DESCRIPTIONS),
                    "duration_minutes": 5 * rng.randint(1, 24),
                },
            )
        if entity == "assignments":
            users, items = self.users.records, self.content_items.records
            for _ in range(200):
                user, item = rng.choice(users), rng.choice(items)
                if (user.public_id, item.public_id) not in self.pairs:
                    return self.create_assignment(user, item)
            raise ValueError("no free (user, content item) pair left to assign")
        text, moment = self._now()
        row = {
            "public_id": _uuid(rng),
            "user": self.user_refs[rng.choice(self.users.records).public_id],
            "event": rng.choice(self.events),
            "status": "enrolled",
            "attendance_method": rng.choice(ATTENDANCE_METHODS),
            "checkin_datetime": None,
            "state": "not_started",
            "created": text,
        }
        record = Record(row, moment)
        self.enrollments.add(record)
        return record

    def _mutate_update(self, entity: str, record: Record) -> None:
        rng = self.mutation_rng
        row = record.row
        if entity == "users":
            self.update_user(record, {"name": f"{row['name']} ({rng.choice(EMOJI)} renamed)"})
        elif entity == "groups":
            row["name"] = f"{row['name']} ✱"
            self._touch(record, self.groups)
            self._rename_group(row["public_id"], row["name"])
        elif entity in ("articles", "content_items"):
            self.update_content(
                record,
                {
                    "name": f"{row['name']} (rev. {rng.randint(2, 99)})",
                    "description": rng.choice(DESCRIPTIONS),
                },
            )
        elif entity == "assignments":
            state = row["state"]
            if state in ("not_started", "in_progress", "exempted"):
                self.transition(record, "complete")
            elif state == "completed":
                self.update_assignment(
                    record, {"feedback_rating": (row["feedback_rating"] or 0) % 5 + 1}
                )
            else:  # dropped: a retake
                self.update_assignment(
                    record,
                    {
                        "state": "not_started",
                        "dropped_at": None,
                        "started_at": None,
                        "progress": 0.0,
                        "attempt": row["attempt"] + 1,
                    },
                )
        else:
            status = row["status"]
            if status in ("enrolled", "no_show"):
                text, _ = self._now()
                row.update(status="attended", checkin_datetime=text)
            elif status == "attended":
                row["attendance_method"] = (
                    "online" if row["attendance_method"] == "in_person" else "in_person"
                )
            else:
                row.update(status="enrolled", checkin_datetime=None)
            row["state"] = ENROLLMENT_STATE[row["status"]]
            self._touch(record, self.enrollments)

    def _rename_group(self, public_id: str, name: str) -> None:
        ref = self.group_refs[public_id]
        ref["name"] = name
        self._renamed("groups", ref)

    def _delete(self, entity: str, records: list[Record]) -> None:
        ids = {r.public_id for r in records}
        if not ids:
            return
        if entity in ("articles", "content_items"):
            self.content_items.remove(ids)
            self.articles.remove(ids)
            return
        self.tables[entity].remove(ids)
        if entity == "users":
            for record in records:
                self.emails.discard(record.row["email"].lower())
            for user in self.users.records:
                manager = user.row["manager"]
                if manager is not None and manager["public_id"] in ids:
                    user.row["manager"] = None
                    self._touch(user, self.users)
            counts: dict[str, int] = {}
            for record in records:
                for group_id in record.extra:
                    counts[group_id] = counts.get(group_id, 0) + 1
            for group_id, n in counts.items():
                group = self.groups.by_id.get(group_id)
                if group is not None:
                    group.row["member_count"] -= n
                    self._touch(group, self.groups)
        elif entity == "groups":
            for item in self.content_items.records:
                kept = [g for g in item.row["groups"] if g["public_id"] not in ids]
                if len(kept) != len(item.row["groups"]):
                    item.row["groups"] = kept
                    self._touch(item, self.content_items)
            for user in self.users.records:
                if any(g in ids for g in user.extra):
                    user.extra = tuple(g for g in user.extra if g not in ids)
                    self.users.version += 1
        elif entity == "assignments":
            for record in records:
                self._count_assignment(record, -1, -1 if record.row["state"] == "completed" else 0)
                if self._pairs is not None:
                    key = (record.row["user"]["public_id"], record.row["content_item"]["public_id"])
                    self._pairs.pop(key, None)


def _overdue(due_date: str | None, state: str) -> bool:
    return bool(due_date) and state in OUTSTANDING and due_date < now().date().isoformat()
