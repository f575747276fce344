"""What every sandbox API shares: the `Api` interface, JSON responses, seeded data helpers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
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


class Api:
    """One vendor API of the sandbox, mounted at `/<name>`.

    Subclasses set `name` and implement `routes`, `truth` and `mutate`; `configure` and
    `describe` are optional.
    """

    name: str = ""

    def routes(self) -> list[Any]:
        raise NotImplementedError

    def truth(self, entity: str) -> list[dict[str, Any]]:
        """Every row of `entity`, exactly as the list endpoint serializes it (KeyError if unknown)."""
        raise NotImplementedError

    def mutate(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Insert, update, delete rows as `spec` says; returns what changed."""
        raise NotImplementedError

    def configure(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """API-specific switches (schema drift, token lifetime, ...)."""
        if spec:
            raise ValueError(f"{self.name}: unknown settings {sorted(spec)}")
        return None

    def describe(self, base_url: str) -> dict[str, Any]:
        """Base URL and the fixed demo credentials, for `lxp-sync sandbox` to print."""
        return {"base_url": f"{base_url}/{self.name}"}
