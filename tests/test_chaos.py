"""Chaos: every source under faults, kills and changing data; a green run is always exact.

For each source, a seeded sequence of rounds against one sandbox. A round changes the source's
rows (inserts, updates, deletes) and then runs `lxp-sync run` as a user does, with one of:

- a fault the sandbox injects into real answers (5xx, 429 with and without `Retry-After`,
  dropped connections, answers slower than the timeout, malformed bodies, empty and short 200
  pages, an early `hasNextPage: false`, `{"data": {}}`, null nodes and edges, no `pageInfo`, no
  count, a refused token, token revocation between two pages), a few times in a row so that
  some rounds outlast the retries;
- rows deleted or inserted *while* a resource is paged;
- `kill -9` at one of dlt's phase boundaries (`tests/support/killpoints.py`);
- nothing at all.

After every run that exits 0, every table equals the sandbox's truth row by row (no key
missing, none twice, every value equal). A run that fails says so in one line. After a failed
or killed run, one plain rerun without faults must succeed and be exact: a pipeline that cannot
recover counts as wedged. Deletes are swept every run (`reconcile_every = 1`, `deletes =
"delete"`), so rows deleted at the source must be gone after each green run.

`LXP_CHAOS_RUNS` (rounds per source, default 3 in CI) and `LXP_CHAOS_SEED` set the size and the
sequence; `LXP_CHAOS_RUNS=50` (200 runs over the four sources) is the soak run outside CI. The
figures are printed at the end of each source's test.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import LXP_SYNC
from tests.support.killpoints import POINTS
from tests.support.runs import run_args, source_env, warehouse_rows
from tests.test_destinations import CASES, _pitchly_table_id, _pitchly_truth
from tests.test_pluvo import CONNECTIONS as PLUVO_CONNECTIONS

ROUNDS = int(os.environ.get("LXP_CHAOS_RUNS", "3"))
FIGURES = "lxp_figures"  # the user property the session summary prints
SEED = int(os.environ.get("LXP_CHAOS_SEED", "20261202"))
ROWS = 700

# GraphQL-only rewrites of a real answer (REST pages have no pageInfo, edges or root field)
REST_REWRITES = ["empty", "short"]
GRAPHQL_REWRITES = [
    "empty",
    "short",
    "early_end",
    "no_data",
    "null_node",
    "null_edge",
    "no_page_info",
    "no_count",
]
KILL_POINTS = sorted(POINTS)


@dataclass
class Figures:
    runs: int = 0
    green: int = 0
    failed: int = 0
    faults: int = 0
    kills: int = 0
    mutations_while_paging: int = 0
    rows_compared: int = 0
    rows_lost: int = 0
    rows_extra: int = 0
    duplicates: int = 0
    wedged: int = 0
    unequal_values: int = 0
    bad_failure_lines: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self, source: str) -> str:
        return (
            f"chaos {source}: {self.runs} runs ({self.green} green, {self.failed} failed), "
            f"{self.faults} faults injected, {self.mutations_while_paging} mutations while "
            f"paging, {self.kills} kills, {self.rows_compared} rows compared, "
            f"{self.rows_lost} lost, {self.rows_extra} extra, {self.duplicates} duplicated, "
            f"{self.unequal_values} tables unequal, {self.wedged} wedged, "
            f"{self.bad_failure_lines} failures without one clear line"
        )


@dataclass(frozen=True)
class Target:
    """Where a fault aims: one resource's requests."""

    api: str
    path_contains: str = ""
    body_contains: str = ""
    # (api, entity, key) of its truth, and the warehouse table
    table: str = ""
    entity: str = ""
    key: str = ""


def targets(source: str, sandbox: SandboxProcess) -> list[Target]:
    resources = CASES[source].resources
    if source == "plusplus_rest":
        return [
            Target(source, path_contains=f"/{r}/", table=r, entity=r, key="public_id")
            for r in resources
        ]
    if source == "plusplus_graphql":
        return [
            Target(source, body_contains=f"{r}(", table=r, entity=r, key="pk") for r in resources
        ]
    if source == "pluvo":
        return [
            Target(
                source,
                body_contains=f"{PLUVO_CONNECTIONS[r]}(",
                table=r,
                entity=PLUVO_CONNECTIONS[r],
                key="id",
            )
            for r in resources
        ]
    return [
        Target(
            source,
            body_contains=_pitchly_table_id(sandbox, r),
            table=r,
            entity=f"records:{_pitchly_table_id(sandbox, r)}",
            key="id",
        )
        for r in resources
    ]


