"""The transport rule every source applies to the URLs it is given: https, except to this machine."""

from __future__ import annotations

import ipaddress

import httpx

from lxp_sync.sources.core.errors import ConfigurationError

# Names that always mean this machine (RFC 6761 reserves `localhost` and `*.localhost`).
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: traffic that never leaves this machine."""
    host = host.strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https(url: str, *, setting: str, source: str, allow_insecure_http: bool) -> str:
    """`url` unchanged if it may carry credentials; else one `ConfigurationError` line.

    Tokens, client secrets and JWTs travel with every request, so plain http is refused for any
    host but this machine unless the source's `allow_insecure_http` says otherwise.
    """
    if isinstance(url, str) and "<" in url and ">" in url:
        raise ConfigurationError(
            f"{setting} {url!r} is still the example's placeholder",
            resource=source,
            hint=f"Set `{setting}` under [sources.{source}] to your own address",
        )
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"{setting} {url!r} is not an http(s) URL",
            resource=source,
            hint=f"Set `{setting}` under [sources.{source}] to the full https:// address",
        )
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback(parsed.host):
        env = f"SOURCES__{source.upper()}__ALLOW_INSECURE_HTTP"
        raise ConfigurationError(
            f"{setting} {url!r} uses http:// to {parsed.host}: credentials would cross the "
            "network unencrypted",
            resource=source,
            hint=f"Use https://, or set allow_insecure_http = true under [sources.{source}] "
            f"({env}) to accept clear text",
        )
    return url
