"""The measured tools: how each is started, and where its rows land."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.sources import Plan

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
# measured for PlusPlus REST only: the peers, and the one-request-at-a-time ceiling
REST_ONLY = {"ceiling", "dlt_rest_api", "dlt_rest_api_parquet", "airbyte_lowcode"}
PEERS = ["dlt_rest_api", "dlt_rest_api_parquet", "airbyte_lowcode"]
# scenarios (not full syncs): their records carry these tool names
INCREMENTAL_TOOL = "lxp_sync_incremental"  # PlusPlus REST: 1% changed, then a run
SWEEP_TOOL = "lxp_sync_sweep"  # every source: `reconcile` next to `run --full-refresh`
RECONCILE = "lxp_sync_reconcile"
FULL_REFRESH = "lxp_sync_full_refresh"
STARTUP_TOOL = "startup"  # `lxp-sync --help`, `import lxp_sync.sources.plusplus`
ALL_TOOLS = [*FULL_SYNC_TOOLS, INCREMENTAL_TOOL, SWEEP_TOOL, STARTUP_TOOL]


def tools_for(source: str, tools: list[str]) -> list[str]:
    """The full-sync tools of `tools` that apply to `source`."""
    return [
        t
        for t in tools
        if t in FULL_SYNC_TOOLS and (source == "plusplus_rest" or t not in REST_ONLY)
    ]


@dataclass
class Target:
    """One source in the sandbox, for the tools."""

    plan: Plan  # the ceiling's plan, and where lxp-sync's rows land
    env: dict[str, str]  # lxp-sync's settings for the sandbox
    connector: str | None = None  # another copy of lxp-sync to measure (its root directory)
    token: str | None = None  # PlusPlus REST: the peers' token
    manifest: Path | None = None  # PlusPlus REST: the Airbyte manifest for this sandbox

    @property
    def source(self) -> str:
        return self.plan.source


@dataclass
class Launch:
    cmd: list[str]
    env: dict[str, str]
    database: Path | None  # the DuckDB file the tool loads into
    python: Path  # the interpreter that can read that file
    tables: list[str] = field(default_factory=list)  # the tables the rows land in


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


def connector_path(connector: Path, workdir: Path) -> Path:
    """A directory that, first on `PYTHONPATH`, makes `lxp_sync` the copy in `connector`.

    The checkout's layout is not the package's (`sources/` is `lxp_sync.sources`, the install
    maps it): `connector` itself on the path would import its `lxp_sync/__init__.py` and then
    find `lxp_sync.sources` through this venv's editable install, i.e. measure this tree."""
    connector = connector.resolve()
    package = workdir / "connector" / "lxp_sync"
    package.mkdir(parents=True, exist_ok=True)
    links = {"__init__.py": "lxp_sync/__init__.py", "sources": "sources", "pipelines": "pipelines"}
    for name, target in links.items():
        link = package / name
        if not link.exists():
            link.symlink_to(connector / target)
    return package.parent


def lxp_sync_command(target: Target, workdir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """`lxp-sync ARGS` for `target`, in `workdir`, with the project's settings file copied there."""
    env = base_env(workdir)
    settings = workdir / ".dlt"
    settings.mkdir(exist_ok=True)
    shutil.copy(ROOT / ".dlt" / "config.toml", settings / "config.toml")
    env.update(target.env)
    cmd = [str(VENV_BIN / "lxp-sync")]
    if target.connector:
        env["PYTHONPATH"] = str(connector_path(Path(target.connector), workdir))
        cmd = [sys.executable, "-m", "lxp_sync.pipelines.cli"]
    return [*cmd, *args, "--pipelines-dir", str(workdir / "pipelines")], env


def launch(tool: str, target: Target, workdir: Path) -> Launch:
    """The command of one measured run of `tool`, to run with `workdir` as its cwd."""
    env = base_env(workdir)
    python = Path(sys.executable)
    workers = [str(python), "-m", "bench.workers"]
    source = target.source
    if tool in ("ceiling", "ceiling_concurrent"):
        plan_file = workdir / "plan.json"
        plan_file.write_text(json.dumps(target.plan.to_json()))
        cmd = [*workers, "ceiling", str(plan_file)]
        return Launch(cmd + (["--sequential"] if tool == "ceiling" else []), env, None, python)
    if tool in ("lxp_sync", INCREMENTAL_TOOL, RECONCILE, FULL_REFRESH):
        args = ["reconcile", source] if tool == RECONCILE else ["run", source]
        if tool == FULL_REFRESH:
            args.append("--full-refresh")
        cmd, env = lxp_sync_command(target, workdir, *args)
        return Launch(cmd, env, workdir / "lxp_sync.duckdb", python, target.plan.tables)
    assert target.token and target.manifest, f"{tool} is measured for plusplus_rest only"
    api_url = target.plan.url
    if tool in ("dlt_rest_api", "dlt_rest_api_parquet"):
        cmd = [*workers, "dlt_rest_api", api_url, target.token, str(workdir)]
        if tool == "dlt_rest_api_parquet":
            cmd.append("--parquet")
        return Launch(cmd, env, workdir / "peer_db.duckdb", python, target.plan.tables)
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
        return Launch(
            cmd, env, workdir / "airbyte_cache.duckdb", AIRBYTE_PYTHON, target.plan.tables
        )
    raise ValueError(f"unknown tool {tool}")


_SYNC_SECONDS = re.compile(r" in (\d+(?:\.\d+)?)s\b")


def inner_seconds(tool: str, stdout: str) -> float | None:
    """The tool's own sync time, as it reports it (imports and interpreter start excluded)."""
    if tool.startswith("lxp_sync"):
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


def loaded_rows(python: Path, database: Path, tables: list[str]) -> dict[str, int] | None:
    """Rows per table of `tables` in a DuckDB file (not timed: a separate process after the run)."""
    if not database.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", _COUNT, str(database), ",".join(tables)],
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
