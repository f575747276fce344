"""Seeded, deterministic data: unicode, nulls, soft-deleted rows, several offsets, big lists.

Two events have more presenters than a page holds: `BIG_PRESENTERS` maps their pks to counts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from django.db import connection

from ppstandin.models import (
    MODELS,
    ZONES,
    Comment,
    Enrollment,
    Event,
    EventType,
    Location,
    Tag,
    User,
)

SIZES = {"users": 1100, "event_types": 24, "locations": 10, "tags": 40, "events": 320,
         "enrollments": 900, "comments": 300}  # fmt: skip
FIRST_PK = {"users": 10, "event_types": 31, "locations": 3, "tags": 1, "events": 407,
            "enrollments": 1001, "comments": 90001}  # fmt: skip
BIG_PRESENTERS = {412: 163, 418: 1000}
START = datetime(2019, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)

FIRST_NAMES = ("Ana", "José", "Zoë", "Łukasz", "Søren", "Aiko", "Chloé", "Mohammed", "Priya",
               "Björn", "Nguyễn", "Olúwaseun", "Siobhán", "Wei", "Émilie", "Michael")  # fmt: skip
LAST_NAMES = ("García", "Müller", "O'Brien", "Dvořák", "Tanaka", "Okafor", "Svensson",
              "Chen 陈", "Wallace", "Øvergaard", "Núñez")  # fmt: skip
TOPICS = ("Agile Training", "High Output Management", "Core Python", "Data Literacy 101",
          "Négociation avancée", "Führung im Wandel", "🚀 Product Launch Workshop",
          "会議ファシリテーション", 'Writing "Great" Docs', "Excel Tips & Tricks")  # fmt: skip
DESCRIPTIONS = ("An introduction for new joiners.", "Hands-on session;\nbring a laptop.",
                "<p>Covers the <b>basics</b>.</p>", "", "Q&A at the end ✅")  # fmt: skip
TIMEZONES = ("America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo")
TAGS = ("python", "leadership", "onboarding", "sql", "café", "ñandú", "🚀launch", "data")


def create_tables() -> None:
    with connection.schema_editor() as editor:
        for model in MODELS:
            editor.create_model(model)


def _pks(rng: random.Random, entity: str) -> list[int]:
    pk, out = FIRST_PK[entity], []
    for _ in range(SIZES[entity]):
        out.append(pk)
        pk += 1 if rng.random() >= 0.03 else 2  # rows deleted for good leave gaps
    return out


def _moment(rng: random.Random, start: datetime = START, micros: bool = True) -> datetime:
    seconds = rng.randint(0, int((END - start).total_seconds()) - 1)
    moment = start + timedelta(seconds=seconds)
    return moment.replace(microsecond=rng.randint(0, 999_999)) if micros else moment


def _maybe(rng: random.Random, share: float, value):
    return None if rng.random() < share else value


def _tracked(rng: random.Random) -> dict:
    created = _moment(rng)
    modified = _moment(rng, created) if rng.random() < 0.7 else created
    return {"created": created, "modified": modified, "is_deleted": rng.random() < 0.05,
            "zone": rng.choice(ZONES)}  # fmt: skip


def seed(seed: int) -> None:
    rng = random.Random(seed)
    users = _pks(rng, "users")
    user_rows = []
    for i, pk in enumerate(users):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_rows.append(
            User(
                pk=pk,
                name=f"{first} {last}",
                email=f"user{pk}@example.com",
                title=_maybe(rng, 0.3, rng.choice(("Engineer", "Directeur financier", "Lead"))),
                department=_maybe(rng, 0.25, rng.choice(("R&D", "People", "Sales"))),
                role=rng.choice(("ADMIN", "ORGANIZER", "REGULAR", "REGULAR", "REGULAR")),
                is_active=rng.random() < 0.9,
                timezone=rng.choice(TIMEZONES),
                manager_id=_maybe(rng, 0.3, users[rng.randrange(i)] if i else None),
                last_login=_maybe(rng, 0.15, _moment(rng)),
                **_tracked(rng),
            )
        )
    User.objects.bulk_create(user_rows)
    event_types = _pks(rng, "event_types")
    EventType.objects.bulk_create(
        EventType(
            pk=pk,
            name=rng.choice(TOPICS),
            slug=f"topic-{pk}",
            description=_maybe(rng, 0.3, rng.choice(DESCRIPTIONS)),
            duration_minutes=_maybe(rng, 0.1, rng.choice((30, 60, 480))),
            is_published=rng.random() < 0.8,
            average_feedback_rating=_maybe(rng, 0.4, round(rng.uniform(1, 5), 2)),
            owner_id=_maybe(rng, 0.1, rng.choice(users)),
            settings=rng.choice((None, {}, {"reminders": [1, 7], "label": "Ünïcode ✓"})),
            **_tracked(rng),
        )
        for pk in event_types
    )
    locations = _pks(rng, "locations")
    Location.objects.bulk_create(
        Location(
            pk=pk,
            name=rng.choice(("Berlin HQ – Room 4.01", "São Paulo Office", "Zoom", "Tokyo 渋谷")),
            address=_maybe(rng, 0.4, f"{rng.randint(1, 400)} Example Street"),
            timezone=rng.choice(TIMEZONES),
            is_online=rng.random() < 0.3,
            capacity=_maybe(rng, 0.4, rng.choice((8, 12, 200))),
            latitude=_maybe(rng, 0.4, round(rng.uniform(-60, 60), 6)),
            longitude=_maybe(rng, 0.4, round(rng.uniform(-170, 170), 6)),
            **_tracked(rng),
        )
        for pk in locations
    )
    tags = _pks(rng, "tags")
    Tag.objects.bulk_create(
        Tag(pk=pk, name=f"{TAGS[pk % len(TAGS)]}-{pk}", slug=f"tag-{pk}", **_tracked(rng))
        for pk in tags
    )
    _seed_events(rng, users, event_types, locations, tags)


def _seed_events(rng, users, event_types, locations, tags) -> None:
    events = _pks(rng, "events")
    rows, presenters, tagged = [], [], []
    for i, pk in enumerate(events):
        starts = _moment(rng, micros=False).replace(second=0)
        minutes = rng.choice((30, 45, 60, 90, 240))
        online = rng.random() < 0.4
        rows.append(
            Event(
                pk=pk,
                name=TOPICS[i] if i < 3 else f"{rng.choice(TOPICS)} – Cohort {rng.randint(1, 40)}",
                description=_maybe(rng, 0.25, rng.choice(DESCRIPTIONS)),
                status=rng.choice(("DRAFT", "SCHEDULED", "CANCELLED", "COMPLETED")),
                starts_at=starts,
                ends_at=starts + timedelta(minutes=minutes),
                duration_minutes=minutes,
                is_online=online,
                watch_link=f"https://meet.example.com/{pk}" if online else None,
                enrollment_limit=_maybe(rng, 0.3, rng.choice((10, 20, 100))),
                price=_maybe(rng, 0.7, round(rng.uniform(0, 500), 2)),
                event_type_id=rng.choice(event_types),
                location_id=_maybe(rng, 0.1, rng.choice(locations)),
                custom_fields=rng.choice(
                    (None, {"cost_center": "CC-104", "region": "EMEA"}, {"note": "Ünïcode ✓"})
                ),
                attributes=rng.choice((None, {"internal": True, "codes": [3, 9]}, {"level": 2})),
                **_tracked(rng),
            )
        )
        count = BIG_PRESENTERS.get(pk, rng.randint(0, 3))
        presenters += [(pk, user) for user in rng.sample(users, count)]
        tagged += [(pk, tag) for tag in rng.sample(tags, rng.randint(0, 3))]
    Event.objects.bulk_create(rows)
    Event.presenters.through.objects.bulk_create(
        Event.presenters.through(event_id=e, user_id=u) for e, u in presenters
    )
    Event.tags.through.objects.bulk_create(
        Event.tags.through(event_id=e, tag_id=t) for e, t in tagged
    )
    Enrollment.objects.bulk_create(
        Enrollment(
            pk=pk,
            user_id=rng.choice(users),
            event_id=rng.choice(events),
            status=(status := rng.choice(("GOING", "WAITLIST", "NOT_GOING", "ATTENDED"))),
            checked_in=status == "ATTENDED",
            rating=rng.randint(1, 5) if status == "ATTENDED" and rng.random() < 0.6 else None,
            feedback=_maybe(rng, 0.85, rng.choice(("Great!", "Très utile 👍", "Too long"))),
            enrolled_at=_moment(rng, micros=False),
            **_tracked(rng),
        )
        for pk in _pks(rng, "enrollments")
    )
    Comment.objects.bulk_create(
        Comment(
            pk=pk,
            created=_moment(rng),
            author_id=_maybe(rng, 0.1, rng.choice(users)),
            event_id=rng.choice(events),
            body=rng.choice(("Looking forward!", "Merci 🙏", "Slides?", "")),
            is_deleted=rng.random() < 0.05,
            zone=rng.choice(ZONES),
        )
        for pk in _pks(rng, "comments")
    )
