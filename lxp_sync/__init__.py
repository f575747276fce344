"""lxp-sync: learning- and data-platform APIs into a SQL warehouse, with dlt.

The installed package: `lxp_sync.sources` (the dlt sources, one folder per vendor on a shared
core) and `lxp_sync.pipelines` (the `lxp-sync` command). In the repository they live in
`sources/` and `pipelines/`.

`lxp_sync.run_options(pipeline, source)`: the arguments of `pipeline.run(source, ...)` that load
what `lxp-sync run` loads, for a dlt pipeline of one's own (README: "Using the sources in your own
dlt pipelines"). Imported on first use, so that `import lxp_sync` stays free.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("lxp-sync")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"


# the helper for a user's own pipelines (`sources/core/run_options.py`)
_RUN_OPTIONS = ("run_options", "loader_file_format", "run_contract")


def __getattr__(name: str) -> Any:
    if name in _RUN_OPTIONS:
        from lxp_sync.sources.core import run_options

        return getattr(run_options, name)
    raise AttributeError(f"module 'lxp_sync' has no attribute {name!r}")
