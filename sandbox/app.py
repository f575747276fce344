"""The sandbox: one ASGI app that stands in for every vendor API.

Each vendor API is an `Api` (see `sandbox/base.py`) mounted under its own prefix.
The app adds what every API shares: per-request latency, scripted and random
faults, rate limiting with `X-RateLimit-*` headers, a request log, and the
sandbox-only endpoints under `/_sandbox/`:

- `GET  /_sandbox/health`                      -> {"ok": true, "apis": [...]}
- `GET  /_sandbox/truth/<api>/<entity>`        -> {"data": [rows exactly as the API serializes them]}
- `POST /_sandbox/mutate`  {"api", "entity", ...} -> what the API's `mutate` returns
- `POST /_sandbox/config`  {"latency_ms", "rate_limit", "rate_window_s", "faults_rate",
                            "api": name, ...api-specific switches}; every API takes
                            `odd_timestamps` (answers and truth write instants naive, with
                            nine fractional digits or as a date alone; see `base.py`)
- `POST /_sandbox/faults`  {"api", "path_contains", "body_contains", "skip", "count", "kind", ...}
                            queues a fault for the matching requests (see below)
- `GET  /_sandbox/requests?api=NAME`           -> {"requests": [{api, method, path, query, status, extra, at}]}
  (`at`: the server's `time.monotonic()` when the rate limiter counted the request, or when it
  arrived if a fault answered it; on Linux the same clock as a client's on this machine)
- `DELETE /_sandbox/requests`                  -> clears the log (and the fault queue)

A fault matches a request of `api` (any API if absent) whose path and query contain
`path_contains` and whose raw body contains `body_contains` (GraphQL: a connection name, a
variable, a cursor); the first `skip` matching requests pass untouched, then it fires for
`count` requests. Its `kind` says what happens (`sandbox/faults.py` has the details):

- answered instead of the API: `status` (HTTP `status` with the API's error envelope, or `body`
  as given; `retry_after` and `reset_after` set the rate-limit headers), `drop` (the connection
  closes unanswered), `slow` (the answer comes `delay_s` late), `malformed` (a body cut short);
- `mutate`: `mutation`, a `/_sandbox/mutate` spec (`api` defaults to the fault's), is applied
  right before the request is served: rows change while a client pages through a list;
- the API's real answer, rewritten (for REST lists and for the GraphQL connections alike):
  `short` (the last `drop` rows cut, default 1, the count unchanged), `empty` (no rows, the count
  unchanged), `early_end` (`hasNextPage: false`), `no_data` (GraphQL `{"data": {}}`; REST: no
  `data`), `null_node` (one node null; REST: one row null), `null_edge` (one edge null),
  `no_page_info` (no `pageInfo`), `no_count` (no `totalCount`/`count`; REST: no
  `meta.total_count`). A rewritten answer carries an `X-Request-Id` (the API's own if it sent
  one), so that a client's error line can be traced to it.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from lxp_sync_sandbox.base import Api, dumps, json_response, odd_timestamps
from lxp_sync_sandbox.faults import REWRITES, Fault


@dataclass
class SandboxConfig:
    rows: int = 1000
    seed: int = 42
    latency_ms: float = 0.0
    rate_limit: int = 0  # requests per window and API; 0 = unlimited
    rate_window_s: float = 1.0
    faults_rate: float = 0.0  # share of requests that get a random 503


@dataclass
class _RateWindow:
    started: float = 0.0
    used: int = 0


@dataclass
class SandboxState:
    config: SandboxConfig
    apis: dict[str, Api]
    log: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    windows: dict[str, _RateWindow] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:12]


async def _buffered(receive: Any) -> tuple[bytes, Any]:
    """The request body, read in full, and a `receive` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "request_id": _request_id()}}
    return json_response(body, status=status, headers=headers)


