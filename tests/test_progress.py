"""A run's progress lines on stderr, through the real command against a slow sandbox: an overall
line with the share, the rate over the run and the time left; the normalize and load phases;
no rate from one page; no `x/x rows` line repeated before `done`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import lxp_sync, source_env
from tests.test_cli import rest_env

# `HH:MM:SS <message>` as the command logs it
LINE = re.compile(r"^\d\d:\d\d:\d\d (.*)$")


def test_progress_says_the_whole_run_and_every_phase_and_no_rate_from_one_page(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sandbox.configure(latency_ms=50)
    # small pages one at a time: a few seconds of reading, so that the overall line has its say
    env = rest_env(
        sandbox,
        workdir,
        LXP_SYNC__PROGRESS_EVERY_S="0.5",
        SOURCES__PLUSPLUS_REST__PAGE_SIZE="20",
        SOURCES__PLUSPLUS_REST__CONCURRENCY="1",
    )
    first = lxp_sync("run", "plusplus_rest", env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr
    sandbox.mutate(api="plusplus_rest", entity="content_items", update=1)
    again = lxp_sync("run", "plusplus_rest", env=env, cwd=workdir)
    assert again.returncode == 0, again.stderr
    sandbox.configure(latency_ms=0)

    said = [m[1] for m in map(LINE.match, first.stderr.splitlines()) if m]
    overall = [
        line
        for line in said
        if re.fullmatch(
            r"plusplus_rest: [\d,]+/[\d,]+ rows \(\d+%\) in \d resources"
            r"(, [\d,]+ rows/s(, about \S+ \S* ?left)?)?",
            line,
        )
    ]
    assert overall, first.stderr
    assert any("rows/s, about " in line for line in overall), overall
    shares = [int(re.search(r"\((\d+)%\)", line)[1]) for line in overall]
    assert shares == sorted(shares)
    assert any(re.fullmatch(r"plusplus_rest: normalized [\d,]+ rows in [\d.]+s", x) for x in said)
    assert any(re.fullmatch(r"plusplus_rest: loaded \d+ jobs in [\d.]+s", x) for x in said)
    assert said.index(next(x for x in said if " normalized " in x)) < len(said) - 1

    for run in (first, again):
        # nothing but the command's own lines: no warning of dlt's per Arrow table
        assert all(LINE.match(line) for line in run.stderr.splitlines()), run.stderr
        lines = [m[1] for m in map(LINE.match, run.stderr.splitlines()) if m]
        for number, line in enumerate(lines):
            if line.endswith(", done"):  # the line before a resource's `done` is another one
                assert line.removesuffix(", done") not in lines[:number], line
            if re.search(r", 1 pages?\b", line):
                assert "rows/s" not in line, line
    one_page = [line for line in again.stderr.splitlines() if ", 1 page, done" in line]
    assert one_page, again.stderr  # the rerun reads small increments: the case is covered


@pytest.mark.parametrize(
    ("source", "resources"), [("plusplus_graphql", "events"), ("pluvo", "trainings")]
)
def test_tables_with_json_fields_from_arrow_leave_only_the_commands_lines_on_stderr(
    sandbox: SandboxProcess, workdir: Path, source: str, resources: str
) -> None:
    """A JSON field's column is JSON text in Arrow, typed json as its resource declares: dlt
    used to log a warning per such table that the hint overrode the Arrow type."""
    env = source_env(source, sandbox, workdir)
    run = lxp_sync("run", source, "--resources", resources, env=env, cwd=workdir)
    assert run.returncode == 0, run.stderr
    assert all(LINE.match(line) for line in run.stderr.splitlines()), run.stderr
