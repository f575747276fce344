"""Which resources a run loads: the configured subset of what a source offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from lxp_sync.sources.core.errors import ConfigurationError

T = TypeVar("T")


def select_resources(
    source: str,
    available: Mapping[str, T],
    requested: Sequence[str] | str | None,
    aliases: Mapping[str, str] | None = None,
) -> list[tuple[str, T]]:
    """The requested resources in order (every one when none are), or one line naming the unknown.

    `requested` may be a comma-separated string (`events,users`, from an environment variable);
    `aliases` maps other accepted names (e.g. the API's own) to resource names.
    """
    if isinstance(requested, str):
        requested = [name.strip() for name in requested.split(",") if name.strip()]
    names = [(aliases or {}).get(name, name) for name in (requested or available)]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigurationError(
            f"unknown resources {unknown}; {source} has {sorted(available)}",
            resource=source,
            hint=f"Fix `resources` under [sources.{source}] (or --resources), "
            "or leave it out to load every resource",
        )
    return [(name, available[name]) for name in dict.fromkeys(names)]
