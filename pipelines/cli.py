"""`lxp-sync`: run, reconcile, discover, views, demo, sandbox, check, status and report."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from lxp_sync import __version__
from lxp_sync.pipelines.registry import SOURCES

# dlt, pyarrow and DuckDB (about two seconds of imports) are imported by the commands that use
# them, after the arguments are parsed: `lxp-sync --help` and a mistyped command answer at once

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
        help="reload the selected resources from scratch: their cursors reset, their tables "
        "replaced atomically (other resources untouched)",
    )
    run.add_argument(
        "--recreate",
        action="store_true",
        help="with --full-refresh: drop the selected resources' tables and create them anew "
        "(for a column whose type changed; not atomic: the tables are empty until the load ends)",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="CI check: the first page of every resource into a throwaway DuckDB, schema checked; "
        "nothing written to the real destination or state",
    )
    run.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default: dlt's)")
    run.add_argument(
        "--lock-wait",
        type=float,
        metavar="SECONDS",
        help="wait up to SECONDS for another run of the same pipeline to end "
        "(default: lock_wait_s under [lxp_sync], 0: fail at once)",
    )
    run.add_argument(
        "--report-json",
        metavar="FILE",
        help="write the run report as JSON to FILE (also when the run fails)",
    )

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

    discover = commands.add_parser(
        "discover",
        help="the resources the tenant has: columns and types, keys, cursors, how each reads, "
        "row counts (one small page of each; nothing loaded)",
    )
    discover.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    discover.add_argument("--resources", help="comma-separated subset of the source's resources")
    discover.add_argument("--json", action="store_true", help="one JSON document")

    reconcile = commands.add_parser(
        "reconcile",
        help="the deletes sweep now: rows whose key the source no longer lists are marked "
        "(or removed, `deletes`)",
    )
    reconcile.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    reconcile.add_argument("--resources", help="comma-separated subset of the source's resources")
    reconcile.add_argument("--destination", default="duckdb")
    reconcile.add_argument("--dataset", help="dataset (schema) name (default: the source name)")
    reconcile.add_argument("--pipelines-dir")

    views = commands.add_parser(
        "views",
        help="create or refresh the analysts' SQL views of a source in <dataset>_analytics",
    )
    views.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    views.add_argument("--destination", default="duckdb")
    views.add_argument("--dataset", help="dataset (schema) name (default: the source name)")
    views.add_argument("--pipelines-dir")

    status = commands.add_parser(
        "status",
        help="every source's last run (when, ok or failed and why, rows, time) and cursors; "
        "exit 1 when a last run failed",
    )
    status.add_argument(
        "source", nargs="?", choices=list(SOURCES), metavar="SOURCE", help="default: every one"
    )
    status.add_argument(
        "--destination", help="read this destination's warehouse too (default: what ran here)"
    )
    status.add_argument("--dataset", help="with --destination: the dataset (default: the source)")
    status.add_argument("--pipelines-dir")

    report = commands.add_parser(
        "report", help="the last runs of a source as an HTML page with charts (works offline)"
    )
    report.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help=sources)
    report.add_argument("--runs", type=int, default=30, metavar="N", help="last N runs (30)")
    report.add_argument("--out", metavar="FILE", help="default: lxp-sync-report-SOURCE.html")
    report.add_argument("--destination", default="duckdb")
    report.add_argument("--dataset", help="dataset (schema) name (default: the source name)")
    report.add_argument("--pipelines-dir")
    for each in [parser, *commands.choices.values()]:  # before or after the command
        _add_project_dir(each)
    for each in commands.choices.values():
        # SUPPRESS: `-v` before the command stays on when the command's parser has none
        each.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
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
    from lxp_sync.pipelines.errors import explain
    from lxp_sync.pipelines.interrupts import StopOnSignals, interrupted_line
    from lxp_sync.pipelines.memory import bound_process_memory
    from lxp_sync.pipelines.project import use_project_dir

    if args.command in ("run", "reconcile"):
        bound_process_memory()
    # a run stops on SIGINT/SIGTERM within seconds (other commands keep Python's Ctrl-C)
    signals = StopOnSignals() if args.command in ("run", "reconcile") else nullcontext()
    with signals:
        try:
            use_project_dir(getattr(args, "project_dir", None))
            code = _dispatch(args)
        except KeyboardInterrupt:
            print(interrupted_line(signal.SIGINT), file=sys.stderr)
            code = 130
        except Exception as exc:  # one line, never a traceback, never a secret
            if isinstance(signals, StopOnSignals) and signals.received:
                code = signals.exit_code  # whatever the stop broke, it was the stop
            else:
                line, code = explain(exc, getattr(args, "source", None))
                if args.verbose:
                    log.exception("details")
                print(f"lxp-sync: error: {line}", file=sys.stderr)
        if isinstance(signals, StopOnSignals) and signals.received:
            print(interrupted_line(signals.received), file=sys.stderr)
            code = signals.exit_code
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "reconcile":
        from lxp_sync.pipelines.reconcile import reconcile_source
        from lxp_sync.pipelines.runner import RunOptions

        options = RunOptions(
            destination=args.destination, dataset=args.dataset, pipelines_dir=args.pipelines_dir
        )
        for line in reconcile_source(SOURCES[args.source], _resources(args), options):
            print(line)
        return 0
    if args.command == "discover":
        from lxp_sync.pipelines.discover import discover_lines

        for line in discover_lines(SOURCES[args.source], _resources(args), as_json=args.json):
            print(line)
        return 0
    if args.command == "views":
        from lxp_sync.pipelines.runner import RunOptions
        from lxp_sync.pipelines.views import views_command

        options = RunOptions(
            destination=args.destination, dataset=args.dataset, pipelines_dir=args.pipelines_dir
        )
        for line in views_command(SOURCES[args.source], options):
            print(line)
        return 0
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
        from lxp_sync.pipelines.status import status

        return status(args.source, args.destination, args.dataset, args.pipelines_dir)
    if args.command == "report":
        from lxp_sync.pipelines.report_html import write_report

        return write_report(args)
    raise AssertionError(args.command)


def _resources(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.resources.split(",")] if args.resources else None


def _run(args: argparse.Namespace) -> int:
    from lxp_sync.pipelines.runner import RunOptions, row_counts, run_source, smoke_check

    spec = SOURCES[args.source]
    resources = _resources(args)
    source_args: dict[str, Any] = {"resources": resources} if resources else {}
    started = time.monotonic()
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="lxp-sync-smoke-") as tmp:
            options = RunOptions(
                destination="duckdb",
                duckdb_path=str(Path(tmp) / "smoke.duckdb"),
                pipelines_dir=str(Path(tmp) / "pipelines"),
                dataset=f"{spec.name}_smoke",
                reconcile=False,
                views=False,
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
    from lxp_sync.pipelines.progress import RunProgress
    from lxp_sync.pipelines.run_command import run_reported

    options = RunOptions(
        destination=args.destination,
        dataset=args.dataset,
        pipelines_dir=args.pipelines_dir,
        full_refresh=args.full_refresh or args.recreate,
        recreate=args.recreate,
        lock_wait_s=args.lock_wait,
        on_recovery=lambda line: print(line, flush=True),
        progress=RunProgress(spec.name, every_s=_progress_every_s()),
    )
    return run_reported(spec, options, source_args, args.report_json)


def _progress_every_s() -> float:
    import dlt

    value = dlt.config.get("lxp_sync.progress_every_s")
    return float(value) if value else 2.0


def _demo(args: argparse.Namespace) -> int:
    from lxp_sync.pipelines.runner import RunOptions, row_counts, run_source
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
                views=True,
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