def truth_keys(source: str, sandbox: SandboxProcess, target: Target) -> list[Any]:
    if source == "pitchly":
        return [row["id"] for row in _pitchly_truth(sandbox, target.table)]
    return [row[target.key] for row in sandbox.truth(target.api, target.entity)]


def change_rows(source: str, sandbox: SandboxProcess, rng: random.Random) -> None:
    """The case's own inserts and updates, and deletes wherever the source can delete."""
    CASES[source].change(sandbox)
    deletable = {
        "plusplus_rest": ["users", "content_items"],
        "plusplus_graphql": ["events", "event_types"],
        "pluvo": [PLUVO_CONNECTIONS[r] for r in ("users", "trainings", "events")],
        "pitchly": [],  # the case's change deletes records already
    }[source]
    for entity in rng.sample(deletable, k=min(len(deletable), rng.randint(0, 2))):
        sandbox.mutate(api=source, entity=entity, delete=rng.randint(1, 2))


def chaos_env(source: str, sandbox: SandboxProcess, workdir: Path) -> dict[str, str]:
    prefix = f"SOURCES__{source.upper()}__"
    page_size = {"plusplus_rest": 50, "plusplus_graphql": 60, "pluvo": 25, "pitchly": 25}[source]
    return {
        **source_env(source, sandbox, workdir),
        f"{prefix}RECONCILE_EVERY": "1",
        f"{prefix}DELETES": "delete",
        f"{prefix}MAX_DELETE_SHARE": "1",
        f"{prefix}TIMEOUT_S": "2",
        f"{prefix}MAX_RETRIES": "3",
        f"{prefix}PAGE_SIZE": str(page_size),
        # Pitchly: full reads of its larger tables in Created At windows read at once
        **({f"{prefix}WINDOWS": "4"} if source == "pitchly" else {}),
    }


def inject(source: str, sandbox: SandboxProcess, rng: random.Random, target: Target) -> str:
    """One fault (a few times in a row), aimed at `target`'s requests; what it was."""
    where = {"path_contains": target.path_contains, "body_contains": target.body_contains}
    count = rng.choice([1, 1, 2, 5])  # 5 outlasts the retries: the run must then fail cleanly
    skip = rng.randint(0, 3)
    rewrites = REST_REWRITES if source == "plusplus_rest" else GRAPHQL_REWRITES
    kinds = ["503", "500", "429", "429-no-retry-after", "drop", "slow", "malformed", "401"]
    kinds += rewrites + ["mutate"]
    if source == "pluvo":
        kinds.append("revoke")
    kind = rng.choice(kinds)
    fault: dict[str, Any] = {"api": source, "count": count, "skip": skip, **where}
    if kind in ("503", "500", "401"):
        fault.update(kind="status", status=int(kind), count=1 if kind == "401" else count)
    elif kind == "429":
        fault.update(kind="status", status=429, retry_after=0.2)
    elif kind == "429-no-retry-after":
        fault.update(kind="status", status=429)
    elif kind == "slow":
        fault.update(kind="slow", delay_s=3.0, count=1)
    elif kind == "mutate":
        delete = {"delete": 1} if rng.random() < 0.7 else {"insert": 2}
        fault.update(kind="mutate", count=1, mutation={"entity": target.entity, **delete})
    elif kind == "revoke":
        sandbox.configure(api="pluvo", revoke_tokens_after=rng.randint(1, 6))
        return kind
    else:
        fault.update(kind=kind)
    sandbox.fault(**fault)
    return f"{kind} x{fault['count']} after {skip} on {target.table}"


