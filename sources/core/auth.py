"""Authentication as `httpx.Auth` classes: static tokens and tokens fetched and renewed."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
import warnings
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from lxp_sync.sources.core.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    RequestError,
    ResponseFormatError,
    ServerError,
)
from lxp_sync.sources.core.http import USER_AGENT, WRONG_ADDRESS, request_id_of

log = logging.getLogger("lxp_sync")


class TokenAuth(httpx.Auth):
    """`Authorization: <scheme> <token>`: PlusPlus GraphQL (`Token`) and REST (`Bearer`)."""

    def __init__(self, token: str, scheme: str = "Bearer") -> None:
        self._header = f"{scheme} {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(<redacted>)"


def _fingerprint(secret: str) -> str:
    """A short hash of a secret: tells secrets apart without holding one."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class TokenCache:
    """Access tokens kept in a local JSON file, mode 0600, so that the next run reuses them.

    Off unless a source is given a path. The file holds access tokens (never client secrets),
    keyed by a hash of the token URL, client id, a fingerprint of the client secret and scope,
    each with the wall-clock time after which it must be renewed (so a token is only reused
    with the secret that obtained it). A file that others may read is ignored (and rewritten as 0600).
    """

    # fsync the file and its folder on every write (a subclass whose entries must survive a crash)
    durable = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def _read(self) -> dict[str, Any]:
        try:
            info = self.path.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("token cache %s is readable by others; not using it", self.path)
                return {}
            body = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return body if isinstance(body, dict) else {}

    def _write(self, entries: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, orjson.dumps(entries))
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        if self.durable:
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for `key` while it needs no renewal, else None."""
        entry = self._read().get(key)
        if isinstance(entry, dict) and float(entry.get("renew_at", 0)) > time.time():
            return entry
        return None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        now = time.time()
        entries = {
            k: v
            for k, v in self._read().items()
            if isinstance(v, dict) and float(v.get("renew_at", 0)) > now
        }
        entries[key] = entry
        self._write(entries)

    def forget(self, key: str, token: str | None) -> None:
        """Drop `key`'s token (only if it is `token`, when given): the server refused it."""
        entries = self._read()
        entry = entries.get(key)
        if isinstance(entry, dict) and (token is None or entry.get("access_token") == token):
            del entries[key]
            self._write(entries)


class RenewableTokenAuth(httpx.Auth):
    """A bearer token fetched on demand, cached, renewed before it expires and once on a 401.

    Subclasses implement `fetch_token() -> (token, lifetime_seconds)`. Thread-safe: one token
    serves every thread of a source. With a `TokenCache`, a token outlives the run: the next run
    within its lifetime uses it instead of asking for a new one.
    """

    scheme = "Bearer"

    def __init__(self, cache: TokenCache | None = None) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.cache = cache
        self.tokens_fetched = 0
        self.tokens_from_cache = 0
        # the scope the server granted with the token, when it says (OAuth2 `scope`)
        self.granted_scope: str | None = None

    def fetch_token(self) -> tuple[str, float]:
        raise NotImplementedError

    def cache_key(self) -> str:
        """What identifies this token in a `TokenCache` (never a secret)."""
        return type(self).__name__

    @staticmethod
    def renew_margin(lifetime: float) -> float:
        """Renew a 24 h token after about 23 h, a 1 h token after about 57 min."""
        return max(min(30.0, lifetime / 4), lifetime / 24)

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._token, renew_in = self._cached_token() or self._new_token()
                self._renew_at = time.monotonic() + renew_in
            return self._token

    def _cached_token(self) -> tuple[str, float] | None:
        entry = self.cache.get(self.cache_key()) if self.cache is not None else None
        if entry is None:
            return None
        self.tokens_from_cache += 1
        self.granted_scope = entry.get("scope")
        return str(entry["access_token"]), float(entry["renew_at"]) - time.time()

    def _new_token(self) -> tuple[str, float]:
        token, lifetime = self.fetch_token()
        self.tokens_fetched += 1
        renew_in = lifetime - self.renew_margin(lifetime)
        if self.cache is not None:
            entry = {"access_token": token, "renew_at": time.time() + renew_in}
            self.cache.put(self.cache_key(), {**entry, "scope": self.granted_scope})
        return token, renew_in

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (only `token`, if given: another thread may have renewed it already)."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None
                if self.cache is not None:
                    self.cache.forget(self.cache_key(), token)

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


