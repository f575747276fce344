"""Transport and credentials: https outside this machine, token caches that prove the secret,
token-endpoint redirects and errors in the vendor's words; through the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from lxp_sync.sources.core.errors import ConfigurationError
from lxp_sync.sources.core.urls import is_loopback, require_https
from lxp_sync_sandbox.pitchly import CLIENT_ID as PITCHLY_CLIENT_ID
from lxp_sync_sandbox.pitchly import CLIENT_SECRET as PITCHLY_CLIENT_SECRET
from lxp_sync_sandbox.pitchly import ORGANIZATION_ID
from lxp_sync_sandbox.pluvo import CLIENT_SECRET as PLUVO_CLIENT_SECRET
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import error_line, lxp_sync, sync
from tests.test_pluvo import pluvo_env, token_requests

# `.invalid` never resolves (RFC 2606): reaching the network would fail at once, with exit 1
REMOTE = {
    "plusplus_rest": (
        "base_url",
        {
            "SOURCES__PLUSPLUS_REST__BASE_URL": "http://lms.lxp-sync.invalid/api/v1",
            "SOURCES__PLUSPLUS_REST__API_TOKEN": "pp_sandbox-token-0123456789",
        },
    ),
    "plusplus_graphql": (
        "base_url",
        {
            "SOURCES__PLUSPLUS_GRAPHQL__BASE_URL": "http://lms.lxp-sync.invalid/graphql/",
            "SOURCES__PLUSPLUS_GRAPHQL__API_TOKEN": "pp_sandbox-token-0123456789",
        },
    ),
    "pluvo": (
        "base_url",
        {
            "SOURCES__PLUVO__BASE_URL": "http://acme.lxp-sync.invalid/",
            "SOURCES__PLUVO__CLIENT_ID": "client",
            "SOURCES__PLUVO__CLIENT_SECRET": PLUVO_CLIENT_SECRET,
        },
    ),
    "pitchly": (
        "graphql_url",
        {
            "SOURCES__PITCHLY__GRAPHQL_URL": "http://api.lxp-sync.invalid/graphql",
            "SOURCES__PITCHLY__CLIENT_ID": PITCHLY_CLIENT_ID,
            "SOURCES__PITCHLY__CLIENT_SECRET": PITCHLY_CLIENT_SECRET,
        },
    ),
    "pitchly_token": (
        "token_url",
        {
            "SOURCES__PITCHLY__TOKEN_URL": "http://platform.lxp-sync.invalid/api/oauth/token",
            "SOURCES__PITCHLY__AUTH_MODE": "client_credentials",
            "SOURCES__PITCHLY__ORGANIZATION_ID": ORGANIZATION_ID,
            "SOURCES__PITCHLY__CLIENT_ID": PITCHLY_CLIENT_ID,
            "SOURCES__PITCHLY__CLIENT_SECRET": PITCHLY_CLIENT_SECRET,
        },
    ),
}


def command(case: str, verb: str) -> list[str]:
    source = case.removesuffix("_token")
    return [verb, source] if verb == "check" else [verb, source, "--resources", "users"]


@pytest.fixture
def isolated(workdir: Path) -> dict[str, str]:
    return {"DLT_DATA_DIR": str(workdir / "dlt_data"), "SOURCES__PITCHLY__TIMEOUT_S": "5"}


@pytest.mark.parametrize("verb", ["check", "run"])
@pytest.mark.parametrize("case", list(REMOTE))
def test_plain_http_to_another_host_is_a_setting_error_before_any_request(
    workdir: Path, isolated: dict[str, str], case: str, verb: str
) -> None:
    setting, env = REMOTE[case]
    source = case.removesuffix("_token")

    result = lxp_sync(*command(case, verb), env={**isolated, **env}, cwd=workdir)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert f"{setting} 'http://" in line and "unencrypted" in line, line
    assert f"allow_insecure_http = true under [sources.{source}]" in line, line
    assert PLUVO_CLIENT_SECRET not in result.stderr and PITCHLY_CLIENT_SECRET not in result.stderr


@pytest.mark.parametrize("case", list(REMOTE))
def test_allow_insecure_http_lets_plain_http_through(
    workdir: Path, isolated: dict[str, str], case: str
) -> None:
    _, env = REMOTE[case]
    section = case.removesuffix("_token").upper()
    allowed = {**isolated, **env, f"SOURCES__{section}__ALLOW_INSECURE_HTTP": "true"}

    result = lxp_sync(*command(case, "check"), env=allowed, cwd=workdir)

    # the setting passed: the request went out, and found no such host
    assert result.returncode == 1, result.stderr
    assert "no answer from" in error_line(result.stderr)


def test_loopback_hosts_may_use_plain_http_and_others_may_not() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST.", "api.localhost"):
        url = f"http://{host}:8765/graphql"
        assert require_https(url, setting="base_url", source="x", allow_insecure_http=False)
    for host in ("10.0.0.1", "[::2]", "localhost.example.com", "127.example.com", "0.0.0.0"):
        assert not is_loopback(host.strip("[]")), host
        with pytest.raises(ConfigurationError, match="unencrypted"):
            require_https(
                f"http://{host}/graphql", setting="base_url", source="x", allow_insecure_http=False
            )
    assert require_https("https://acme.pluvo.com/", setting="b", source="x", allow_insecure_http=0)
    with pytest.raises(ConfigurationError, match="not an http"):
        require_https("ftp://acme.pluvo.com/", setting="b", source="x", allow_insecure_http=True)


# --- token endpoints ------------------------------------------------------------------------------


def test_a_cached_token_is_not_used_with_another_client_secret(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    cache = workdir / "private" / "pluvo-token.json"
    sync("pluvo", sandbox, workdir, resources=["groups"], token_cache_path=str(cache))
    assert len(token_requests(sandbox)) == 1
    wrong = "wrong-secret-0123456789"
    env = pluvo_env(
        sandbox,
        workdir,
        SOURCES__PLUVO__CLIENT_SECRET=wrong,
        SOURCES__PLUVO__TOKEN_CACHE_PATH=str(cache),
    )

    result = lxp_sync("check", "pluvo", env=env, cwd=workdir)

    assert result.returncode == 1, result.stdout
    line = error_line(result.stderr)
    assert "pluvo.token" in line and "invalid_client: Client authentication failed." in line
    assert wrong not in result.stdout + result.stderr
    assert len(token_requests(sandbox)) == 2, "check asked the server, not the cache"
    # the right secret still finds its own token in the cache
    right = pluvo_env(sandbox, workdir, SOURCES__PLUVO__TOKEN_CACHE_PATH=str(cache))
    assert lxp_sync("check", "pluvo", env=right, cwd=workdir).returncode == 0
    assert len(token_requests(sandbox)) == 2


def test_a_redirecting_token_endpoint_says_where_it_redirects(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(api="pluvo", token_redirect="/pluvo/o/token/")

    result = lxp_sync("check", "pluvo", env=pluvo_env(sandbox, workdir), cwd=workdir)

    assert result.returncode == 1, result.stdout
    line = error_line(result.stderr)
    assert f"redirected to {sandbox.url}/pluvo/o/token/" in line, line
    assert "HTTP 301" in line and "`base_url`" in line, line
    assert "access_token" not in line and "refused" not in line, line


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            {"error": {"code": "invalid_client", "message": "This client is disabled."}},
            "invalid_client: This client is disabled.",
        ),
        (
            {"error": "invalid_request", "error_description": ["Missing", "scope."]},
            "invalid_request: Missing scope.",
        ),
        ({"detail": "Organization suspended."}, "Organization suspended."),
        ({"error": {"nested": {"deeper": 1}}}, "Bad Request"),
    ],
    ids=["envelope", "list", "detail", "no-text"],
)
def test_token_endpoint_errors_print_the_vendors_words_not_a_structure(
    fresh_sandbox: SandboxProcess, workdir: Path, body: dict, said: str
) -> None:
    sandbox = fresh_sandbox
    sandbox.fault(api="pluvo", path_contains="/oauth/token/", status=400, count=5, body=body)

    result = lxp_sync("check", "pluvo", env=pluvo_env(sandbox, workdir), cwd=workdir)

    assert result.returncode == 1, result.stdout
    line = error_line(result.stderr)
    assert f"the OAuth2 server refused the credentials: {said} (HTTP 400" in line, line
    assert "{" not in line and "[" not in line.split("refused", 1)[1], line
