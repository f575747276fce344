"""The shared core: one HTTP client (auth, retries, pacing, errors), GraphQL and paging."""

from lxp_sync.sources.core.auth import (
    OAuth2ClientCredentials,
    RenewableTokenAuth,
    TokenAuth,
    TokenCache,
)
from lxp_sync.sources.core.errors import LxpSyncError
from lxp_sync.sources.core.http import ApiClient, RetryPolicy

__all__ = [
    "ApiClient",
    "LxpSyncError",
    "OAuth2ClientCredentials",
    "RenewableTokenAuth",
    "RetryPolicy",
    "TokenAuth",
    "TokenCache",
]
