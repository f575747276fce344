"""The stand-in's Django models, modelled on the sandbox's PlusPlus GraphQL data.

Every model has `is_deleted`; all but `Comment` have `created` and `modified`. `zone` is the
time zone a row's datetimes are written in (not exposed): the API writes them with offsets.
"""

from __future__ import annotations

from django.db import models

ZONES = ("America/Los_Angeles", "UTC", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo")


class Row(models.Model):
    is_deleted = models.BooleanField(default=False)
    zone = models.CharField(max_length=40, default="UTC")

    class Meta:
        abstract = True
        ordering = ["pk"]


class Tracked(Row):
    created = models.DateTimeField()
    modified = models.DateTimeField()

    class Meta(Row.Meta):
        abstract = True


class User(Tracked):
    ROLES = [("ADMIN", "Admin"), ("ORGANIZER", "Organizer"), ("REGULAR", "Regular")]

    name = models.CharField(max_length=200)
    email = models.CharField(max_length=200)
    title = models.CharField(max_length=200, null=True)
    department = models.CharField(max_length=100, null=True)
    role = models.CharField(max_length=20, choices=ROLES)
    is_active = models.BooleanField(default=True)
    timezone = models.CharField(max_length=60)
    manager = models.ForeignKey("self", null=True, on_delete=models.SET_NULL, related_name="+")
    last_login = models.DateTimeField(null=True)


class EventType(Tracked):
    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=200)
    description = models.TextField(null=True)
    duration_minutes = models.IntegerField(null=True)
    is_published = models.BooleanField(default=True)
    average_feedback_rating = models.FloatField(null=True)
    owner = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    settings = models.JSONField(null=True)


class Location(Tracked):
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300, null=True)
    timezone = models.CharField(max_length=60)
    is_online = models.BooleanField(default=False)
    capacity = models.IntegerField(null=True)
    latitude = models.FloatField(null=True)
    longitude = models.FloatField(null=True)


class Tag(Tracked):
    name = models.CharField(max_length=100)
    slug = models.CharField(max_length=100)


class Event(Tracked):
    STATUSES = [
        ("DRAFT", "Draft"),
        ("SCHEDULED", "Scheduled"),
        ("CANCELLED", "Cancelled"),
        ("COMPLETED", "Completed"),
    ]

    name = models.CharField(max_length=300)
    description = models.TextField(null=True)
    status = models.CharField(max_length=20, choices=STATUSES)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    duration_minutes = models.IntegerField()
    is_online = models.BooleanField(default=False)
    watch_link = models.CharField(max_length=300, null=True)
    enrollment_limit = models.IntegerField(null=True)
    price = models.FloatField(null=True)
    event_type = models.ForeignKey(EventType, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(Location, null=True, on_delete=models.SET_NULL, related_name="+")
    presenters = models.ManyToManyField(User, related_name="presented_events")
    tags = models.ManyToManyField(Tag, related_name="+")
    custom_fields = models.JSONField(null=True)  # graphene-django serves it as JSONString
    attributes = models.JSONField(null=True)  # served as GenericScalar (declared on the type)


class Enrollment(Tracked):
    STATUSES = [
        ("GOING", "Going"),
        ("WAITLIST", "Waitlist"),
        ("NOT_GOING", "Not going"),
        ("ATTENDED", "Attended"),
        ("NO_SHOW", "No show"),
    ]

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=STATUSES)
    checked_in = models.BooleanField(default=False)
    rating = models.IntegerField(null=True)
    feedback = models.TextField(null=True)
    enrolled_at = models.DateTimeField()


class Comment(Row):
    """Only `created`: a soft delete changes no timestamp."""

    created = models.DateTimeField()
    author = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    body = models.TextField()


MODELS = (User, EventType, Location, Tag, Event, Enrollment, Comment)
