"""The one HTTP client every source uses: pooled httpx, retries, pacing and typed errors."""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from lxp_sync.sources.core import activity
from lxp_sync.sources.core.errors import (
    AuthenticationError,
    ConnectionFailedError,
    LxpSyncError,
    PermissionDeniedError,
    RateLimitedError,
    RequestError,
    ResponseFormatError,
    ServerError,
)
from lxp_sync.sources.core.stop import raise_if_stopped
from lxp_sync.sources.core.stop import sleep as stoppable_sleep

log = logging.getLogger("lxp_sync")

USER_AGENT = "lxp-sync/0.1 (+https://github.com/lxp-sync/lxp-sync)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# answers that say the URL itself is wrong (no such route, or not one that takes this method)
WRONG_ADDRESS = frozenset({404, 405})
# a request waiting to retry looks this often whether another request gave up on the API
GIVE_UP_CHECK_S = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; the server's `Retry-After` wins when it says more."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def delay(self, attempt: int, server_hint: float | None = None) -> float:
        backoff = min(self.backoff_max, self.backoff_base * 2**attempt)
        jittered = random.uniform(backoff / 2, backoff)
        if server_hint is not None:
            return min(max(server_hint, 0.0), self.backoff_max * 4) + random.uniform(0, 0.05)
        return jittered


INF = float("inf")
# wait this long past the estimated end of a window: the `Reset` header is rounded (to the ms)
RESET_GUARD_S = 0.005
# the window assumed until the API announces one: it bounds a wait on a stale estimate
DEFAULT_WINDOW_S = 60.0
# a wait shorter than this is never re-checked early (an answer in flight may take that long)
MIN_RECHECK_S = 1.0
# a held request looks this often for a stop request
STOP_CHECK_S = 0.2


