"""The PlusPlus Public REST API (seed 002), served at `/plusplus_rest/api/v1`.

`Authorization: Bearer pp_sandbox_demo_token`; page / page_size (<= 100, or the `page_limit` set
through `configure`) with `meta.total_count`;
the error envelope with a `request_id` (also in `X-Request-Id`); the documented filters; and the
write endpoints (users, articles, content items, assignments and their state actions, bulk
archive with HTTP 207). The rows and every write on them live in `sandbox/plusplus_rest_data.py`.

Where the document is silent: a plain date in a datetime filter means midnight UTC; a reference
in a request body that does not exist (`manager`, `user_id`, `groups`, ...) is a 400
`validation_error` on that field, while an unknown `public_id` in the path is a 404; writes
that change an assignment's completion also bump its content item's `modified` (its counts
changed), and renaming a group bumps `modified` of the content items that list it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lxp_sync_sandbox.base import Api, serving_odd_timestamps
from lxp_sync_sandbox.plusplus_rest_data import (
    ASSIGNMENT_STATES,
    ATTENDANCE_METHODS,
    ENROLLMENT_STATUSES,
    ENTITIES,
    ROLES,
    PlusPlusData,
    Record,
    Table,
)

API_TOKEN = "pp_sandbox_demo_token"
API_PREFIX = "/api/v1"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_BULK_ITEMS = 100
ASSIGNMENT_ACTIONS = ("complete", "drop", "exempt", "undo_complete", "undo_exempt")
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]

__all__ = ["API_TOKEN", "ENTITIES", "PlusPlusRestApi", "build"]

Predicate = Callable[[Record], bool]
FieldErrors = dict[str, list[str]]


class ApiError(Exception):
    """An error answered with PlusPlus's envelope."""

    def __init__(
        self, status: int, code: str, message: str, field_errors: FieldErrors | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field_errors = (
            status,
            code,
            message,
            field_errors,
        )


def _validation(field_errors: FieldErrors) -> ApiError:
    return ApiError(400, "validation_error", "Validation failed.", field_errors)


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:12]


def _json(
    body: bytes, status: int, request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


def _error_response(error: ApiError, request_id: str) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message, "request_id": request_id}
    if error.field_errors:
        body["field_errors"] = error.field_errors
    return _json(orjson.dumps({"error": body}), error.status, request_id)


# ---------------------------------------------------------------------- query parameters


class Query:
    """A list request's query parameters, parsed; errors are collected per field."""

    def __init__(self, params: Any) -> None:
        # An empty value means "no filter", as with django-filter.
        self.params = {k: v for k, v in params.items() if v != ""}
        self.errors: FieldErrors = {}

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def text(self, name: str) -> str | None:
        return self.params.get(name)

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.error(name, "A valid integer is required.")
            return default
        if value < low:
            self.error(name, f"Ensure this value is greater than or equal to {low}.")
        elif high is not None and value > high:
            self.error(name, f"Ensure this value is less than or equal to {high}.")
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.params.get(name)
        if raw is None:
            return None
        value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
        if value is None:
            self.error(name, "Must be a valid boolean (true or false).")
        return value

    def moment(self, name: str) -> float | None:
        """An ISO-8601 datetime (with an offset or Z; naive means UTC) or a date, as a timestamp."""
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            self.error(name, "Enter a valid ISO-8601 date/time, e.g. 2024-01-31T09:00:00+02:00.")
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()

    def day(self, name: str) -> str | None:
        raw = self.params.get(name)
        if raw is None:
            return None
        try:
            return date.fromisoformat(raw[:10] if "T" in raw else raw).isoformat()
        except ValueError:
            self.error(name, "Enter a valid date, e.g. 2024-01-31.")
            return None


def _equals(path: tuple[str, ...], value: Any) -> Predicate:
    if len(path) == 1:
        key = path[0]
        return lambda r: r.row[key] == value
    outer, inner = path

    def test(record: Record) -> bool:
        nested = record.row[outer]
        return nested is not None and nested[inner] == value

    return test


def _contains(keys: tuple[str, ...], needle: str) -> Predicate:
    needle = needle.casefold()
    return lambda r: any(needle in (r.row[k] or "").casefold() for k in keys)