def run_command(
    args: list[str], env: dict[str, str], cwd: Path, kill_at: str | None, nth: int
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-m", "tests.support.killpoints", kill_at, "--nth", str(nth), "--", *args]
        if kill_at
        else [LXP_SYNC, *args]
    )
    return subprocess.run(
        command,
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def one_clear_line(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.startswith("lxp-sync: error:")]
    return len(lines) == 1 and "Traceback" not in stderr


def key_snapshot(source: str, sandbox: SandboxProcess) -> dict[str, set[Any]]:
    return {t.table: set(truth_keys(source, sandbox, t)) for t in targets(source, sandbox)}


def check_exact(
    source: str,
    sandbox: SandboxProcess,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    figures: Figures,
    what: str,
    before: dict[str, set[Any]] | None = None,
) -> None:
    """Count lost, extra and duplicated keys per table, then compare every value.

    `before`: the keys when the run began, for a run during which rows changed (a mutation
    while paging): a row there all along must be loaded, a row gone all along must not be, and
    rows that came or went during the run are settled by the next plain run, checked in full.
    """
    rows = warehouse_rows(source, workdir, monkeypatch)
    for target in targets(source, sandbox):
        truth = truth_keys(source, sandbox, target)
        loaded = [row[target.key] for row in rows(target.table)]
        figures.rows_compared += len(truth)
        if before is None:
            lost = set(truth) - set(loaded)
            extra = set(loaded) - set(truth)
        else:
            lost = (set(truth) & before[target.table]) - set(loaded)
            extra = set(loaded) - (set(truth) | before[target.table])
        figures.rows_lost += len(lost)
        figures.rows_extra += len(extra)
        figures.duplicates += len(loaded) - len(set(loaded))
        if lost or extra or len(loaded) != len(set(loaded)):
            figures.notes.append(f"{what}: {target.table}: {len(lost)} lost, {len(extra)} extra")
    if before is not None:
        return
    try:
        CASES[source].equals_truth(sandbox, rows, True)
    except AssertionError as exc:
        figures.unequal_values += 1
        figures.notes.append(f"{what}: {str(exc)[:300]}")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(rows=ROWS, seed=SEED % 1000) as process:
        yield process


@pytest.mark.parametrize("source", list(CASES))
def test_chaos_every_green_run_is_exact_and_no_pipeline_wedges(
    source: str,
    sandbox: SandboxProcess,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    rng = random.Random(f"{SEED}-{source}")
    env = chaos_env(source, sandbox, workdir)
    args = run_args(source)
    figures = Figures()
    aims = targets(source, sandbox)

    def run(kill_at: str | None = None, nth: int = 1) -> subprocess.CompletedProcess[str]:
        figures.runs += 1
        return run_command(args, env, workdir, kill_at, nth)

    def settle(what: str) -> None:
        """A plain run with no fault pending: must succeed and be exact (else: wedged)."""
        sandbox.clear_requests()  # also drops any fault still queued
        if source == "pluvo":
            sandbox.configure(api="pluvo", revoke_tokens_after=None)
        result = run()
        if result.returncode != 0:
            figures.wedged += 1
            figures.notes.append(f"{what}: rerun failed: {result.stderr.strip()[-300:]}")
            return
        figures.green += 1
        check_exact(source, sandbox, workdir, monkeypatch, figures, f"{what}, rerun")

    first = run()
    assert first.returncode == 0, first.stderr
    figures.green += 1
    check_exact(source, sandbox, workdir, monkeypatch, figures, "first load")

    for round_no in range(ROUNDS):
        sandbox.clear_requests()
        change_rows(source, sandbox, rng)
        action = rng.choice(["fault", "fault", "fault", "kill", "quiet"])
        kill_at, nth, what = None, 1, f"round {round_no} ({action})"
        before = None
        if action == "fault":
            keys = key_snapshot(source, sandbox)
            described = inject(source, sandbox, rng, rng.choice(aims))
            figures.faults += 1
            if described.startswith("mutate"):
                figures.mutations_while_paging += 1
                before = keys
            what = f"round {round_no}: {described}"
        elif action == "kill":
            kill_at = rng.choice(KILL_POINTS)
            nth = rng.choice([1, 1, 2]) if kill_at == "extract.page" else 1
            what = f"round {round_no}: kill -9 at {kill_at}"
        result = run(kill_at, nth)
        if kill_at and result.returncode == -9:
            figures.kills += 1
            settle(what)
        elif result.returncode == 0:
            figures.green += 1
            check_exact(source, sandbox, workdir, monkeypatch, figures, what, before)
            if before is not None:
                settle(what)
        else:
            figures.failed += 1
            if not one_clear_line(result.stderr):
                figures.bad_failure_lines += 1
                figures.notes.append(f"{what}: stderr: {result.stderr.strip()[-500:]}")
            settle(what)

    # the figures, printed at the end of the test session (tests/conftest.py), workers or not
    record_property(
        FIGURES, "\n".join([figures.line(source), *(f"  {n}" for n in figures.notes[:10])])
    )
    assert figures.rows_lost == 0, figures.notes
    assert figures.rows_extra == 0, figures.notes
    assert figures.duplicates == 0, figures.notes
    assert figures.unequal_values == 0, figures.notes
    assert figures.wedged == 0, figures.notes
    assert figures.bad_failure_lines == 0, figures.notes