class RateLimitPacer:
    """Slows requests down before the API refuses them, from the `X-RateLimit-*` headers.

    Made for fixed windows: a window admits `Limit` requests and ends `Reset` seconds later; the
    next opens with the first request that arrives after it (a server may also open them on the
    clock). The pacer keeps the current window as the answers describe it:

    - its end: the earliest `now + Reset` of the answers from it. The server measured `Reset`
      when it counted the request, before the answer travelled back, so every such sum is at or
      after the server's end, and the earliest is the closest;
    - the lowest `Remaining` any of its answers reported: the server's count after the last of
      them it counted. Free slots are that, less every request in flight (each may land in this
      window, and one counted already is only counted twice until its answer comes back).

    An answer belongs to the window whose end is within half a window of its own: one a half
    window later means the server opened the next window (requests sent just before our end
    arrived after the server's), one a half window earlier is a late answer from the window
    before and says nothing about this one. At the end a new window starts with `Limit` slots
    less the requests in flight. Until the first answer, and after a wait the API announced as
    longer than its window, one request at a time finds out where things stand.

    No wait is unbounded: a window is never assumed to last longer than the longest `Reset` the
    API announced (at least `MIN_RECHECK_S`; a `Retry-After` of an hour on a one-second window
    is re-checked after a second, with one request, whose 429 then waits as `RetryPolicy`
    allows), a new window always has a slot when nothing is in flight, and a stop request
    (`core.stop`) ends every wait at once.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._limit: int | None = None
        self._probing = True  # one request at a time: nothing is known (yet, or any more)
        self._end = INF  # the current window's end; INF: not known yet
        self._previous_end = -INF  # the end of the window before, to place late answers
        self._lowest: int | None = None  # the lowest `Remaining` of the current window
        self._window_s: float | None = None  # the longest reset announced: the window's length
        self._in_flight = 0
        self._sent = 0

    def acquire(self) -> int:
        """Wait for a slot; returns the request's ticket for `release`."""
        with self._cond:
            while True:
                raise_if_stopped()
                now = self._clock()
                if now >= self._end + RESET_GUARD_S:
                    self._new_window()
                if self._free() > 0:
                    self._sent += 1
                    self._in_flight += 1
                    return self._sent
                self._cond.wait(max(0.001, min(self._end + RESET_GUARD_S - now, STOP_CHECK_S)))

    def _free(self) -> float:
        if self._probing:
            return min(1, 1 if self._lowest is None else self._lowest) - self._in_flight
        if self._lowest is not None:
            return self._lowest - self._in_flight
        if self._limit is None:
            return INF  # the API announces no limit
        return self._limit - self._in_flight

    def _new_window(self) -> None:
        self._previous_end, self._end, self._lowest = self._end, INF, None

    def release(
        self, ticket: int, headers: Mapping[str, str] | None, retry_after: float | None = None
    ) -> None:
        """The request `ticket` was answered (`headers` None: no answer); `retry_after`: a 429's."""
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            limit = remaining = reset = None
            if headers is not None:
                limit = _number(headers.get("x-ratelimit-limit"))
                remaining = _number(headers.get("x-ratelimit-remaining"))
                reset = _number(headers.get("x-ratelimit-reset"))
                if limit is not None:
                    self._limit = int(limit)
                if remaining is not None and reset is not None:
                    self._window_s = max(self._window_s or 0.0, reset)
            if retry_after is not None:
                remaining, reset = 0, retry_after
            if remaining is not None and reset is not None:
                self._place(now, now + reset, int(remaining))
            elif headers is not None and self._limit is None:
                self._probing = False  # an answer without any limit: none to keep
            self._cond.notify_all()

    def _place(self, now: float, end: float, remaining: int) -> None:
        """An answer's window (its end, its `Remaining`) in the pacer's picture."""
        window = self._window_s or (end - now) or MIN_RECHECK_S
        half = window / 2
        if self._end == INF:
            if end <= self._previous_end + half:
                return  # counted in the window before
        elif end > self._end + half:
            self._previous_end = self._end  # the server opened the next window
        elif end < self._end - half:
            return  # a late answer from the window before
        else:
            self._end = min(self._end, end)
            self._lowest = remaining if self._lowest is None else min(self._lowest, remaining)
            return
        longest = max(self._window_s or DEFAULT_WINDOW_S, MIN_RECHECK_S)
        if end - now > longest:
            log.warning(
                "rate limit: the API asked to wait %.1fs, longer than the %.1fs window %s; "
                "re-checking the limit with one request after %.1fs",
                end - now,
                self._window_s or DEFAULT_WINDOW_S,
                "the API announced" if self._window_s else "assumed",
                longest,
            )
            end = now + longest
            self._probing = True
        else:
            self._probing = False
        self._end, self._lowest = end, remaining


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def unbound(response: httpx.Response) -> httpx.Response:
    """`response` (read whole, closed) without the stream httpx binds to it. The stream refers
    back to the response: a reference cycle, which holds the body until Python's cycle collector
    runs. Between its full passes hundreds of pages waited, tens of MB at 1M rows; without the
    cycle a page's body goes as soon as nothing uses it."""
    response.stream = httpx.ByteStream(b"")
    return response


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds) or `X-RateLimit-Reset` when nothing remains."""
    retry_after = _number(response.headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    if response.headers.get("x-ratelimit-remaining") == "0":
        return _number(response.headers.get("x-ratelimit-reset"))
    return None


def request_id_of(response: httpx.Response, body: Any = None) -> str | None:
    """The vendor's request id: from the error envelope, else from the usual headers."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("request_id"):
            return str(error["request_id"])
        if body.get("request_id"):
            return str(body["request_id"])
    for header in ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id"):
        if header in response.headers:
            return response.headers[header]
    return None


def _error_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            message = str(error["message"])
            if error.get("field_errors"):
                fields = "; ".join(
                    f"{k}: {' '.join(map(str, v))}" for k, v in error["field_errors"].items()
                )
                message += f" {fields}"
            return message
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            # a GraphQL server may answer a query it cannot validate with HTTP 400 (graphene-django)
            message = str(errors[0].get("message") or fallback)
            return message + (f" and {len(errors) - 1} more errors" if len(errors) > 1 else "")
        for key in ("error_description", "detail", "message"):
            if isinstance(body.get(key), str):
                return body[key]
        if isinstance(error, str):
            return error
    return fallback


