"""The credentials a source is given: present, and not a placeholder copied from the examples.

An empty token would go out as `Authorization: Bearer ` (which httpx refuses to send, a
"protocol error" that reads like a network fault) and a placeholder as a token the API refuses
with a 401: both are settings to fix, said before any request (exit 2).
"""

from __future__ import annotations

import re
from typing import Any

from lxp_sync.sources.core.errors import ConfigurationError

# The values `.dlt/secrets.toml.example` and the commented lines of `.dlt/config.toml` ship with
# (tests/test_errors.py checks that every value of the example file is here).
EXAMPLE_PLACEHOLDERS = frozenset(
    {
        "pp_your_token_here",
        "your_client_secret",
        "your_graphql_token",
        "plys_your_client_secret",
        "plyr_...",
        "...",
    }
)
# `<your token>`, `<client-id>`: a value still in angle brackets
_ANGLE_PLACEHOLDER = re.compile(r"^<[^<>]*>$")


def require_credential(value: Any, *, setting: str, source: str, secret: bool = True) -> str:
    """`value` without surrounding whitespace; one `ConfigurationError` line if it is empty or a
    placeholder from the examples (`secret`: it belongs in secrets.toml, else config.toml)."""
    text = value.strip() if isinstance(value, str) else ""
    where = ".dlt/secrets.toml" if secret else ".dlt/config.toml"
    hint = (
        f"Set `{setting}` under [sources.{source}] in {where} "
        f"(or SOURCES__{source.upper()}__{setting.upper()})"
    )
    if not text:
        raise ConfigurationError(f"{setting} is empty", resource=source, hint=hint)
    if text in EXAMPLE_PLACEHOLDERS or _ANGLE_PLACEHOLDER.match(text):
        # the placeholder is the example's, never a secret: it may be shown
        raise ConfigurationError(
            f"{setting} is still the example's placeholder ({text!r})", resource=source, hint=hint
        )
    return text