def oauth_error_text(body: Any) -> str | None:
    """The vendor's own words in an OAuth2 error body: `error: error_description`, as text.

    RFC 6749 gives strings; some servers nest an envelope (`{"error": {"code", "message"}}`) or
    answer with `detail`/`message`. Only text is taken, never a structure's repr.
    """
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):  # an envelope: its code and message
        body, error = error, error.get("code") or error.get("error")
    parts = [error] if isinstance(error, str) and error.strip() else []
    for key in ("error_description", "description", "message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(value)
            break
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            parts.append(" ".join(value))
            break
    return ": ".join(part.strip() for part in parts) or None


def post_token_request(
    token_url: str,
    data: Mapping[str, Any],
    *,
    what: str,
    as_json: bool = False,
    timeout: float = 30.0,
    url_setting: str = "token_url",
) -> dict[str, Any]:
    """POST to an OAuth2 token endpoint; a refusal is one `AuthenticationError` line.

    The line carries the vendor's `error` and `error_description`, never the request body. (It
    says "OAuth2 server", not "token endpoint": the command redacts any word after "token".)
    A redirect is not followed (the body holds the client secret) but reported, with where to.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    try:
        if as_json:
            response = httpx.post(token_url, json=dict(data), headers=headers, timeout=timeout)
        else:
            response = httpx.post(token_url, data=dict(data), headers=headers, timeout=timeout)
    except httpx.TransportError as exc:
        raise ConnectionFailedError(
            f"no answer from the OAuth2 server at {token_url}: {type(exc).__name__}", resource=what
        ) from None
    if response.is_redirect or 300 <= response.status_code < 400:
        location = response.headers.get("location")
        where = f"to {response.url.join(location)}" if location else "without saying where"
        raise RequestError(
            f"the OAuth2 server at {token_url} redirected {where} instead of answering",
            resource=what,
            status=response.status_code,
            request_id=request_id_of(response),
            hint=f"Set `{url_setting}` so that the OAuth2 server is reached without a redirect "
            "(often a missing or extra trailing slash, or http:// for https://)",
        )
    try:
        body = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(token, str) and token and response.status_code < 400:
        return body
    message = oauth_error_text(body)
    facts = {
        "resource": what,
        "status": response.status_code,
        "request_id": request_id_of(response, body),
    }
    if response.status_code >= 500:
        detail = message or response.reason_phrase
        raise ServerError(f"the OAuth2 server failed: {detail}", **facts)
    if response.status_code in WRONG_ADDRESS:
        # no OAuth2 server at this address: the URL is wrong, not the credentials
        raise RequestError(
            f"no OAuth2 server answers at {token_url}: {message or response.reason_phrase}",
            hint=f"The URL is wrong: check `{url_setting}` under [sources.{what.split('.')[0]}]",
            **facts,
        )
    if response.status_code >= 400 or message:
        detail = message or response.reason_phrase or "refused"
        raise AuthenticationError(f"the OAuth2 server refused the credentials: {detail}", **facts)
    raise ResponseFormatError(
        "the OAuth2 server answered without an access_token"
        if isinstance(body, dict)
        else "the OAuth2 server's answer is not JSON",
        **facts,
    )


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
        cache: TokenCache | None = None,
        timeout: float = 30.0,
        url_setting: str = "token_url",
    ) -> None:
        super().__init__(cache)
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.extra = dict(extra or {})
        self.as_json = as_json
        self.what = what
        self.timeout = timeout
        self.url_setting = url_setting

    def cache_key(self) -> str:
        # the secret's fingerprint too: a token cached under another secret proves nothing
        facts = [
            self.token_url,
            self.client_id,
            _fingerprint(self._client_secret),
            self.scope or "",
            orjson.dumps(self.extra).decode(),
        ]
        return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:32]

    def fetch_token(self) -> tuple[str, float]:
        data: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            **self.extra,
        }
        if self.scope:
            data["scope"] = self.scope
        body = post_token_request(
            self.token_url,
            data,
            what=self.what,
            as_json=self.as_json,
            timeout=self.timeout,
            url_setting=self.url_setting,
        )
        self.granted_scope = body.get("scope", self.scope)
        return str(body["access_token"]), float(body.get("expires_in") or 3600)


class PitchlyJWTAuth(RenewableTokenAuth):
    """Pitchly's self-signed token: an HS256 JWT signed with the client secret.

    Claims: `iss` (the client id), `iat`, a short `exp`, and optional `workspace_ids` and
    `permissions` (absent: every workspace the app may read, read-only). Minted again before it
    expires; `clock_offset_s` corrects a machine clock known to be off (the server checks `exp`
    against its own clock).
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        lifetime_s: float = 300.0,
        workspace_ids: Sequence[str] | None = None,
        permissions: Sequence[str] | None = None,
        clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self._client_secret = client_secret
        self.lifetime_s = lifetime_s
        self.workspace_ids = None if workspace_ids is None else list(workspace_ids)
        self.permissions = None if permissions is None else list(permissions)
        self.clock_offset_s = clock_offset_s

    def claims(self) -> dict[str, Any]:
        now = int(time.time() + self.clock_offset_s)
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "iat": now,
            "exp": now + int(self.lifetime_s),
        }
        if self.workspace_ids is not None:
            claims["workspace_ids"] = self.workspace_ids
        if self.permissions is not None:
            claims["permissions"] = self.permissions
        return claims

    def fetch_token(self) -> tuple[str, float]:
        # imported here: PyJWT brings `cryptography` (45 ms), which only this sign-in needs
        import jwt

        with warnings.catch_warnings():
            # the length of the secret is the vendor's choice, not the user's
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            token = jwt.encode(self.claims(), self._client_secret, algorithm="HS256")
        return token, self.lifetime_s