def _scope_detail(body: Any, message: str, granted_scope: str | None) -> str:
    """`; missing scope X; the token has Y Z` for an OAuth2-style 403 (empty if nothing is known).

    Read from the body (`missing_scopes`/`required_scope`, `token_scopes`), else the scope the
    token endpoint granted.
    """
    missing: Any = None
    has: Any = None
    if isinstance(body, dict):
        missing = body.get("missing_scopes") or body.get("required_scope")
        has = body.get("token_scopes")
    if has is None and granted_scope is not None:
        has = granted_scope.split()
    parts = []
    if isinstance(missing, str):
        missing = [missing]
    if isinstance(missing, list) and not all(str(m) in message for m in missing):
        parts.append(f"missing scope {' '.join(map(str, missing))}")
    if isinstance(has, list):
        parts.append(f"the token has {' '.join(map(str, has)) or 'no scopes'}")
    return "".join(f"; {part}" for part in parts)


def error_for(
    response: httpx.Response,
    resource: str | None,
    page: Any,
    granted_scope: str | None = None,
    url_setting: str = "base_url",
) -> LxpSyncError:
    """The typed error for a failed answer (`granted_scope`: what the token has, for a 403;
    `url_setting`: the setting a 404 points at)."""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    request_id = request_id_of(response, body)
    facts = {"resource": resource, "page": page, "status": status, "request_id": request_id}
    if status == 401:
        return AuthenticationError(
            f"the API refused the credentials: {_error_message(body, 'unauthorized')}", **facts
        )
    if status == 403:
        message = _error_message(body, "forbidden")
        scopes = _scope_detail(body, message, granted_scope)
        hint = (
            "Request a token with the missing scope: add it to `scopes` (the API client must be "
            "allowed it), or leave the resource out with `resources`"
            if scopes
            else None
        )
        return PermissionDeniedError(f"access denied: {message}{scopes}", hint=hint, **facts)
    if status == 429:
        return RateLimitedError("still rate limited after every retry", **facts)
    if status >= 500:
        return ServerError(
            f"the API kept failing: {_error_message(body, response.reason_phrase)}", **facts
        )
    if status in WRONG_ADDRESS:
        # no such address: the URL is wrong, whatever the resource's other settings are
        where = str(response.request.url.copy_with(query=None))
        section = f" under [sources.{resource.split('.')[0]}]" if resource else ""
        return RequestError(
            f"nothing answers at {where}: {_error_message(body, response.reason_phrase)}",
            hint=f"Check `{url_setting}`{section}: it must be the address the API answers at",
            **facts,
        )
    return RequestError(
        f"the API refused the request: {_error_message(body, response.reason_phrase)}", **facts
    )


