"""What every sandbox API shares: the `Api` interface, JSON responses, seeded data helpers."""

from __future__ import annotations

import random
import re
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

# Generated data lies before this instant; mutations use the real clock, so that
# every change made between two runs is newer than anything generated.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

# Offsets the sandbox writes timestamps in, so that clients must parse offsets, not assume Z.
OFFSETS = [
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=5, minutes=30)),
]


def _exact(value: Any) -> Any:
    """orjson's hook for what it cannot write: a `Decimal` as the JSON number it is, every digit."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, option: int | None = None) -> bytes:
    """JSON bytes; `Decimal`s as numbers with all their digits (more than a double holds)."""
    return orjson.dumps(value, default=_exact, option=option)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, headers=headers, media_type="application/json")


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso(moment: datetime, rng: random.Random | None = None) -> str:
    """ISO-8601 with an offset; with `rng`, in one of several offsets (the same instant)."""
    tz = rng.choice(OFFSETS) if rng else UTC
    text = moment.astimezone(tz).isoformat()
    return text.replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def now() -> datetime:
    return datetime.now(UTC)


# A JSON string that is an ISO-8601 instant with an offset, as every sandbox API writes them.
_INSTANT = re.compile(rb'"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)"')


def odd_timestamps(body: bytes) -> bytes:
    """A JSON body with three in four instants written as real APIs also write them: naive
    (UTC, no offset), with nine fractional digits, or a date alone (midnight UTC), the rest
    unchanged. The form depends on the text alone, so the truth and every answer agree."""
    return _INSTANT.sub(_odd_instant, body)


def _odd_instant(match: re.Match[bytes]) -> bytes:
    form = zlib.crc32(match.group(0)) % 4
    if form == 0:
        return match.group(0)
    day, clock, fraction, offset = (g.decode() if g else "" for g in match.groups())
    if form == 2:  # nanoseconds: a client keeps the microseconds (the instant's own)
        return f'"{day}T{clock}.{fraction.ljust(6, "0")}{form * 123:03d}{offset}"'.encode()
    moment = datetime.fromisoformat(f"{day}T{clock}{'.' + fraction if fraction else ''}{offset}")
    utc = moment.astimezone(UTC)
    if form == 1:
        return f'"{utc.replace(tzinfo=None).isoformat()}"'.encode()
    return f'"{utc.date().isoformat()}"'.encode()


Handler = Callable[[Request], Awaitable[Response]]


def serving_odd_timestamps(api: Api, handler: Handler) -> Handler:
    """`handler` whose JSON answers carry odd timestamps while `api.odd_timestamps` is on."""

    async def handle(request: Request) -> Response:
        response = await handler(request)
        if not api.odd_timestamps or "json" not in response.headers.get("content-type", ""):
            return response
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        body = odd_timestamps(bytes(response.body))
        return Response(body, status_code=response.status_code, headers=headers)

    return handle


class Api:
    """One vendor API of the sandbox, mounted at `/<name>`.

    Subclasses set `name` and implement `routes`, `truth` and `mutate`; `configure` and
    `describe` are optional.
    """

    name: str = ""
    # `configure({"odd_timestamps": true})`: answers and truth write instants in odd forms
    odd_timestamps: bool = False

    def routes(self) -> list[Any]:
        raise NotImplementedError

    def truth(self, entity: str) -> list[dict[str, Any]]:
        """Every row of `entity`, exactly as the list endpoint serializes it (KeyError if unknown)."""
        raise NotImplementedError

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Insert, update, delete rows as `spec` says; returns what changed."""
        raise NotImplementedError

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """API-specific switches (schema drift, token lifetime, ...); `odd_timestamps` for all."""
        spec = dict(spec)
        if "odd_timestamps" in spec:
            self.odd_timestamps = bool(spec.pop("odd_timestamps"))
        if spec:
            raise ValueError(f"{self.name}: unknown settings {sorted(spec)}")
        return None

    def describe(self, base_url: str) -> dict[str, Any]:
        """Base URL and the fixed demo credentials, for `lxp-sync sandbox` to print."""
        return {"base_url": f"{base_url}/{self.name}"}
