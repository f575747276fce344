"""Turn any failure into the one line the command prints, and its exit code."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.client import DestinationClientConfiguration
from dlt.common.schema.exceptions import DataValidationError
from dlt.destinations.exceptions import DestinationConnectionError
from dlt.pipeline.exceptions import PipelineStepFailed
from tomlkit.exceptions import ParseError

from lxp_sync.pipelines.memory import configured_global_config, duckdb_memory_limit
from lxp_sync.sources.core.errors import ConfigurationError, LxpSyncError

# user:password@ in connection strings, and token-looking query parameters
_SECRETS = [
    (re.compile(r"(://[^:/@\s]+):[^@\s]+@"), r"\1:***@"),
    (re.compile(r"(?i)((?:token|secret|password|key)=)[^&\s]+"), r"\1***"),
    # `Bearer <token>` / `Token <token>`: a token has digits or is long; "token endpoint" is prose
    (
        re.compile(
            r"(?i)\b(bearer|token)\s+(?=[A-Za-z0-9._\-]*\d|[A-Za-z0-9._\-]{20})[A-Za-z0-9._\-]{8,}"
        ),
        r"\1 ***",
    ),
]


# DuckDB's words when another process has the file open for writing
_DUCKDB_LOCK = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)"(?:: Conflicting lock is held in '
    r"(?P<program>\S+) \(PID (?P<pid>\d+)\))?"
)


# dlt names a load's files after their tables (`recovery.MAX_IDENTIFIER_BYTES` keeps them within
# 255 bytes; some file systems allow fewer)
_NAME_TOO_LONG = re.compile(r"File name too long: '(?P<path>[^']*)'")
# where dlt says which table a failure is about: a load job's file, an extract's pipe
_FAILED_TABLE = re.compile(r"job_id=`?(?P<table>[^.`]+)\.|processing pipe `(?P<pipe>[^`]+)`")
# DuckDB's words when a statement needs more memory than its memory_limit allows
_DUCKDB_OUT_OF_MEMORY = re.compile(r"Out of Memory Error: (?P<what>[^\n]*?)(?: \(|$|\n)")


def _duckdb_out_of_memory(source: str | None, what: str) -> str:
    line = f"{source or 'lxp-sync'}: DuckDB needed more memory than its limit allows ({what}): "
    own = configured_global_config().get("memory_limit")
    if own:
        return line + (
            f"raise memory_limit (now {own}) in global_config under "
            "[destination.duckdb.credentials]"
        )
    return line + (
        f"raise duckdb_memory_limit under [lxp_sync] (now {duckdb_memory_limit() or 'DuckDB default'}"
        '), e.g. duckdb_memory_limit = "1GB", or set LXP_SYNC__DUCKDB_MEMORY_LIMIT'
    )


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        stack.extend([current.__cause__, current.__context__])
        if isinstance(current, PipelineStepFailed):
            stack.append(current.exception)
    return seen


def explain(exc: BaseException, source: str | None) -> tuple[str, int]:
    """(one line, exit code): 2 for settings, 1 for everything else."""
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, ConfigurationError):
            return redact(str(error)), 2
        if isinstance(error, LxpSyncError):
            return redact(str(error)), 1
    for error in chain:
        if isinstance(error, TomlProviderReadException):
            return _settings_file_line(error), 2
        if isinstance(error, ConfigFieldMissingException):
            return _missing_line(error, source), 2
        if isinstance(error, ConfigValueCannotBeCoercedException):
            return _coercion_line(error, source), 2
    for error in chain:
        if isinstance(error, DataValidationError):
            what = {"tables": "a new table", "columns": "a new column", "data_type": "a new type"}
            name = error.column_name or error.table_name
            return (
                f"{source}: the schema contract ({error.contract_mode}) refused "
                f"{what.get(error.schema_entity, error.schema_entity)} {name!r} in table "
                f'{error.table_name!r}: the API changed; set schema_contract = "evolve" '
                f'(or "discard_value") under [sources.{source}] to accept it',
                1,
            )
    for error in chain:
        if found := _DUCKDB_LOCK.search(str(error)):
            holder = f" (pid {found['pid']}, {found['program']})" if found["pid"] else ""
            return (
                f"{source or 'lxp-sync'}: the DuckDB file {found['path']} is in use by another "
                f"process{holder}: DuckDB lets one process write a file at a time. Close what "
                "has it open (a DuckDB shell, a notebook, another lxp-sync run loading into the "
                "same file) or wait for it to end, then run again; sources that share a file "
                "run one after the other",
                1,
            )
    for error in chain:
        if found := _DUCKDB_OUT_OF_MEMORY.search(str(error)):
            return _duckdb_out_of_memory(source, found["what"].strip()), 1
    for error in chain:
        if found := _NAME_TOO_LONG.search(str(error)):
            return _name_too_long(source, Path(found["path"])), 1
    step = next((e for e in chain if isinstance(e, PipelineStepFailed)), None)
    for error in chain:
        if (isinstance(error, OverflowError) and "too large to convert" in str(error)) or (
            type(error).__name__ == "NumericValueOutOfRange"  # PostgreSQL's, at the load
        ):
            return _integer_too_large(chain, step, source, error), 1
    root = chain[-1] if len(chain) > 1 else exc
    first = (str(root).strip().splitlines() or [type(root).__name__])[0]
    where = f"{step.step} step failed: " if step is not None else ""
    line = redact(f"{source or 'lxp-sync'}: {where}{type(root).__name__}: {first}")[:400]
    at_destination = step is not None and step.step in ("sync", "load")
    if at_destination or any(isinstance(e, DestinationConnectionError) for e in chain):
        line += (
            ". Check the destination's credentials: [destination.<name>] in .dlt/secrets.toml "
            "or DESTINATION__<NAME>__CREDENTIALS"
        )
    return line, 1


def _integer_too_large(
    chain: list[BaseException],
    step: PipelineStepFailed | None,
    source: str | None,
    error: BaseException,
) -> str:
    """A number no column of its type holds: an integer past 64 bits in a field of no declared
    type (dlt's row path, or Arrow's), or one the warehouse refused (PostgreSQL)."""
    found = next((m for e in chain if (m := _FAILED_TABLE.search(str(e)))), None)
    table = (found["table"] or found["pipe"]) if found else None
    if step is not None and step.step == "normalize":
        table = None  # dlt's normalize names one job of the several a worker had, not the one
    where = f"{source or 'lxp-sync'}.{table}" if table else source or "lxp-sync"
    what = (
        "the API sent an integer beyond 64 bits, which no bigint column holds"
        if isinstance(error, OverflowError)
        else "the warehouse refused a number out of its column's range"
    )
    return redact(
        f"{where}: {what} ({str(error).strip().splitlines()[0]}); nothing of it was loaded. "
        "Report it with this line (such a field needs a decimal column); meanwhile leave the "
        f"resource out with `resources` under [sources.{source or '<source>'}]"
    )


def _name_too_long(source: str | None, path: Path) -> str:
    table = path.name.split(".", 1)[0]
    shown = table if len(table) <= 60 else f"{table[:60]}..."
    folder = next((p for p in path.parents if p.name == "load"), path.parent).parent.parent
    return redact(
        f"{source or 'lxp-sync'}: the file dlt writes for table {shown} ({len(path.name.encode())}"
        f" bytes) is a longer file name than the file system under {folder} allows: put the "
        "pipelines directory on a file system that allows 255-byte names (--pipelines-dir, "
        "pipelines_dir or DLT_DATA_DIR), then run again"
    )


def _missing_line(error: ConfigFieldMissingException, source: str | None) -> str:
    fields = ", ".join(error.fields)
    if isinstance(error.config, DestinationClientConfiguration):
        # the warehouse's settings: under the destination's section, whatever the source
        name = error.config.destination_name or error.config.destination_type.rsplit(".", 1)[-1]
        return (
            f"{source or 'lxp-sync'}: the {name} destination is missing its {fields}: put them "
            f"in .dlt/secrets.toml under [destination.{name}] or set "
            f"DESTINATION__{name.upper()}__{error.fields[0].upper()} (README: Destinations)"
        )
    section = (source or "SOURCE").upper()
    return (
        f"{source or 'lxp-sync'}: missing setting {fields}: put it in .dlt/config.toml "
        f"(secrets in .dlt/secrets.toml) under [sources.{source}] or set "
        f"SOURCES__{section}__{error.fields[0].upper()}"
    )


# what a setting of each type takes, in words
_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true or false"),
    (int, "a whole number"),
    (float, "a number"),
    (str, "text"),
    (Mapping, "a table of settings"),
    (Sequence, "a list"),
)


def _kind(hint: Any) -> tuple[str, bool]:
    """(what a setting of type `hint` takes, in words; whether its values may be shown)."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    for option in options:
        origin = typing.get_origin(option) or option
        for python, words in _KINDS:
            if isinstance(origin, type) and issubclass(origin, python):
                return words, python in (bool, int, float)
    return "a value of another type", False


