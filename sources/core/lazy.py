"""Sources whose resources are found when they are first needed, not when the source is made.

Introspection, tokens and catalogs are requests to the vendor. Airflow parses DAG files every
few seconds and Dagster builds definitions up front, so making a source must cost nothing: no
request, no token spent (Pitchly's refresh tokens work once). A source function returns
`Discovery(make)` instead of its resources; dlt turns that into a `LazySource` (the source's
`_impl_cls`), which calls `make()` the first time anything asks for its resources: dlt when it
extracts, the command when it plans a run, `discover`, a user's `source.resources`. The
resources made then serve the rest of the source object's life (one run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dlt.common.schema import Schema
from dlt.extract import DltSource
from dlt.extract.source import DltResourceDict
from dlt.sources import DltResource


class Discovery:
    """What a lazy source function returns: how to make its resources, called once, later."""

    def __init__(self, make: Callable[[], Iterable[DltResource]]) -> None:
        self.make = make


class LazySource(DltSource):
    """A dlt source that makes its resources (`Discovery.make`) when they are first asked for.

    Every use of a source's resources in dlt goes through `DltSource._resources`, so that one
    attribute, made on first access, is all the laziness there is. A discovery that fails stays
    pending and fails again on the next access: a source never looks empty because the API
    was unreachable once (an empty source would load nothing and succeed).
    """

    def __init__(
        self,
        schema: Schema,
        section: str,
        resources: Sequence[DltResource] | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        self.__dict__["_discovery"] = discovery
        super().__init__(schema, section, resources)

    @classmethod
    def from_data(cls, schema: Schema, section: str, data: Any) -> LazySource:
        if isinstance(data, Discovery):
            return cls(schema, section, discovery=data)
        return super().from_data(schema, section, data)

    @property
    def discovered(self) -> bool:
        """Whether the resources have been made (the API asked)."""
        return self.__dict__.get("_discovery") is None

    @property  # type: ignore[override]
    def _resources(self) -> DltResourceDict:
        made: DltResourceDict = self.__dict__["_made_resources"]
        discovery = self.__dict__.get("_discovery")
        if discovery is not None:
            try:
                resources = list(discovery.make())
            except AttributeError as e:  # not a missing attribute of the source (`__getattr__`)
                raise RuntimeError(f"{self.name}: finding the resources failed: {e}") from e
            made.add(*resources)
            self.__dict__["_discovery"] = None
        return made

    @_resources.setter
    def _resources(self, value: DltResourceDict) -> None:
        self.__dict__["_made_resources"] = value


def found_resources(source: DltSource) -> list[str]:
    """The names of the source's resources, finding them now if the source is lazy."""
    return list(source.resources)
