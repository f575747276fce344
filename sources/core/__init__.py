"""The shared core: one HTTP client (auth, retries, pacing, errors), GraphQL and paging."""

from sources.core.auth import OAuth2ClientCredentials, RenewableTokenAuth, TokenAuth, TokenCache
from sources.core.errors import LxpSyncError
from sources.core.http import ApiClient, RetryPolicy

__all__ = [
    "ApiClient",
    "LxpSyncError",
    "OAuth2ClientCredentials",
    "RenewableTokenAuth",
    "RetryPolicy",
    "TokenAuth",
    "TokenCache",
]
