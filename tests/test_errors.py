"""Errors that point the right way: each mistake a new user makes, through the real command.

Every case ends in one `lxp-sync: error:` line that names the setting to fix (and where it
lives), with exit code 2 for a setting and 1 for the rest (README: "Failures, interruptions and
reruns").
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.sources.core.secrets import EXAMPLE_PLACEHOLDERS
from lxp_sync_sandbox.server import SandboxProcess, free_port
from tests.helpers import error_line, lxp_sync, source_env

REPO = Path(__file__).resolve().parents[1]
SECRETS_EXAMPLE = REPO / ".dlt" / "secrets.toml.example"

# the setting that holds each source's address, and the one that holds its secret
URL_SETTING = {
    "plusplus_rest": "base_url",
    "plusplus_graphql": "base_url",
    "pluvo": "base_url",
    "pitchly": "graphql_url",
}
SECRET_SETTING = {
    "plusplus_rest": "api_token",
    "plusplus_graphql": "api_token",
    "pluvo": "client_secret",
    "pitchly": "client_secret",
}


def requests_to(sandbox: SandboxProcess, source: str) -> int:
    return len(sandbox.requests(source))


def test_postgres_without_credentials_names_the_destinations_setting(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = source_env("plusplus_rest", sandbox, workdir)
    result = lxp_sync(
        "run", "plusplus_rest", "--resources", "groups", "--destination", "postgres", env=env
    )

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert "[destination.postgres]" in line and "DESTINATION__POSTGRES__CREDENTIALS" in line
    assert "SOURCES__PLUSPLUS_REST__CREDENTIALS" not in line


def test_a_rest_base_url_with_a_wrong_path_points_at_base_url(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    wrong = f"{sandbox.url}/plusplus_rest/api/v2"
    env = source_env("plusplus_rest", sandbox, workdir, SOURCES__PLUSPLUS_REST__BASE_URL=wrong)
    result = lxp_sync("run", "plusplus_rest", "--resources", "groups", env=env)

    assert result.returncode == 1
    line = error_line(result.stderr)
    assert f"nothing answers at {wrong}/groups/" in line and "HTTP 404" in line
    assert "Check `base_url` under [sources.plusplus_rest]" in line
    assert "filters, page size" not in line


def test_a_pluvo_token_url_that_answers_404_says_the_url_is_wrong(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    env = source_env("pluvo", sandbox, workdir, SOURCES__PLUVO__BASE_URL=f"{sandbox.url}/nowhere/")
    result = lxp_sync("check", "pluvo", env=env)

    assert result.returncode == 1
    line = error_line(result.stderr)
    assert f"no OAuth2 server answers at {sandbox.url}/nowhere/oauth/token/" in line
    assert "HTTP 404" in line and "The URL is wrong: check `base_url` under [sources.pluvo]" in line
    assert "refused the credentials" not in line


@pytest.mark.parametrize("source", SOURCES)
def test_an_empty_secret_is_a_setting_error_before_any_request(
    sandbox: SandboxProcess, workdir: Path, source: str
) -> None:
    setting = SECRET_SETTING[source]
    env = source_env(
        source, sandbox, workdir, **{f"SOURCES__{source.upper()}__{setting.upper()}": " "}
    )
    before = requests_to(sandbox, source)
    result = lxp_sync("check", source, env=env)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert f"{setting} is empty" in line and f"[sources.{source}]" in line
    assert "LocalProtocolError" not in result.stderr and "retry" not in result.stderr
    assert requests_to(sandbox, source) == before


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("plusplus_rest", ""),
        ("plusplus_graphql", "https://<your-domain>/graphql"),
        ("pluvo", "acme.pluvo.com"),
        ("pitchly", ""),
    ],
)
def test_an_empty_scheme_less_or_example_url_is_a_setting_error(
    workdir: Path, sandbox: SandboxProcess, source: str, value: str
) -> None:
    setting = URL_SETTING[source]
    env = source_env(
        source, sandbox, workdir, **{f"SOURCES__{source.upper()}__{setting.upper()}": value}
    )
    result = lxp_sync("check", source, env=env)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert f"{setting} {value!r}" in line and f"[sources.{source}]" in line
    assert "retry" not in result.stderr and "no answer" not in line


def test_a_malformed_config_file_names_the_file_and_line(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    config = workdir / ".dlt" / "config.toml"
    config.parent.mkdir()
    config.write_text('[sources.plusplus_rest]\npage_size = 50\nbase_url = "https://acme\n')
    for command in ("check", "run"):
        result = lxp_sync(
            command, "plusplus_rest", env=source_env("plusplus_rest", sandbox, workdir), cwd=workdir
        )

        assert result.returncode == 2, result.stderr
        line = error_line(result.stderr)
        assert f"the settings file {config} is not valid TOML" in line
        assert "(line 3, column" in line


def test_a_setting_of_the_wrong_type_says_its_name_and_what_it_takes(
    sandbox: SandboxProcess, workdir: Path
) -> None:
    config = workdir / ".dlt" / "config.toml"
    config.parent.mkdir()
    config.write_text('[sources.plusplus_rest]\npage_size = "lots"\n')
    result = lxp_sync(
        "run", "plusplus_rest", env=source_env("plusplus_rest", sandbox, workdir), cwd=workdir
    )

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert "page_size = 'lots' is not a whole number" in line
    assert "[sources.plusplus_rest]" in line and "ValueError" not in line


def test_every_value_of_the_secrets_example_is_a_known_placeholder() -> None:
    example = tomllib.loads(SECRETS_EXAMPLE.read_text())
    values = [
        value
        for section in example["sources"].values()
        for value in section.values()
        if isinstance(value, str)
    ]
    assert values and set(values) <= EXAMPLE_PLACEHOLDERS


@pytest.mark.parametrize("source", SOURCES)
def test_a_secret_left_from_the_example_says_so_before_any_request(
    sandbox: SandboxProcess, workdir: Path, source: str
) -> None:
    (workdir / ".dlt").mkdir()
    shutil.copy(SECRETS_EXAMPLE, workdir / ".dlt" / "secrets.toml")
    env = source_env(source, sandbox, workdir)
    del env[f"SOURCES__{source.upper()}__{SECRET_SETTING[source].upper()}"]
    before = requests_to(sandbox, source)
    result = lxp_sync("check", source, env=env, cwd=workdir)

    assert result.returncode == 2, result.stderr
    line = error_line(result.stderr)
    assert f"{SECRET_SETTING[source]} is still the example's placeholder" in line
    assert requests_to(sandbox, source) == before


def test_a_refused_connection_retries_quietly_and_ends_with_the_error(workdir: Path) -> None:
    env = {
        "SOURCES__PLUSPLUS_REST__BASE_URL": f"http://127.0.0.1:{free_port()}/api/v1",
        "SOURCES__PLUSPLUS_REST__API_TOKEN": "pp_x",
        "SOURCES__PLUSPLUS_REST__MAX_RETRIES": "3",
        "DLT_DATA_DIR": str(workdir / "dlt_data"),
    }
    quiet = lxp_sync("run", "plusplus_rest", env=env, cwd=workdir)
    verbose = lxp_sync("run", "plusplus_rest", "-v", env=env, cwd=workdir)

    assert error_line(quiet.stderr)
    for result in (quiet, verbose):
        assert result.returncode == 1
        last = [line for line in result.stderr.splitlines() if line.strip()][-1]
        assert last.startswith("lxp-sync: error:")  # nothing after the error
        assert "no answer from" in last and "ConnectError" in last
        assert "[ERROR]" not in result.stderr and "thread pool" not in result.stderr
    assert [line for line in quiet.stderr.splitlines() if "retry" in line] == [
        line for line in quiet.stderr.splitlines() if "retrying with backoff" in line
    ]
    assert len([line for line in quiet.stderr.splitlines() if "retrying" in line]) == 1
    # every retry at -v, one line each: at most 3 per resource (six resources)
    retries = [line for line in verbose.stderr.splitlines() if "ConnectError, retry" in line]
    assert 3 <= len(retries) <= 3 * 6


def test_verbose_works_after_the_command_too(sandbox: SandboxProcess, workdir: Path) -> None:
    env = source_env("plusplus_rest", sandbox, workdir, SOURCES__PLUSPLUS_REST__API_TOKEN="")
    for args in (("check", "-v", "plusplus_rest"), ("check", "plusplus_rest", "-v")):
        result = lxp_sync(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" in result.stderr, args  # -v logs the details of an error
    assert "Traceback" not in lxp_sync("check", "plusplus_rest", env=env).stderr