class RefreshTokenStore(TokenCache):
    """Rotating refresh tokens in a private JSON file (mode 0600), fsynced on every write.

    A rotating refresh token works once: the server kills it as it hands out the next one, so
    the next one must be on disk before anything else happens. Entries never expire. dlt state
    is not an option: it is stored with the data and must hold no secret.
    """

    durable = True

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entries = self._read()
        entries[key] = entry
        self._write(entries)

    def check_writable(self) -> None:
        """Fail before a refresh (which burns the old token) if the new one could not be saved."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = self.path.with_name(f".{self.path.name}.{os.getpid()}.probe")
        probe.touch(mode=0o600)
        probe.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store against other processes (two runs must not spend the same token)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            yield
            return
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class RefreshTokenAuth(RenewableTokenAuth):
    """OAuth2 `refresh_token` grant with rotation: each refresh returns a new refresh token.

    The new refresh token is written (durably) to `store` before the new access token is used;
    the next refresh, in this run or the next, uses it. The configured `refresh_token` is the
    starting point: it is used while the store holds nothing descended from it, so configuring
    a new one (after authorizing the app again) takes over from the stored chain.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str | None,
        store: RefreshTokenStore,
        *,
        extra: Mapping[str, Any] | None = None,
        what: str = "token",
        timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._initial = refresh_token or None
        self.store = store
        self.extra = dict(extra or {})
        self.what = what
        self.timeout = timeout
        self.refreshes = 0

    def store_key(self) -> str:
        return hashlib.sha256(f"{self.token_url}\n{self.client_id}".encode()).hexdigest()[:32]

    def current_refresh_token(self) -> str:
        """The refresh token to spend next: the stored one, unless a new one was configured."""
        entry = self.store.get(self.store_key())
        initial = self._initial
        descends = initial is None or (entry or {}).get("origin") == _fingerprint(initial)
        if entry and entry.get("refresh_token") and descends:
            return str(entry["refresh_token"])
        if initial is None:
            raise ConfigurationError(
                f"no refresh token: none configured and none saved in {self.store.path}",
                resource=self.what,
                hint="Set `refresh_token` (from authorizing the app) in .dlt/secrets.toml",
            )
        return initial

    def fetch_token(self) -> tuple[str, float]:
        try:
            self.store.check_writable()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the refresh token file {self.store.path}: {exc.strerror}",
                resource=self.what,
                hint="Point `refresh_token_path` at a private, writable file that outlives the run",
            ) from None
        with self.store.locked():
            spent = self.current_refresh_token()
            data = {
                "grant_type": "refresh_token",
                "refresh_token": spent,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                **self.extra,
            }
            try:
                body = post_token_request(
                    self.token_url, data, what=self.what, timeout=self.timeout
                )
            except AuthenticationError as exc:
                if "invalid_grant" in exc.message:
                    exc.hint = (
                        "The refresh token was used already or revoked (each one works once): "
                        "authorize the app again and set the new `refresh_token`"
                    )
                raise
            new = body.get("refresh_token")
            if new and new != spent:
                origin = self._initial and _fingerprint(self._initial)
                saved_at = datetime.now(UTC).isoformat(timespec="seconds")
                try:
                    self.store.put(
                        self.store_key(),
                        {"refresh_token": str(new), "origin": origin, "saved_at": saved_at},
                    )
                except OSError as exc:
                    raise ConfigurationError(
                        f"could not save the new refresh token to {self.store.path}: "
                        f"{exc.strerror}; the previous one no longer works",
                        resource=self.what,
                        hint="Fix the file, authorize the app again and set the new "
                        "`refresh_token`",
                    ) from None
            self.refreshes += 1
        self.granted_scope = body.get("scope")
        return str(body["access_token"]), float(body.get("expires_in") or 3600)
