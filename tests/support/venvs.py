"""Virtual environments of their own for tools that cannot share the project's venv (the BigQuery
emulator pins another duckdb; Airflow pins half of PyPI), built on first use under `.test-env/`
(git-ignored) and reused while what they were built from is unchanged.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_MARKER = "lxp-requirements.txt"


def env_dir(name: str, variable: str) -> Path:
    """`.test-env/<name>` of the repository, or the folder the environment variable names."""
    custom = os.environ.get(variable)
    return Path(custom) if custom else REPO_ROOT / ".test-env" / name


def ensure_venv(
    venv: Path,
    requirements: Sequence[str],
    *,
    fingerprint: str = "",
    finish: Callable[[Path, float], None] | None = None,
    timeout: float = 900.0,
) -> Path:
    """Create `venv` with `requirements` unless it is there already, built from the same
    requirements and `fingerprint`; `finish(venv, deadline)` runs last. Returns the venv."""
    python_version = f"python {sys.version_info[0]}.{sys.version_info[1]}"
    wanted = "\n".join([python_version, *requirements, *([fingerprint] if fingerprint else [])])
    marker = venv / _MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it right now
        if marker.is_file() and marker.read_text() == wanted:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        deadline = time.monotonic() + timeout
        python = str(venv / "bin" / "python")
        uv = _uv()
        if uv:  # uv takes seconds where pip takes minutes
            run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], deadline)
            run([uv, "pip", "install", "--quiet", "--python", python, *requirements], deadline)
        else:
            run([sys.executable, "-m", "venv", str(venv)], deadline)
            pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            run([*pip, *requirements], deadline)
        if finish is not None:
            finish(venv, deadline)
        marker.write_text(wanted)
    return venv


def _uv() -> str | None:
    """The `uv` binary of the `uv` package, when it is installed."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def run(cmd: list[str], deadline: float, env: dict[str, str] | None = None) -> None:
    """Run a build step; its stderr's end in the error when it fails."""
    remaining = max(1.0, deadline - time.monotonic())
    env = env or {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=remaining, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
