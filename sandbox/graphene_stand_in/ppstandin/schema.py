"""The stand-in's schema: `DjangoObjectType`s with relay `Node`, `DjangoFilterConnectionField`s.

Field names are snake_case (`auto_camelcase=False`), as in PlusPlus's examples; relay's own names
(`pageInfo`, `hasNextPage`, `endCursor`, `totalCount`) stay camelCase. Server-side filters are
named as the vendor's examples show them, not `modified_gte`: events take `modified_after`,
`starts_at_after`, `name`, `presenter_id: [Int]`; users take django-filter's generated
`modified__gte`/`modified__lte`; enrollments only `created__gte` (not their cursor); comments
(only `created`) take `created__gte`. Lists inside an event (`presenters`, `tags`) are
connections with their own paging, filters and limits.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import django_filters
import graphene
from django.db import models
from graphene import relay
from graphene.types.generic import GenericScalar
from graphene_django import DjangoObjectType
from graphene_django.converter import convert_django_field, get_django_field_description
from graphene_django.filter import DjangoFilterConnectionField, ListFilter

from ppstandin.models import Comment, Enrollment, Event, EventType, Location, Tag, User


def local(value, zone: str):
    """A stored (UTC) datetime in the row's zone: the API writes offsets, not `Z`."""
    return None if value is None else value.astimezone(ZoneInfo(zone))


@convert_django_field.register(models.DateTimeField)
def _local_datetime(field, registry=None):
    name = field.attname
    return graphene.DateTime(
        description=get_django_field_description(field),
        required=not field.null,
        resolver=lambda root, _info: local(getattr(root, name), root.zone),
    )


class CountedConnection(relay.Connection):
    """A connection with `totalCount`: the length of the filtered list."""

    class Meta:
        abstract = True

    total_count = graphene.Int(name="totalCount")

    def resolve_total_count(root, _info):
        return root.length


def _int_list(field_name: str) -> ListFilter:
    return ListFilter(
        field_name=field_name,
        lookup_expr="in",
        input_type=graphene.List(graphene.Int),
        distinct=True,
    )


class UserFilter(django_filters.FilterSet):
    is_deleted = django_filters.BooleanFilter()

    class Meta:
        model = User
        fields = {"email": ["exact"], "modified": ["gte", "lte"]}


class EventFilter(django_filters.FilterSet):
    is_deleted = django_filters.BooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains")
    starts_at_after = django_filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_at_before = django_filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="lte")
    modified_after = django_filters.IsoDateTimeFilter(field_name="modified", lookup_expr="gte")
    presenter_id = _int_list("presenters")
    event_type_id = _int_list("event_type")
    location_id = _int_list("location")

    class Meta:
        model = Event
        fields: list[str] = []


class EnrollmentFilter(django_filters.FilterSet):
    is_deleted = django_filters.BooleanFilter()
    user_id = _int_list("user")
    event_id = _int_list("event")

    class Meta:
        model = Enrollment
        fields = {"created": ["gte"]}


class NamedFilter(django_filters.FilterSet):
    is_deleted = django_filters.BooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains")


def _named_filter(model: type[models.Model]) -> type[django_filters.FilterSet]:
    meta = type("Meta", (), {"model": model, "fields": []})
    return type(f"{model.__name__}Filter", (NamedFilter,), {"Meta": meta})


class CommentFilter(django_filters.FilterSet):
    is_deleted = django_filters.BooleanFilter()

    class Meta:
        model = Comment
        fields = {"created": ["gte"]}


TRACKED = ("created", "modified", "is_deleted")

# node type fields per root connection (the truth serves exactly these)
FIELDS = {
    "users": ("pk", "id", "name", "email", "title", "department", "role", "is_active",
              "timezone", "manager", "last_login", *TRACKED),
    "event_types": ("pk", "id", "name", "slug", "description", "duration_minutes",
                    "is_published", "average_feedback_rating", "owner", "settings", *TRACKED),
    "locations": ("pk", "id", "name", "address", "timezone", "is_online", "capacity",
                  "latitude", "longitude", *TRACKED),
    "tags": ("pk", "id", "name", "slug", *TRACKED),
    "events": ("pk", "id", "name", "description", "status", "starts_at", "ends_at",
               "duration_minutes", "is_online", "watch_link", "enrollment_limit", "price",
               "event_type", "location", "presenters", "tags", "custom_fields", "attributes",
               *TRACKED),
    "enrollments": ("pk", "id", "user", "event", "status", "checked_in", "rating", "feedback",
                    "enrolled_at", *TRACKED),
    "comments": ("pk", "id", "author", "event", "body", "created", "is_deleted"),
}  # fmt: skip


def _meta(entity: str, model: type[models.Model], filterset) -> type:
    return type(
        "Meta",
        (),
        {
            "model": model,
            "interfaces": (relay.Node,),
            "connection_class": CountedConnection,
            "fields": tuple(f for f in FIELDS[entity] if f != "pk"),
            "filterset_class": filterset,
        },
    )


class UserType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("users", User, UserFilter)


class EventTypeType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("event_types", EventType, _named_filter(EventType))


class LocationType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("locations", Location, _named_filter(Location))


class TagType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("tags", Tag, _named_filter(Tag))


class EventType_(DjangoObjectType):  # noqa: N801 (graphene names it from Meta.name)
    pk = graphene.Int(description="Primary key.")
    attributes = GenericScalar(description="Free-form attributes.")
    Meta = type("Meta", (_meta("events", Event, EventFilter),), {"name": "EventType"})


class EnrollmentType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("enrollments", Enrollment, EnrollmentFilter)


class CommentType(DjangoObjectType):
    pk = graphene.Int(description="Primary key.")
    Meta = _meta("comments", Comment, CommentFilter)


ROOTS = {
    "events": EventType_,
    "users": UserType,
    "event_types": EventTypeType,
    "locations": LocationType,
    "enrollments": EnrollmentType,
    "tags": TagType,
    "comments": CommentType,
}


class Query(graphene.ObjectType):
    node = relay.Node.Field()
    events = DjangoFilterConnectionField(EventType_)
    users = DjangoFilterConnectionField(UserType)
    event_types = DjangoFilterConnectionField(EventTypeType)
    locations = DjangoFilterConnectionField(LocationType)
    enrollments = DjangoFilterConnectionField(EnrollmentType)
    tags = DjangoFilterConnectionField(TagType)
    comments = DjangoFilterConnectionField(CommentType)


schema = graphene.Schema(query=Query, auto_camelcase=False)
