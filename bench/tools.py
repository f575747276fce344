"""The measured tools: how each is started, and where its rows land."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.peers import ENTITIES

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
AIRBYTE_VENV = BENCH / ".venvs" / "airbyte"
AIRBYTE_PYTHON = AIRBYTE_VENV / "bin" / "python"

FULL_SYNC_TOOLS = [
    "ceiling",
    "ceiling_concurrent",
    "lxp_sync",
    "dlt_rest_api",
    "dlt_rest_api_parquet",
    "airbyte_lowcode",
]
INCREMENTAL_TOOL = "lxp_sync_incremental"
ALL_TOOLS = [*FULL_SYNC_TOOLS, INCREMENTAL_TOOL]
PEERS = ["dlt_rest_api", "dlt_rest_api_parquet", "airbyte_lowcode"]


@dataclass
class Target:
    """Where the sandbox is, for the tools."""

    api_url: str  # .../plusplus_rest/api/v1
    token: str
    manifest: Path  # the Airbyte manifest for this sandbox
    concurrency: int  # the connector's default, for the concurrent ceiling
    connector: str | None = None  # another copy of lxp-sync to measure (its root directory)


@dataclass
class Launch:
    cmd: list[str]
    env: dict[str, str]
    database: Path | None  # the DuckDB file the tool loads into
    python: Path  # the interpreter that can read that file


def base_env(workdir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "PIPELINES__", "NORMALIZE__", "LOAD__"))
        and k not in ("DLT_DATA_DIR", "DLT_PROJECT_DIR", "PYTHONPATH")
    }
    env["DLT_DATA_DIR"] = str(workdir / "dlt_data")
    env["PYTHONPATH"] = str(ROOT)
    # the peers run dlt too: no usage telemetry leaves this machine during a benchmark
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return env


def launch(tool: str, target: Target, workdir: Path) -> Launch:
    """The command of one measured run of `tool`, to run with `workdir` as its cwd."""
    env = base_env(workdir)
    python = Path(sys.executable)
    workers = [str(python), "-m", "bench.workers"]
    if tool in ("ceiling", "ceiling_concurrent"):
        concurrency = target.concurrency if tool == "ceiling_concurrent" else 1
        cmd = [*workers, "ceiling", target.api_url, target.token, "--concurrency", str(concurrency)]
        return Launch(cmd, env, None, python)
    if tool in ("lxp_sync", INCREMENTAL_TOOL):
        # The project's own settings file, as a user who copied it would have it.
        settings = workdir / ".dlt"
        settings.mkdir(exist_ok=True)
        shutil.copy(ROOT / ".dlt" / "config.toml", settings / "config.toml")
        env["SOURCES__PLUSPLUS_REST__BASE_URL"] = target.api_url
        env["SOURCES__PLUSPLUS_REST__API_TOKEN"] = target.token
        cmd = [str(VENV_BIN / "lxp-sync")]
        if target.connector:
            env["PYTHONPATH"] = str(Path(target.connector).resolve())
            cmd = [str(python), "-m", "lxp_sync.pipelines.cli"]
        cmd += ["run", "plusplus_rest", "--pipelines-dir", str(workdir / "pipelines")]
        return Launch(cmd, env, workdir / "lxp_sync.duckdb", python)
    if tool in ("dlt_rest_api", "dlt_rest_api_parquet"):
        cmd = [*workers, "dlt_rest_api", target.api_url, target.token, str(workdir)]
        if tool == "dlt_rest_api_parquet":
            cmd.append("--parquet")
        return Launch(cmd, env, workdir / "peer_db.duckdb", python)
    if tool == "airbyte_lowcode":
        env["AIRBYTE_OFFLINE_MODE"] = "1"
        env["DO_NOT_TRACK"] = "1"
        env["AIRBYTE_LOGGING_ROOT"] = str(workdir / "airbyte_logs")
        env.pop("PYTHONPATH")
        cmd = [
            str(AIRBYTE_PYTHON),
            str(BENCH / "airbyte_runner.py"),
            str(target.manifest),
            target.token,
            str(workdir),
        ]
        return Launch(cmd, env, workdir / "airbyte_cache.duckdb", AIRBYTE_PYTHON)
    raise ValueError(f"unknown tool {tool}")


_SYNC_SECONDS = re.compile(r" in (\d+(?:\.\d+)?)s\b")


def inner_seconds(tool: str, stdout: str) -> float | None:
    """The tool's own sync time, as it reports it (imports and interpreter start excluded)."""
    if tool in ("lxp_sync", INCREMENTAL_TOOL):
        match = _SYNC_SECONDS.search(stdout)
        return float(match.group(1)) if match else None
    facts = last_json_line(stdout)
    value = facts.get("sync_s") if facts else None
    return float(value) if value is not None else None


def last_json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


_COUNT = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
wanted = set(sys.argv[2].split(","))
counts = {}
for schema, table in con.execute(
    "select table_schema, table_name from information_schema.tables"
).fetchall():
    if table in wanted and not schema.endswith("_staging"):
        n = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
        counts[table] = counts.get(table, 0) + n
print(json.dumps(counts))
"""


def loaded_rows(python: Path, database: Path) -> dict[str, int] | None:
    """Rows per entity table in a DuckDB file (not timed: a separate process after the run)."""
    if not database.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", _COUNT, str(database), ",".join(ENTITIES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)


def error_text(stderr: str, stdout: str, limit: int = 1200) -> str:
    """The end of what a failed run said: the exact error, not a paraphrase."""
    lines = [
        line
        for line in (stderr or stdout).strip().splitlines()
        if line.strip() and "FutureWarning" not in line and not line.startswith("WARNING: Location")
    ]
    text = "\n".join(lines[-12:])
    return text[-limit:]


def ensure_airbyte_venv(log: object = print) -> str | None:
    """Create the Airbyte peer's venv with `pip install airbyte` if missing; the error, or None.

    Never timed: it runs before any measurement.
    """
    if AIRBYTE_PYTHON.exists():
        probe = subprocess.run(
            [str(AIRBYTE_PYTHON), "-c", "import airbyte"], capture_output=True, text=True
        )
        if probe.returncode == 0:
            return None
    base = getattr(sys, "_base_executable", sys.executable)
    log(f"creating {AIRBYTE_VENV} (pip install airbyte; a few minutes, not timed) ...")  # type: ignore[operator]
    steps = [
        [base, "-m", "venv", "--clear", str(AIRBYTE_VENV)],
        [str(AIRBYTE_PYTHON), "-m", "pip", "install", "--quiet", "airbyte"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"could not create the Airbyte venv ({' '.join(step[-2:])}): " + error_text(
                done.stderr, done.stdout
            )
    return None


def airbyte_versions() -> dict[str, str]:
    if not AIRBYTE_PYTHON.exists():
        return {}
    script = (
        "import json; from importlib.metadata import version as v; "
        "print(json.dumps({p: v(p) for p in ['airbyte', 'airbyte-cdk', 'duckdb']}))"
    )
    done = subprocess.run([str(AIRBYTE_PYTHON), "-c", script], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}
