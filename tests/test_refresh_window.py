"""The refresh window's row hashes: 32 bytes a row in the state, and the first form still read.

PlusPlus REST re-reads the rows of assignments and enrollments created in the last 14 days and
drops those that did not change (`sources/plusplus/window.py`). The state that makes this
possible grows with the rows of the window only, and a state written by the first version
(`{public_id: [created, hex hash]}`) still tells unchanged rows from changed ones.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import dlt
import numpy as np
import orjson

from lxp_sync.sources.plusplus.window import ENTRY, WindowHashes, key_hash
from lxp_sync_sandbox.server import SandboxProcess
from tests.helpers import loaded_rows, sync

WINDOW = timedelta(days=14)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _first_form(rows: list[dict]) -> dict[str, list[str]]:
    """The window's state as the first version wrote it, for the rows inside the window."""
    newest = max(_moment(row["created"]) for row in rows)
    return {
        row["public_id"]: [
            row["created"],
            hashlib.blake2b(
                orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=8
            ).hexdigest(),
        ]
        for row in rows
        if _moment(row["created"]) >= newest - WINDOW
    }


def test_a_state_of_the_first_form_still_drops_the_unchanged_rows_of_the_window(
    fresh_sandbox: SandboxProcess, workdir: Path
) -> None:
    sandbox = fresh_sandbox
    sync("plusplus_rest", sandbox, workdir, resources=["assignments"])
    truth = sandbox.truth("plusplus_rest", "assignments")
    old = _first_form(truth)
    assert len(old) >= 5, "the test needs rows inside the window"
    pipeline = dlt.attach("lxp_sync_plusplus_rest", pipelines_dir=str(workdir / "pipelines"))
    with pipeline.managed_state() as state:
        resource = state["sources"]["plusplus_rest"]["resources"]["assignments"]
        assert resource["window_hashes"]["v"] == 2
        resource["window_hashes"] = old
    changed = sandbox.mutate(
        api="plusplus_rest", entity="assignments", update=2, created_within_days=5
    )["updated"]

    pipeline = sync("plusplus_rest", sandbox, workdir, resources=["assignments"])

    assert loaded_rows(pipeline).get("assignments") == len(changed)
    state = pipeline.state["sources"]["plusplus_rest"]["resources"]["assignments"]
    kept = WindowHashes.from_state(state["window_hashes"])
    assert len(kept) == len(old)


def test_the_window_state_takes_32_bytes_a_row_and_reads_back_what_was_stored() -> None:
    rng = np.random.default_rng(7)
    entries = np.empty(10_000, ENTRY)
    entries["key"] = np.sort(rng.integers(-(2**63), 2**63 - 1, 10_000, dtype=np.int64))
    entries["digest"] = rng.integers(-(2**63), 2**63 - 1, 10_000, dtype=np.int64)
    entries["moment"] = rng.integers(0, 2**50, 10_000, dtype=np.int64)
    stored = WindowHashes(entries).to_state()

    assert len(orjson.dumps(stored)) <= 32 * len(entries) + 64
    back = WindowHashes.from_state(orjson.loads(orjson.dumps(stored)))
    same = back.unchanged(entries["key"], entries["digest"])
    assert same.all()
    assert not back.unchanged(entries["key"], entries["digest"] + 1).any()
    assert not back.unchanged(np.array([key_hash("not there")]), np.array([0])).any()


def test_later_copies_of_a_key_win_and_rows_before_the_window_leave() -> None:
    first = np.array([(1, 10, 100), (2, 20, 200)], ENTRY)
    later = np.array([(1, 11, 300), (3, 30, 50)], ENTRY)

    kept = WindowHashes(first).updated([later], start=100)

    assert kept.entries.tolist() == [(1, 11, 300), (2, 20, 200)]
