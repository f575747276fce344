"""The errors a sync can end with: one type per failure class, each one line with what to do.

Every error carries the facts a user needs to act (the resource, the page, the HTTP status, the
vendor's request id) and never a secret: messages are built from those fields only, not from
request headers or bodies that could hold a token.
"""

from __future__ import annotations


class LxpSyncError(Exception):
    """Base class; `str(error)` is the one line the command prints."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        page: int | str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.page = page
        self.status = status
        self.request_id = request_id
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        where = self.resource or ""
        if self.page is not None:
            where = f"{where} page {self.page}".strip()
        facts = []
        if self.status:
            facts.append(f"HTTP {self.status}")
        if self.request_id:
            facts.append(f"request_id {self.request_id}")
        line = f"{where}: {self.message}" if where else self.message
        if facts:
            line += f" ({', '.join(facts)})"
        if self.hint:
            line += f". {self.hint}"
        return line.replace("\n", " ")


class ConfigurationError(LxpSyncError):
    """A setting is missing or invalid."""


class AuthenticationError(LxpSyncError):
    """The credentials were refused (401, or a token endpoint said no)."""

    hint = "Check the token or client credentials in .dlt/secrets.toml or the environment"


class PermissionDeniedError(LxpSyncError):
    """The credentials are valid but lack a permission or scope (403)."""

    hint = "Grant the missing permission or scope to these credentials"


class RateLimitedError(LxpSyncError):
    """Still answered 429 after every retry."""

    hint = "Lower `concurrency` or raise `max_retries`, or run outside the API's busy hours"


class ServerError(LxpSyncError):
    """Still answered 5xx after every retry."""

    hint = "The API is failing; rerun later (the load is safe to rerun)"


class RequestError(LxpSyncError):
    """The API refused a request (a 4xx other than 401, 403 and 429): a bug or a bad setting."""

    hint = "Check the resource's settings (filters, page size); report it if they look right"


class ConnectionFailedError(LxpSyncError):
    """No answer: DNS, refused connection, TLS or timeouts, after every retry."""

    hint = "Check `base_url` and the network"


class ResponseFormatError(LxpSyncError):
    """The answer was not the JSON the API documents."""

    hint = "Check that `base_url` points at the API, not a web page or proxy"


class GraphQLQueryError(LxpSyncError):
    """A GraphQL answer with `errors` (usually HTTP 200)."""

    hint = "Check the resource's settings; report it if they look right"
    # the first error's `extensions.code` (`BAD_USER_INPUT`, ...), for callers that handle one
    code: str | None = None


class DataMismatchError(LxpSyncError):
    """The API's own counts disagree with the rows received."""

    hint = "Rerun; if it persists, report it with the request id"


class Interrupted(LxpSyncError):
    """The run was asked to stop (SIGINT or SIGTERM); nothing of it is committed."""

    hint = "The next run resumes safely"
