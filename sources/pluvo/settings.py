"""Pluvo's URLs, scopes, page size and keys, as data."""

from __future__ import annotations

# Paths under the organization root (`https://<organization>.pluvo.com/`); the trailing slash
# is required (without it the API answers 301).
GRAPHQL_PATH = "graphql/"
TOKEN_PATH = "oauth/token/"

DEFAULT_SCOPES = "users.read trainings.read events.read"
MAX_PAGE_SIZE = 50

PRIMARY_KEY = "id"
# Incremental only where rows carry an update time: a creation time would miss updates.
CURSOR_FIELDS = ("updatedAt",)
# `paginatedUsers` loads as the resource (and table) `users`.
CONNECTION_PREFIX = "paginated"
