"""The GraphQL endpoint behind `Authorization: Token <t>`, and the stand-in's test endpoints."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView

from ppstandin.models import Event, User
from ppstandin.schema import ROOTS
from ppstandin.truth import truth as truth_rows

API_TOKEN = "stand-in-graphql-token"

_view = csrf_exempt(GraphQLView.as_view(graphiql=False))
_log: list[dict] = []
_lock = threading.Lock()


@csrf_exempt
def graphql(request: HttpRequest) -> HttpResponse:
    if request.headers.get("Authorization", "").strip() != f"Token {API_TOKEN}":
        return JsonResponse({"detail": "Invalid token."}, status=401, headers={"WWW-Authenticate": "Token"})  # fmt: skip
    return _view(request)


class RequestLog:
    """Every request to the API: path, status, and the GraphQL body (query and variables)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/_"):
            return self.get_response(request)
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        response = self.get_response(request)
        with _lock:
            _log.append({"path": request.path, "status": response.status_code, "body": body})
        return response


def health(_request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def truth(_request: HttpRequest, entity: str) -> JsonResponse:
    if entity not in ROOTS:
        return JsonResponse({"error": f"unknown entity {entity!r}"}, status=404)
    return JsonResponse({"data": truth_rows(entity)})


@csrf_exempt
def requests_log(request: HttpRequest) -> JsonResponse:
    with _lock:
        if request.method == "DELETE":
            _log.clear()
        return JsonResponse({"requests": list(_log)})


@csrf_exempt
def mutate(request: HttpRequest) -> JsonResponse:
    """`{"entity", "update": n | [pks], "delete": n | [pks]}`, or `{"presenters": {event: n}}`.

    Updates and soft deletes bump `modified` where the type has it; comments have only `created`,
    so theirs change no timestamp. Presenters added to an event bump nothing either (a
    many-to-many change does not touch the event's row).
    """
    spec = json.loads(request.body)
    rng = random.Random(json.dumps(spec, sort_keys=True))
    result: dict = {"updated": [], "deleted": [], "presenters": {}}
    with transaction.atomic():
        if "entity" in spec:
            model = ROOTS[spec["entity"]]._meta.model
            result["updated"] = _apply(model, spec.get("update"), rng, _update)
            result["deleted"] = _apply(model, spec.get("delete"), rng, _soft_delete)
        for event_pk, count in (spec.get("presenters") or {}).items():
            event = Event.objects.get(pk=int(event_pk))
            have = set(event.presenters.values_list("pk", flat=True))
            free = [pk for pk in User.objects.values_list("pk", flat=True) if pk not in have]
            added = sorted(rng.sample(free, int(count)))
            event.presenters.add(*added)
            result["presenters"][event_pk] = added
    return JsonResponse(result)


def _apply(model, how, rng: random.Random, change) -> list[int]:
    if not how:
        return []
    if isinstance(how, list):
        pks = how
    else:
        live = list(model.objects.filter(is_deleted=False).values_list("pk", flat=True))
        pks = sorted(rng.sample(live, min(int(how), len(live))))
    moment = timezone.now()
    for i, obj in enumerate(model.objects.filter(pk__in=pks)):
        change(obj)
        if hasattr(obj, "modified"):
            obj.modified = moment + timedelta(microseconds=i)
        obj.save()
    return sorted(pks)


def _update(obj) -> None:
    if hasattr(obj, "name"):
        obj.name = obj.name.removesuffix(" (updated)") + " (updated)"
    elif hasattr(obj, "body"):
        obj.body += " (edited)"
    else:
        obj.status = "ATTENDED"


def _soft_delete(obj) -> None:
    obj.is_deleted = True