class Filters:
    """The predicates of one list request, plus a `created` range answered by bisection."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.predicates: list[Predicate] = []
        self.key: list[tuple[str, Any]] = []
        self.created_gte: float | None = None
        self.created_lte: float | None = None

    def add(self, name: str, value: Any, predicate: Predicate) -> None:
        if value is not None:
            self.predicates.append(predicate)
            self.key.append((name, value))

    def equals(self, name: str, path: tuple[str, ...] | None = None) -> None:
        value = self.query.text(name)
        self.add(name, value, _equals(path or (name,), value))

    def flag(self, name: str) -> None:
        value = self.query.boolean(name)
        self.add(name, value, _equals((name,), value))

    def search(self, name: str, keys: tuple[str, ...]) -> None:
        value = self.query.text(name)
        if value is not None:
            self.add(name, value, _contains(keys, value))

    def choice(self, name: str, path: tuple[str, ...], allowed: list[str]) -> None:
        value = self.query.text(name)
        if value is not None and value not in allowed:
            self.query.error(
                name, f"Select a valid choice. {value} is not one of {', '.join(allowed)}."
            )
            return
        self.add(name, value, _equals(path, value))

    def created(self) -> None:
        self.created_gte = self.query.moment("created_gte")
        self.created_lte = self.query.moment("created_lte")

    def modified(self) -> None:
        low, high = self.query.moment("modified_gte"), self.query.moment("modified_lte")
        self.add("modified_gte", low, lambda r: r.modified is not None and r.modified >= low)
        self.add("modified_lte", high, lambda r: r.modified is not None and r.modified <= high)


def _user_filters(f: Filters) -> None:
    q = f.query
    email = q.text("email")
    f.add("email", email, lambda r: r.row["email"].casefold() == email.casefold())
    f.equals("employee_id")
    f.search("search", ("name", "email"))
    f.flag("is_active")
    f.equals("role")
    f.equals("manager", ("manager", "public_id"))
    group = q.text("group")
    f.add("group", group, lambda r: group in r.extra)


def _group_filters(f: Filters) -> None:
    f.search("name", ("name",))
    f.equals("source")
    f.search("search", ("name", "source"))


def _article_filters(f: Filters) -> None:
    f.search("search", ("name",))
    f.flag("is_archived")
    f.flag("is_hidden")


def _content_filters(f: Filters) -> None:
    q = f.query
    f.search("search", ("name",))
    types = q.text("content_type")
    if types is not None:
        wanted = frozenset(t.strip() for t in types.split(",") if t.strip())
        f.add("content_type", wanted, lambda r: r.row["content_type"] in wanted)
    f.flag("is_archived")
    f.flag("is_hidden")
    f.created()
    f.modified()
    channel = q.text("channel")
    f.add("channel", channel, lambda r: r.extra == channel)
    group = q.text("group")
    f.add("group", group, lambda r: any(g["public_id"] == group for g in r.row["groups"]))


def _assignment_filters(f: Filters) -> None:
    q = f.query
    f.equals("user", ("user", "public_id"))
    f.equals("content_item", ("content_item", "public_id"))
    f.choice("state", ("state",), ASSIGNMENT_STATES)
    f.equals("content_type", ("content_item", "content_type"))
    f.flag("is_overdue")
    low, high = q.day("due_date_gte"), q.day("due_date_lte")
    f.add("due_date_gte", low, lambda r: r.row["due_date"] is not None and r.row["due_date"] >= low)
    f.add(
        "due_date_lte", high, lambda r: r.row["due_date"] is not None and r.row["due_date"] <= high
    )
    f.created()


def _enrollment_filters(f: Filters) -> None:
    f.equals("user", ("user", "public_id"))
    f.equals("event", ("event", "public_id"))
    f.choice("status", ("status",), ENROLLMENT_STATUSES)
    f.choice("attendance_method", ("attendance_method",), ATTENDANCE_METHODS)
    f.created()


FILTERS: dict[str, Callable[[Filters], None]] = {
    "users": _user_filters,
    "groups": _group_filters,
    "articles": _article_filters,
    "content_items": _content_filters,
    "assignments": _assignment_filters,
    "enrollments": _enrollment_filters,
}


# ---------------------------------------------------------------------- request bodies


def _body_fields(body: dict[str, Any], spec: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """Check the fields of `spec` ({name: (kind, required)}) in `body`; return those present.

    Kinds: str, bool, int, date, datetime, uuid_list. Null is allowed for every optional field
    (what null means is the endpoint's business). Unknown fields are ignored, as DRF does.
    """
    errors: FieldErrors = {}
    values: dict[str, Any] = {}
    for name, (kind, required) in spec.items():
        if name not in body or (required and body[name] is None):
            if required:
                errors[name] = ["This field is required."]
            continue
        value = body[name]
        problem = None if value is None else _kind_problem(kind, value)
        if problem:
            errors[name] = [problem]
        else:
            values[name] = value
    if errors:
        raise _validation(errors)
    return values


def _kind_problem(kind: str, value: Any) -> str | None:
    if kind == "str":
        return None if isinstance(value, str) else "Not a valid string."
    if kind == "bool":
        return None if isinstance(value, bool) else "Must be a valid boolean."
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "A valid non-negative integer is required."
    if kind == "uuid_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "Expected a list of public_ids."
    if not isinstance(value, str):
        return f"Enter a valid {kind}."
    try:
        if kind == "date":
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"Enter a valid {kind}."
    return None


# ---------------------------------------------------------------------- the API


class PlusPlusRestApi(Api):
    """PlusPlus's Public REST API over seeded data (generated on first use or by `build`)."""

    name = "plusplus_rest"

    def __init__(self, rows: int = 1000, seed: int = 42) -> None:
        self.rows, self.seed = rows, seed
        self._data: PlusPlusData | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, tuple[int, list[Record]]] = OrderedDict()
        # the largest `page_size` answered; more is a 400 field error (variant `page_limit`)
        self.page_limit = MAX_PAGE_SIZE

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """`page_limit: n`: a tenant whose lists take at most n rows a page (a larger
        `page_size` is the API's 400 `validation_error` on `page_size`, naming n)."""
        spec = dict(spec)
        result: dict[str, Any] = {}
        if "page_limit" in spec:
            self.page_limit = result["page_limit"] = max(1, int(spec.pop("page_limit")))
        super().configure(spec)
        return result

    @property
    def data(self) -> PlusPlusData:
        if self._data is None:
            self._generate()
        return self._data  # type: ignore[return-value]

    def _generate(self) -> None:
        with self._lock:
            if self._data is None:
                self._data = PlusPlusData(self.rows, self.seed)

    def start_generating(self) -> None:
        """Generate the rows in a background thread, so that the server answers meanwhile."""
        threading.Thread(target=self._generate, name=f"{self.name}-data", daemon=True).start()

    def describe(self, base_url: str) -> dict[str, Any]:
        return {"base_url": f"{base_url}/{self.name}{API_PREFIX}", "api_token": API_TOKEN}

    def truth(self, entity: str) -> list[dict[str, Any]]:
        if entity not in ENTITIES:
            raise KeyError(entity)
        return self.data.tables[entity].rows()

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.data.mutate(spec)

    def routes(self) -> list[Any]:
        # One route for everything under the mount: with and without trailing slashes, no redirect.
        return [
            Route("/{rest:path}", serving_odd_timestamps(self, self._endpoint), methods=METHODS)
        ]

    # The handlers are synchronous (no await but the body), so they run on the event loop one
    # at a time: rows never change under a request.
    async def _endpoint(self, request: Request) -> Response:
        request_id = _request_id()
        if self._data is None:
            # Wait for the rows (a million take a while) without blocking the event loop.
            await asyncio.to_thread(self._generate)
        try:
            if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
                raise ApiError(401, "unauthorized", "Invalid or missing API token.")
            parts = [p for p in request.path_params["rest"].split("/") if p]
            if parts[:2] != API_PREFIX.strip("/").split("/"):
                raise ApiError(404, "not_found", "Not found.")
            parts = parts[2:]
            body = await request.body() if request.method in ("POST", "PATCH", "PUT") else b""
            log = request.scope.get("sandbox_log")
            if log is not None:
                log["entity"] = parts[0] if parts else None
            status, payload = self._dispatch(request, parts, body)
        except ApiError as error:
            return _error_response(error, request_id)
        if isinstance(payload, bytes):
            if status == 200 and request.method == "GET" and len(parts) == 2:
                etag = '"' + hashlib.blake2b(payload, digest_size=8).hexdigest() + '"'
                if request.headers.get("if-none-match") == etag:
                    return Response(
                        status_code=304, headers={"X-Request-Id": request_id, "ETag": etag}
                    )
                return _json(payload, status, request_id, {"ETag": etag})
            return _json(payload, status, request_id)
        return _json(orjson.dumps(payload), status, request_id)

    def _dispatch(self, request: Request, parts: list[str], body: bytes) -> tuple[int, Any]:
        method = request.method
        data = self.data
        if len(parts) == 1 and parts[0] in ENTITIES:
            entity = parts[0]
            if method == "GET":
                return 200, self._list(entity, request)
            if method == "POST" and entity in ("users", "articles", "assignments"):
                return getattr(self, f"_create_{entity}")(_parse_body(body))
            raise _not_allowed(method)
        if (
            len(parts) == 2
            and parts[0] == "content_items"
            and parts[1] in ("bulk_archive", "bulk_unarchive")
        ):
            if method != "POST":
                raise _not_allowed(method)
            return self._bulk_archive(_parse_body(body), parts[1] == "bulk_archive")
        if len(parts) == 2 and parts[0] in ("users", "articles", "content_items", "assignments"):
            entity, public_id = parts
            table = data.tables[entity]
            record = table.by_id.get(public_id)
            if record is None:
                raise ApiError(404, "not_found", f"{_NOUNS[entity]} not found.")
            if method == "GET" and entity == "assignments":
                return 200, table.blob(record)
            if method == "PATCH":
                getattr(self, f"_update_{entity}")(record, _parse_body(body))
                return 200, table.blob(record)
            raise _not_allowed(method)
        if len(parts) == 3 and parts[0] == "assignments" and parts[2] in ASSIGNMENT_ACTIONS:
            if method != "POST":
                raise _not_allowed(method)
            record = data.assignments.by_id.get(parts[1])
            if record is None:
                raise ApiError(404, "not_found", "Assignment not found.")
            if parts[2] == "drop" and body.strip():
                _body_fields(_parse_body(body), {"reason": ("str", False)})
            conflict = data.transition(record, parts[2])
            if conflict:
                raise ApiError(409, "conflict", conflict)
            return 200, data.assignments.blob(record)
        raise ApiError(404, "not_found", "Not found.")

    # -------------------------------------------------------------- lists

    def _list(self, entity: str, request: Request) -> bytes:
        query = Query(request.query_params)
        page = query.integer("page", 1, 1)
        default = min(DEFAULT_PAGE_SIZE, self.page_limit)
        page_size = query.integer("page_size", default, 1, self.page_limit)
        filters = Filters(query)
        FILTERS[entity](filters)
        if query.errors:
            raise _validation(query.errors)
        table = self.data.tables[entity]
        rows, total = self._select(entity, table, filters)
        start = (page - 1) * page_size
        blob = table.blob
        page_rows = [blob(r) for r in rows[start : start + page_size]] if start < total else []
        meta = orjson.dumps({"page": page, "page_size": page_size, "total_count": total})
        return b'{"data":[' + b",".join(page_rows) + b'],"meta":' + meta + b"}"

    def _select(self, entity: str, table: Table, filters: Filters) -> tuple[Any, int]:
        """The rows that pass `filters`, in list order: a slice or a cached list, and its length."""
        low, high = filters.created_gte, filters.created_lte
        records = table.records
        start, stop = 0, len(records)
        unsorted_range = False
        if low is not None or high is not None:
            span = table.created_span(low, high)
            if span is None:
                unsorted_range = True
            else:
                start, stop = span
        if not filters.predicates and not unsorted_range:
            return _Window(records, start, stop), stop - start
        # Filtered lists are kept until the table changes, so paging through one is linear.
        key = (entity, low, high, tuple(filters.key))
        cached = self._cache.get(key)
        if cached is not None and cached[0] == table.version:
            self._cache.move_to_end(key)
            return cached[1], len(cached[1])
        tests = list(filters.predicates)
        if unsorted_range:
            tests.append(
                lambda r: (low is None or r.created >= low) and (high is None or r.created <= high)
            )
        selected = [r for r in records[start:stop] if all(t(r) for t in tests)]
        self._cache[key] = (table.version, selected)
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return selected, len(selected)

    # -------------------------------------------------------------- writes

    def _user_ref(self, public_id: str | None, field: str) -> Record | None:
        if public_id is None:
            return None
        user = self.data.users.by_id.get(public_id)
        if user is None:
            raise _validation({field: [f"User {public_id} not found."]})
        return user

    def _create_users(self, body: dict[str, Any]) -> tuple[int, bytes]:
        data = self.data
        fields = _body_fields(
            body,
            {
                "email": ("str", True),
                "name": ("str", True),
                "role": ("str", False),
                "employee_id": ("str", False),
                "manager": ("str", False),
            },
        )
        email, name = fields["email"].strip(), fields["name"].strip()
        errors: FieldErrors = {}
        if "@" not in email:
            errors["email"] = ["Enter a valid email address."]
        elif email.lower() in data.emails:
            errors["email"] = ["A user with this email already exists."]
        if not name:
            errors["name"] = ["This field may not be blank."]
        role = fields.get("role") or "user"
        if role not in ROLES:
            errors["role"] = [f"Must be one of: {', '.join(ROLES)}."]
        if errors:
            raise _validation(errors)
        manager = self._user_ref(fields.get("manager"), "manager")
        record = data.create_user(email, name, role, fields.get("employee_id"), manager)
        return 201, data.users.blob(record)

    def _update_users(self, record: Record, body: dict[str, Any]) -> None:
        fields = _body_fields(
            body,
            {
                "name": ("str", False),
                "role": ("str", False),
                "employee_id": ("str", False),
                "manager": ("str", False),
                "is_active": ("bool", False),
            },
        )
        # null leaves name, role and is_active as they are; it clears employee_id and manager.
        changes = {
            k: v for k, v in fields.items() if v is not None or k in ("employee_id", "manager")
        }
        if changes.get("role") is not None and changes["role"] not in ROLES:
            raise _validation({"role": [f"Must be one of: {', '.join(ROLES)}."]})
        if "name" in changes and not changes["name"].strip():
            raise _validation({"name": ["This field may not be blank."]})
        if "manager" in changes:
            if changes["manager"] == record.public_id:
                raise _validation({"manager": ["A user cannot be their own manager."]})
            changes["manager"] = self._user_ref(changes["manager"], "manager")
        self.data.update_user(record, changes)

    def _create_articles(self, body: dict[str, Any]) -> tuple[int, bytes]:
        fields = _body_fields(
            body,
            {
                "name": ("str", True),
                "is_hidden": ("bool", False),
                "is_self_assignable": ("bool", False),
                "duration": ("int", False),
            },
        )
        if not fields["name"].strip():
            raise _validation({"name": ["This field may not be blank."]})
        record = self.data.create_content(
            "article",
            {
                "name": fields["name"],
                "is_hidden": bool(fields.get("is_hidden") or False),
                "is_self_assignable": fields.get("is_self_assignable") is not False,
                "duration_minutes": fields.get("duration"),
            },
        )
        return 201, self.data.articles.blob(record)

    def _update_articles(self, record: Record, body: dict[str, Any]) -> None:
        fields = _body_fields(
            body,
            {
                "name": ("str", False),
                "is_hidden": ("bool", False),
                "is_self_assignable": ("bool", False),
                "duration": ("int", False),
            },
        )
        changes = {k: v for k, v in fields.items() if v is not None and k != "duration"}
        if "duration" in fields:
            changes["duration_minutes"] = fields["duration"]
        if "name" in changes and not changes["name"].strip():
            raise _validation({"name": ["This field may not be blank."]})
        self.data.update_content(record, changes)

    def _update_content_items(self, record: Record, body: dict[str, Any]) -> None:
        fields = _body_fields(
            body,
            {"name": ("str", False), "is_hidden": ("bool", False), "groups": ("uuid_list", False)},
        )
        changes = {k: v for k, v in fields.items() if v is not None}
        if "name" in changes and not changes["name"].strip():
            raise _validation({"name": ["This field may not be blank."]})
        unknown = [g for g in changes.get("groups", []) if g not in self.data.group_refs]
        if unknown:
            raise _validation({"groups": [f"Group {g} not found." for g in unknown]})
        if "groups" in changes:
            changes["groups"] = list(dict.fromkeys(changes["groups"]))
        self.data.update_content(record, changes)

    def _create_assignments(self, body: dict[str, Any]) -> tuple[int, bytes]:
        data = self.data
        fields = _body_fields(
            body,
            {
                "user_id": ("str", True),
                "content_item_id": ("str", True),
                "due_date": ("date", False),
                "expires_at": ("datetime", False),
            },
        )
        user = self._user_ref(fields["user_id"], "user_id")
        item = data.content_items.by_id.get(fields["content_item_id"])
        if item is None:
            raise _validation(
                {"content_item_id": [f"Content item {fields['content_item_id']} not found."]}
            )
        existing = data.pairs.get((user.public_id, item.public_id))
        if existing is not None:
            return 200, data.assignments.blob(existing)
        record = data.create_assignment(
            user, item, fields.get("due_date"), fields.get("expires_at")
        )
        return 201, data.assignments.blob(record)

    def _update_assignments(self, record: Record, body: dict[str, Any]) -> None:
        fields = _body_fields(
            body, {"due_date": ("date", False), "expires_at": ("datetime", False)}
        )
        if record.row["content_item"]["content_type"] == "event_type":
            raise ApiError(
                409,
                "conflict",
                "Enrollment assignments are managed through the event's enrollments.",
            )
        self.data.update_assignment(record, fields)

    def _bulk_archive(self, body: dict[str, Any], archive: bool) -> tuple[int, dict[str, Any]]:
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise _validation({"items": ["A non-empty list of items is required."]})
        if len(items) > MAX_BULK_ITEMS:
            raise _validation(
                {"items": [f"Ensure this field has no more than {MAX_BULK_ITEMS} elements."]}
            )
        data = self.data
        results = []
        for item in items:
            public_id = item.get("public_id") if isinstance(item, dict) else None
            record = data.content_items.by_id.get(public_id) if isinstance(public_id, str) else None
            if record is None:
                code, message = (
                    ("not_found", "Content item not found.")
                    if isinstance(public_id, str)
                    else ("validation_error", "Each item needs a public_id.")
                )
                results.append(
                    {
                        "public_id": public_id,
                        "status": "failed",
                        "error": {"code": code, "message": message},
                    }
                )
                continue
            if record.row["is_archived"] != archive:
                data.update_content(record, {"is_archived": archive})
            results.append({"public_id": public_id, "status": "succeeded"})
        failed = sum(r["status"] == "failed" for r in results)
        summary = {
            "results": results,
            "succeeded_count": len(results) - failed,
            "failed_count": failed,
        }
        return (207 if failed else 200), summary


_NOUNS = {
    "users": "User",
    "articles": "Article",
    "content_items": "Content item",
    "assignments": "Assignment",
}


class _Window:
    """records[start:stop] without copying it: `len` and slicing, which is all a page needs."""

    def __init__(self, records: list[Record], start: int, stop: int) -> None:
        self.records, self.start, self.stop = records, start, stop

    def __getitem__(self, part: slice) -> list[Record]:
        begin = self.start + (part.start or 0)
        end = self.stop if part.stop is None else min(self.stop, self.start + part.stop)
        return self.records[begin:end]


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(400, "validation_error", "Malformed JSON body.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "validation_error", "The body must be a JSON object.")
    return value


def _not_allowed(method: str) -> ApiError:
    return ApiError(405, "method_not_allowed", f'Method "{method}" not allowed.')


def build(config: Any) -> PlusPlusRestApi:
    """The API for `config.rows` and `config.seed`, its rows already being generated."""
    api = PlusPlusRestApi(rows=config.rows, seed=config.seed)
    api.start_generating()
    return api