def _coercion_line(error: ConfigValueCannotBeCoercedException, source: str | None) -> str:
    words, shown = _kind(error.hint)
    field = error.field_name
    value = f" = {error.field_value!r}" if shown and len(repr(error.field_value)) < 40 else ""
    where = ""
    if source and field in _source_parameters(source):
        where = f" under [sources.{source}] (or SOURCES__{source.upper()}__{field.upper()})"
    return (
        f"{source or 'lxp-sync'}: the setting {field}{value} is not {words}: "
        f"set `{field}`{where} to {words}"
    )


def _source_parameters(source: str) -> set[str]:
    from lxp_sync.pipelines.registry import SOURCES

    spec = SOURCES.get(source)
    if spec is None:
        return set()
    return set(inspect.signature(spec.factory).parameters)


def _settings_file_line(error: TomlProviderReadException) -> str:
    """Which settings file is not TOML, and where; never a line of it (it may hold a secret)."""
    for path in (Path(p).resolve() for p in error.full_paths):
        try:
            tomlkit.parse(path.read_text(encoding="utf-8"))
        except OSError:
            continue
        except ParseError as broken:
            reason = re.sub(r" at line \d+ col \d+$", "", str(broken))
            return (
                f"the settings file {path} is not valid TOML: {reason} (line {broken.line}, "
                f"column {broken.col}). Fix that line and run again"
            )
    paths = ", ".join(error.full_paths)
    return f"a settings file ({paths}) cannot be read: fix it and run again"
