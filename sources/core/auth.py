"""Authentication as `httpx.Auth` classes: static tokens and tokens fetched and renewed."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from typing import Any

import httpx
import orjson

from sources.core.errors import AuthenticationError, ConnectionFailedError, ResponseFormatError
from sources.core.http import USER_AGENT, request_id_of


class TokenAuth(httpx.Auth):
    """`Authorization: <scheme> <token>`: PlusPlus GraphQL (`Token`) and REST (`Bearer`)."""

    def __init__(self, token: str, scheme: str = "Bearer") -> None:
        self._header = f"{scheme} {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(<redacted>)"


class RenewableTokenAuth(httpx.Auth):
    """A bearer token fetched on demand, cached, renewed before it expires and once on a 401.

    Subclasses implement `fetch_token() -> (token, lifetime_seconds)`. Thread-safe: one token
    serves every thread of a source.
    """

    scheme = "Bearer"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.tokens_fetched = 0

    def fetch_token(self) -> tuple[str, float]:
        raise NotImplementedError

    @staticmethod
    def renew_margin(lifetime: float) -> float:
        """Renew a 24 h token after about 23 h, a 1 h token after about 57 min."""
        return max(min(30.0, lifetime / 4), lifetime / 24)

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                token, lifetime = self.fetch_token()
                self.tokens_fetched += 1
                self._token = token
                self._renew_at = time.monotonic() + lifetime - self.renew_margin(lifetime)
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (only `token`, if given: another thread may have renewed it already)."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"{self.scheme} {token}"
        response = yield request
        if response.status_code == 401:
            self.invalidate(token)
            request.headers["Authorization"] = f"{self.scheme} {self.token()}"
            yield request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


def post_token_request(
    token_url: str,
    data: Mapping[str, Any],
    *,
    what: str,
    as_json: bool = False,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """POST to an OAuth2 token endpoint; a refusal is one `AuthenticationError` line.

    The line carries the vendor's `error` and `error_description`, never the request body.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        if as_json:
            response = httpx.post(token_url, json=dict(data), headers=headers, timeout=timeout)
        else:
            response = httpx.post(token_url, data=dict(data), headers=headers, timeout=timeout)
    except httpx.TransportError as exc:
        raise ConnectionFailedError(
            f"no answer from the token endpoint {token_url}: {type(exc).__name__}", resource=what
        ) from None
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict) or "access_token" not in body:
        if response.status_code < 400 and isinstance(body, dict):
            raise ResponseFormatError(
                "the token endpoint answered without an access_token",
                resource=what,
                status=response.status_code,
            )
        detail = "refused"
        if isinstance(body, dict):
            error = body.get("error")
            description = body.get("error_description") or body.get("detail") or body.get("message")
            detail = ": ".join(str(part) for part in (error, description) if part) or detail
        if response.is_redirect:
            detail = f"redirected to {response.headers.get('location')!r}"
        raise AuthenticationError(
            f"the token endpoint refused the credentials: {detail}",
            resource=what,
            status=response.status_code,
            request_id=request_id_of(response, body),
        )
    return body


class OAuth2ClientCredentials(RenewableTokenAuth):
    """OAuth2 `client_credentials` grant: Pluvo (form-encoded, scopes), Pitchly (organization_id)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        extra: Mapping[str, Any] | None = None,
        as_json: bool = False,
        what: str = "token",
    ) -> None:
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.extra = dict(extra or {})
        self.as_json = as_json
        self.what = what
        self.granted_scope: str | None = None

    def fetch_token(self) -> tuple[str, float]:
        data: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            **self.extra,
        }
        if self.scope:
            data["scope"] = self.scope
        body = post_token_request(self.token_url, data, what=self.what, as_json=self.as_json)
        self.granted_scope = body.get("scope", self.scope)
        return str(body["access_token"]), float(body.get("expires_in") or 3600)