class SandboxMiddleware:
    """Latency, faults, rate limits and the request log, for every API route."""

    def __init__(self, app: Any, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        state = self.state
        path: str = scope["path"]
        api_name = path.strip("/").split("/", 1)[0]
        entry: dict[str, Any] = {
            "api": api_name,
            "method": scope["method"],
            "path": path,
            "query": scope.get("query_string", b"").decode(),
            "status": None,
            "extra": {},
            "at": time.monotonic(),
        }
        scope["sandbox_log"] = entry["extra"]
        with state.lock:
            state.log.append(entry)

        if state.config.latency_ms:
            await asyncio.sleep(state.config.latency_ms / 1000)

        body = b""
        if any(fault.body_contains for fault in state.faults):
            body, receive = await _buffered(receive)
        fault = self._take_fault(api_name, path, entry["query"], body)
        rewrite: Fault | None = None
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        elif fault is not None and fault.kind == "mutate":
            try:
                mutated = state.apis[fault.api or api_name].mutate(dict(fault.mutation or {}))
            except (KeyError, ValueError) as exc:
                mutated = {"error": str(exc)}
            entry["extra"]["mutated"] = mutated
        elif fault is not None and fault.rewrites:
            rewrite = fault
        elif fault is not None:
            response = self._fault_response(fault)
            if response is None:  # "drop": close without answering
                entry["status"] = 0
                raise ConnectionResetError("sandbox fault: dropped connection")
            entry["status"] = response.status_code
            await response(scope, receive, send)
            return
        elif state.config.faults_rate and state.rng.random() < state.config.faults_rate:
            entry["status"] = 503
            await _error(503, "unavailable", "Random sandbox fault.")(scope, receive, send)
            return

        entry["at"] = time.monotonic()  # the moment the rate limiter counts it
        limited = self._rate_limit(api_name)
        if limited is not None:
            entry["status"] = 429
            await limited(scope, receive, send)
            return
        rate_headers = self._rate_headers(api_name)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                if rate_headers:
                    headers = list(message.get("headers", []))
                    headers.extend(
                        (k.lower().encode(), v.encode()) for k, v in rate_headers.items()
                    )
                    message = {**message, "headers": headers}
            await send(message)

        if rewrite is None:
            await self.app(scope, receive, send_with_headers)
        else:
            await self._rewritten(scope, receive, send_with_headers, rewrite)

    async def _rewritten(self, scope: dict, receive: Any, send: Any, fault: Fault) -> None:
        """The API's real answer, rewritten as `fault` says (see `sandbox/faults.py`)."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        content = b"".join(chunks)
        try:  # every digit kept: a rewritten page must not change the numbers it carries
            answer = json.loads(content, parse_float=Decimal)
        except ValueError:
            answer = None
        if answer is not None:
            REWRITES[fault.kind](answer, fault)
            content = dumps(answer)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if not any(k.lower() == b"x-request-id" for k, _ in headers):
            headers.append((b"x-request-id", _request_id().encode()))
        headers.append((b"content-length", str(len(content)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _take_fault(self, api: str, path: str, query: str, body: bytes) -> Fault | None:
        with self.state.lock:
            for fault in self.state.faults:
                if not fault.matches(api, f"{path}?{query}", body):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self.state.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> Response | None:
        if fault.kind == "drop":
            return None
        if fault.kind == "malformed":
            return Response(
                b'{"data": [ {"public_id": ', status_code=200, media_type="application/json"
            )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.reset_after is not None:
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(fault.reset_after)
        if fault.body is not None:
            return json_response(fault.body, status=fault.status, headers=headers)
        code = {429: "rate_limited", 401: "unauthorized", 403: "forbidden"}.get(
            fault.status, "server_error"
        )
        return _error(fault.status, code, f"Sandbox fault {fault.status}.", headers)

    def _window(self, api: str) -> _RateWindow:
        now = time.monotonic()
        window = self.state.windows.setdefault(api, _RateWindow(started=now))
        if now - window.started >= self.state.config.rate_window_s:
            window.started, window.used = now, 0
        return window

    def _rate_limit(self, api: str) -> Response | None:
        limit = self.state.config.rate_limit
        if not limit:
            return None
        with self.state.lock:
            window = self._window(api)
            if window.used >= limit:
                reset = max(
                    0.0, self.state.config.rate_window_s - (time.monotonic() - window.started)
                )
                headers = {
                    "Retry-After": f"{reset:.3f}",
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{reset:.3f}",
                }
                return _error(429, "rate_limited", "Too many requests.", headers)
            window.used += 1
        return None

    def _rate_headers(self, api: str) -> dict[str, str]:
        config = self.state.config
        limit = config.rate_limit
        if not limit:
            return {
                "X-RateLimit-Limit": "100000",
                "X-RateLimit-Remaining": "100000",
                "X-RateLimit-Reset": "60",
            }
        with self.state.lock:
            window = self._window(api)
            reset = max(0.0, config.rate_window_s - (time.monotonic() - window.started))
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(0, limit - window.used)),
                "X-RateLimit-Reset": f"{reset:.3f}",
            }


def create_app(config: SandboxConfig | None = None, apis: list[Api] | None = None) -> Any:
    """Build the sandbox ASGI app with every vendor API (or the given ones)."""
    config = config or SandboxConfig()
    if apis is None:
        from lxp_sync_sandbox.registry import default_apis

        apis = default_apis(config)
    state = SandboxState(config=config, apis={api.name: api for api in apis})

    async def health(request: Request) -> Response:
        return json_response({"ok": True, "apis": sorted(state.apis)})

    def _api(name: str) -> Api:
        if name not in state.apis:
            raise KeyError(name)
        return state.apis[name]

    async def truth(request: Request) -> Response:
        try:
            api = _api(request.path_params["api"])
            rows = api.truth(request.path_params["entity"])
        except KeyError as exc:
            return _error(404, "not_found", f"Unknown api or entity: {exc}")
        body = dumps({"data": rows})
        if api.odd_timestamps:  # the truth is what the API serves
            body = odd_timestamps(body)
        return Response(body, media_type="application/json")

    async def mutate(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        try:
            api = _api(spec["api"])
        except KeyError as exc:
            return _error(404, "not_found", f"Unknown api: {exc}")
        try:
            result = api.mutate(spec)
        except (KeyError, ValueError) as exc:
            return _error(400, "bad_request", f"Cannot mutate: {exc}")
        return json_response(result)

    async def configure(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        for key in ("latency_ms", "rate_limit", "rate_window_s", "faults_rate"):
            if key in spec:
                setattr(config, key, type(getattr(config, key))(spec.pop(key)))
        result: dict[str, Any] = {}
        if "api" in spec:
            try:
                result = _api(spec.pop("api")).configure(spec) or {}
            except KeyError as exc:
                return _error(404, "not_found", f"Unknown api: {exc}")
            except ValueError as exc:
                return _error(400, "bad_request", str(exc))
        with state.lock:
            state.windows.clear()
        return json_response({"ok": True, **result})

    async def faults(request: Request) -> Response:
        spec = orjson.loads(await request.body())
        try:
            fault = Fault(**spec)
        except (TypeError, ValueError) as exc:
            return _error(400, "bad_request", f"Bad fault: {exc}")
        if fault.kind == "mutate" and (
            not fault.mutation or (fault.api and fault.api not in state.apis)
        ):
            return _error(400, "bad_request", "A mutate fault needs `mutation` (and a known api).")
        with state.lock:
            state.faults.append(fault)
        return json_response({"ok": True})

    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            with state.lock:
                state.log.clear()
                state.faults.clear()
            return json_response({"ok": True})
        api = request.query_params.get("api")
        with state.lock:
            rows = [e for e in state.log if api in (None, e["api"])]
        return json_response({"requests": rows})

    routes: list[Any] = [
        Route("/_sandbox/health", health),
        Route("/_sandbox/truth/{api}/{entity}", truth),
        Route("/_sandbox/mutate", mutate, methods=["POST"]),
        Route("/_sandbox/config", configure, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["POST"]),
        Route("/_sandbox/requests", requests_log, methods=["GET", "DELETE"]),
    ]
    for api in apis:
        routes.append(Mount(f"/{api.name}", routes=api.routes()))
    app = Starlette(routes=routes)
    app.state.sandbox = state
    return SandboxMiddleware(app, state)
