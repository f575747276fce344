"""Where a run's settings and local files live: the project folder, whatever the working directory.

dlt reads `.dlt/` from its run context's folder: the working directory, or `DLT_PROJECT_DIR`. That
variable alone moves only the settings: dlt resolves a relative DuckDB path (and any other local
file of a destination) against `DLT_LOCAL_DIR`, else the working directory. So a cron job started
in `$HOME` would read the project's settings and write a new `lxp_sync.duckdb` into `$HOME`.
`use_project_dir` points both at the project folder, the way running from inside it would.
"""

from __future__ import annotations

import os
from pathlib import Path

import dlt
from dlt.common.known_env import DLT_LOCAL_DIR, DLT_PROJECT_DIR
from dlt.common.runtime.run_context import DOT_DLT, switch_context

from lxp_sync.sources.core.errors import ConfigurationError


def use_project_dir(project_dir: str | None) -> Path | None:
    """Make `project_dir` (else `DLT_PROJECT_DIR`) dlt's run folder for this process.

    Its `.dlt/` holds the settings, and relative local paths (the DuckDB file) resolve against it
    unless `DLT_LOCAL_DIR` says otherwise. Neither given: the working directory, as dlt does.
    """
    given = project_dir or os.environ.get(DLT_PROJECT_DIR)
    if not given:
        return None
    where = "--project-dir" if project_dir else DLT_PROJECT_DIR
    folder = Path(given).expanduser().resolve()
    if not (folder / DOT_DLT).is_dir():
        problem = "does not exist" if not folder.exists() else f"has no {DOT_DLT}/ folder"
        raise ConfigurationError(
            f"the project folder {folder} ({where}) {problem}",
            hint=f"Give the folder that holds {DOT_DLT}/config.toml (the one you cloned or "
            "installed lxp-sync into)",
        )
    os.environ[DLT_PROJECT_DIR] = str(folder)  # for dlt and for any child process
    os.environ.setdefault(DLT_LOCAL_DIR, str(folder))
    switch_context(str(folder))  # settings providers are read again from the new folder
    return folder


def default_setting(key: str, value: str) -> None:
    """dlt's setting `key` (`section.name`) as `value` for this process, unless the user's
    settings (`.dlt/`, the environment) make it."""
    if dlt.config.get(key) is None:
        os.environ.setdefault(key.upper().replace(".", "__"), value)