class ApiClient:
    """A pooled httpx client for one source: auth, retries, pacing, typed errors.

    Thread-safe: pages of a resource and resources of a source share it. A stop request
    (`core.stop`) ends its retries, backoffs and pacer waits with `Interrupted`. When one request
    gives up after every retry, the run is lost: the requests then waiting to retry give up too,
    with the same error, and the client retries nothing more, rather than retry on for seconds
    after the run has failed.

    Retries are logged once per cause at INFO (a summary line), each one at DEBUG (`-v`).
    """

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None = None,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        sleep: Callable[[float], None] = stoppable_sleep,
        decode: Callable[[bytes], Any] = orjson.loads,
        url_setting: str = "base_url",
    ) -> None:
        self.base_url = base_url
        # the setting that holds the API's address, named when the address answers 404
        self.url_setting = url_setting
        # the JSON decoder of answers (`numbers.loads_exact` keeps every digit of long numbers)
        self.decode = decode
        self.retry = retry or RetryPolicy()
        self.pacer = RateLimitPacer()
        self._sleep = sleep
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        # the error of the first request that gave up after every retry
        self._gave_up: LxpSyncError | None = None
        self._retry_causes: set[str] = set()
        self.http = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            follow_redirects=follow_redirects,
            verify=True,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def request_json(
        self,
        method: str,
        url: str,
        *,
        resource: str | None = None,
        page: Any = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        decoded: bool = True,
    ) -> tuple[Any, httpx.Response]:
        """Send a request, retrying what is worth retrying; returns the decoded JSON and the response.

        `decoded` False: the body as it came (bytes), for the caller to decode with `decode` when
        it needs the rows (a page asked for ahead waits as its bytes); a body that is not JSON is
        then the caller's to ask for again."""
        policy = self.retry
        attempt = 0
        if json is not None:
            content = orjson.dumps(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        while True:
            raise_if_stopped(resource, page)
            ticket = self.pacer.acquire()
            retry_after: float | None = None
            response: httpx.Response | None = None
            try:
                with self._count_lock:
                    self.requests_sent += 1
                activity.current().request(resource)
                response = unbound(
                    self.http.request(method, url, params=params, content=content, headers=headers)
                )
            except httpx.TransportError as exc:
                self.pacer.release(ticket, None)
                if attempt >= policy.max_retries or self.gave_up:
                    raise self.give_up(
                        ConnectionFailedError(
                            f"no answer from {self.where(url)}: {type(exc).__name__}",
                            resource=resource,
                            page=page,
                        )
                    ) from None
                self.backoff(attempt, None, resource, page, type(exc).__name__)
                attempt += 1
                continue
            if response.status_code == 429:
                activity.current().rate_limited(resource)
            if response.status_code in RETRY_STATUSES:
                retry_after = retry_after_seconds(response)
                self.pacer.release(
                    ticket, response.headers, retry_after if response.status_code == 429 else None
                )
                if attempt >= policy.max_retries or self.gave_up:
                    raise self.give_up(error_for(response, resource, page))
                why = f"HTTP {response.status_code}"
                self.backoff(attempt, retry_after, resource, page, why)
                attempt += 1
                continue
            self.pacer.release(ticket, response.headers)
            if response.status_code >= 400:
                granted = getattr(self.http.auth, "granted_scope", None)
                raise error_for(response, resource, page, granted, self.url_setting)
            if response.is_redirect:
                raise RequestError(
                    f"the API redirected to {response.headers.get('location')!r}",
                    resource=resource,
                    page=page,
                    status=response.status_code,
                    hint=f"Set `{self.url_setting}` to the address it redirects to",
                )
            if not decoded:
                return response.content, response
            try:
                return self.decode(response.content), response
            except ValueError:  # orjson's and json's decode errors both are
                if attempt >= policy.max_retries or self.gave_up:
                    raise self.give_up(
                        ResponseFormatError(
                            f"the answer from {self.where(url)} is not JSON",
                            resource=resource,
                            page=page,
                            status=response.status_code,
                            request_id=request_id_of(response),
                        )
                    ) from None
                self.backoff(attempt, None, resource, page, "a malformed body")
                attempt += 1

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.request_json("GET", url, **kwargs)[0]

    def where(self, url: str) -> str:
        # the URL without its query: queries can carry filters, never credentials, but stay short
        full = self.http.base_url.join(url) if not url.startswith("http") else httpx.URL(url)
        return str(full.copy_with(query=None))

    @property
    def gave_up(self) -> bool:
        """Whether a request of this client gave up after every retry (no more retries then)."""
        return self._gave_up is not None

    def give_up(self, error: LxpSyncError) -> LxpSyncError:
        """`error`, after every retry: the requests waiting to retry end with it too."""
        with self._count_lock:
            if self._gave_up is None:
                self._gave_up = error
        return error

    def backoff(
        self, attempt: int, hint: float | None, resource: str | None, page: Any, why: str
    ) -> None:
        """Wait before retry `attempt + 1` (and say why): the policy's delay, or the server's.

        The wait ends with the error of a request that gives up meanwhile.
        """
        delay = self.retry.delay(attempt, hint)
        activity.current().retry(resource)
        where = f"{resource} page {page}" if page is not None else str(resource)
        with self._count_lock:
            first = why not in self._retry_causes
            self._retry_causes.add(why)
        if first and not log.isEnabledFor(logging.DEBUG):  # -v: the line below says it
            log.info(
                "%s: %s; retrying with backoff, up to %d times (-v shows every retry)",
                where,
                why,
                self.retry.max_retries,
            )
        log.debug("%s: %s, retry %d in %.2fs", where, why, attempt + 1, delay)
        deadline = time.monotonic() + delay
        while True:
            gave_up = self._gave_up
            if gave_up is not None:
                raise copy.copy(gave_up)  # a copy: each thread's traceback is its own
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._sleep(min(left, GIVE_UP_CHECK_S))
