"""lxp-sync: learning- and data-platform APIs into a SQL warehouse, with dlt.

The installed package: `lxp_sync.sources` (the dlt sources, one folder per vendor on a shared
core) and `lxp_sync.pipelines` (the `lxp-sync` command). In the repository they live in
`sources/` and `pipelines/`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lxp-sync")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"
