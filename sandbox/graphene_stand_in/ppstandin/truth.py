"""Ground truth from the database, field by field as the API serializes it (not through graphene).

A nested object is `{"pk": <pk>}` (or null), a nested connection the list of its nodes as
`{"pk": <pk>}` in the connection's order, a `JSONString` the JSON text graphene writes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from django.db import models

from ppstandin.schema import FIELDS, ROOTS, local

GENERIC = {("events", "attributes")}  # JSON columns served as GenericScalar (values, not text)


def truth(entity: str) -> list[dict[str, Any]]:
    node_type = ROOTS[entity]  # KeyError for an unknown entity
    model = node_type._meta.model
    type_name = node_type._meta.name
    rows = []
    for obj in model.objects.all():
        row: dict[str, Any] = {}
        for name in FIELDS[entity]:
            if name == "pk":
                row[name] = obj.pk
            elif name == "id":
                row[name] = base64.b64encode(f"{type_name}:{obj.pk}".encode()).decode()
            else:
                row[name] = _value(entity, obj, model._meta.get_field(name))
        rows.append(row)
    return rows


def _value(entity: str, obj: models.Model, field: models.Field) -> Any:
    if isinstance(field, models.ManyToManyField):
        related = getattr(obj, field.name).all()  # the related model's ordering, as served
        return [{"pk": pk} for pk in related.values_list("pk", flat=True)]
    value = getattr(obj, field.attname)
    if isinstance(field, models.ForeignKey):
        return None if value is None else {"pk": value}
    if isinstance(field, models.DateTimeField):
        return None if value is None else local(value, obj.zone).isoformat()
    if isinstance(field, models.JSONField) and (entity, field.name) not in GENERIC:
        return None if value is None else json.dumps(value)
    return value
