"""`lxp-sync`: run, demo, sandbox, check and status."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lxp_sync import __version__
from lxp_sync.pipelines.errors import explain
from lxp_sync.pipelines.project import use_project_dir
from lxp_sync.pipelines.registry import SOURCES
from lxp_sync.pipelines.runner import RunOptions, row_counts, run_source, smoke_check

log = logging.getLogger("lxp_sync")


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _parser() -> argparse.ArgumentParser:
    sources = ", ".join(SOURCES)
    parser = argparse.ArgumentParser(
        prog="lxp-sync",
        description="Copy learning-platform APIs into a SQL warehouse with dlt. Sources: "
        + sources,
        epilog="Settings come from .dlt/config.toml, .dlt/secrets.toml and the environment "
        "(dlt's conventions, e.g. SOURCES__PLUSPLUS_REST__API_TOKEN).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"lxp-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="sync one source into the warehouse")
    run.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    run.add_argument("--resources", help="comma-separated subset of the source's resources")
    run.add_argument(
        "--destination", default="duckdb", help="dlt destination name (default: duckdb)"
    )
    run.add_argument("--dataset", help="dataset (schema) name (default: the source name)")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the source's tables and cursors first, then load everything",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="CI check: the first page of every resource into a throwaway DuckDB, schema checked; "
        "nothing written to the real destination or state",
    )
    run.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default: dlt's)")

    demo = commands.add_parser(
        "demo", help="start the sandbox, sync every source into DuckDB, print the tables"
    )
    demo.add_argument("--rows", type=int, default=2000, help="sandbox rows (default: 2000)")
    demo.add_argument("--destination", default="duckdb")
    demo.add_argument("--out", default="lxp-sync-demo", help="output directory")

    sandbox = commands.add_parser("sandbox", help="serve the local stand-in APIs until stopped")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--rows", type=int, default=1000)
    sandbox.add_argument("--seed", type=int, default=42)
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument("--rate-limit", type=int, default=0, help="requests per second; 0: none")

    check = commands.add_parser("check", help="prove credentials and connectivity, one request")
    check.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)

    status = commands.add_parser("status", help="last load and cursors of a source's pipeline")
    status.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    status.add_argument("--destination", default="duckdb")
    status.add_argument("--pipelines-dir")
    for each in [parser, *commands.choices.values()]:  # before or after the command
        _add_project_dir(each)
    return parser


def _add_project_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-dir",
        metavar="DIR",
        # SUPPRESS: a command's parser leaves a value given before the command alone
        default=argparse.SUPPRESS,
        help="the folder with .dlt/ (settings) and the default DuckDB file "
        "(default: $DLT_PROJECT_DIR, else the current folder)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    # dlt's usage telemetry is opt-in here: a connector should not phone home unasked
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        use_project_dir(getattr(args, "project_dir", None))
        code = _dispatch(args)
    except KeyboardInterrupt:
        print("lxp-sync: interrupted; the next run resumes safely", file=sys.stderr)
        code = 130
    except Exception as exc:  # one line, never a traceback, never a secret
        line, code = explain(exc, getattr(args, "source", None))
        if args.verbose:
            log.exception("details")
        print(f"lxp-sync: error: {line}", file=sys.stderr)
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "sandbox":
        from lxp_sync_sandbox.server import serve

        serve(args.host, args.port, args.rows, args.seed, args.latency_ms, args.rate_limit)
        return 0
    if args.command == "check":
        fact = SOURCES[args.source].check()
        print(f"{args.source}: ok, {fact}")
        return 0
    if args.command == "status":
        from lxp_sync.pipelines.runner import status_lines

        for line in status_lines(args.source, args.destination, args.pipelines_dir):
            print(line)
        return 0
    raise AssertionError(args.command)


def _run(args: argparse.Namespace) -> int:
    spec = SOURCES[args.source]
    resources = [r.strip() for r in args.resources.split(",")] if args.resources else None
    source_args: dict[str, Any] = {"resources": resources} if resources else {}
    started = time.monotonic()
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="lxp-sync-smoke-") as tmp:
            options = RunOptions(
                destination="duckdb",
                duckdb_path=str(Path(tmp) / "smoke.duckdb"),
                pipelines_dir=str(Path(tmp) / "pipelines"),
                dataset=f"{spec.name}_smoke",
            )
            source = spec.factory(max_pages=1, **source_args)
            pipeline = run_source(spec, source, options)
            problems = smoke_check(pipeline, source)
            counts = row_counts(pipeline)
        for line in problems:
            print(f"lxp-sync: smoke: {line}", file=sys.stderr)
        if problems:
            return 1
        loaded = ", ".join(f"{table} {rows}" for table, rows in counts.items())
        print(f"{spec.name}: smoke ok in {time.monotonic() - started:.1f}s ({loaded})")
        return 0
    options = RunOptions(
        destination=args.destination,
        dataset=args.dataset,
        pipelines_dir=args.pipelines_dir,
        full_refresh=args.full_refresh,
    )
    pipeline = run_source(spec, spec.factory(**source_args), options)
    counts = row_counts(pipeline)
    print(
        f"{spec.name}: loaded into {pipeline.destination.destination_name} dataset "
        f"{pipeline.dataset_name} in {time.monotonic() - started:.1f}s"
    )
    for table, rows in counts.items():
        print(f"  {table:<40} {rows:>10}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from lxp_sync_sandbox.server import SandboxProcess

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"starting the sandbox ({args.rows} rows) ...", flush=True)
    with SandboxProcess(rows=args.rows) as sandbox:
        print(f"sandbox on {sandbox.url}", flush=True)
        for spec in SOURCES.values():
            options = RunOptions(
                destination=args.destination,
                duckdb_path=str(out / "lxp_sync_demo.duckdb"),
                pipelines_dir=str(out / "pipelines"),
                dataset=spec.name,
                full_refresh=True,
            )
            started = time.monotonic()
            pipeline = run_source(spec, spec.factory(**spec.sandbox_args(sandbox.url)), options)
            counts = row_counts(pipeline)
            print(f"\n{spec.name} ({spec.description}) in {time.monotonic() - started:.1f}s")
            print(f"  {'table':<40} {'rows':>10}")
            for table, rows in counts.items():
                print(f"  {table:<40} {rows:>10}")
    where = out / "lxp_sync_demo.duckdb" if args.destination == "duckdb" else args.destination
    print(f"\ndone: {where}")
    return 0


if __name__ == "__main__":
    main()
