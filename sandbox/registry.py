"""The vendor APIs the sandbox serves."""

from __future__ import annotations

import importlib

from lxp_sync_sandbox.base import Api

# module under sandbox/ -> each exposes `build(config) -> Api`
API_MODULES = ["plusplus_rest", "plusplus_graphql", "pluvo", "pitchly", "generated"]


def default_apis(config) -> list[Api]:
    apis = []
    for module_name in API_MODULES:
        try:
            module = importlib.import_module(f"lxp_sync_sandbox.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lxp_sync_sandbox.{module_name}":
                raise
            continue
        apis.append(module.build(config))
    return apis
