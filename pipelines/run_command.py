"""`lxp-sync run SOURCE`: one reported run; its report printed, kept, written as JSON, alerted."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from dlt.common.pipeline import get_dlt_pipelines_dir

from lxp_sync.pipelines.alerts import alert
from lxp_sync.pipelines.errors import _chain, explain
from lxp_sync.pipelines.interrupts import EXIT_CODES
from lxp_sync.pipelines.report import RunRecorder, RunReport, render_text
from lxp_sync.pipelines.run_history import keep
from lxp_sync.pipelines.runlock import RunInProgressError
from lxp_sync.pipelines.runner import (
    RunOptions,
    destination_name,
    pipeline_name,
    run_source,
)
from lxp_sync.sources.core import stop


def run_reported(
    spec: Any, options: RunOptions, source_args: dict[str, Any], report_json: str | None
) -> int:
    """Run `spec` with `options`; report the run, also a failed one (then raise its error)."""
    destination = destination_name(options.destination)
    recorder = RunRecorder(
        spec.name,
        destination,
        options.dataset or spec.name,
        pipeline_name(spec.name, destination),
    )
    options.recorder = recorder
    swept: list[str] = []
    options.on_sweep = swept.append
    try:
        source = spec.factory(**source_args)
        run_source(spec, source, options)
    except BaseException as exc:
        if isinstance(exc, RunInProgressError):
            raise  # not a run: the one in progress reports itself
        line, code = _failure(exc, spec.name)
        _publish(recorder, recorder.finish(line, code), options, report_json, exc)
        raise
    _publish(recorder, recorder.finish(), options, report_json, None)
    for line in swept:
        print(line)
    return 0


def _failure(exc: BaseException, source: str) -> tuple[str, int]:
    """The failure's one line and exit code, as the command will say them."""
    if isinstance(exc, KeyboardInterrupt) or stop.stop_requested():
        name = stop.reason() or "SIGINT"
        code = EXIT_CODES.get(getattr(signal, name, signal.SIGINT), 130)
        return f"interrupted ({name})", code
    line, code = explain(exc, source)
    return line, code


def _publish(
    recorder: RunRecorder,
    report: RunReport,
    options: RunOptions,
    report_json: str | None,
    exc: BaseException | None,
) -> None:
    pipelines_dir = Path(options.pipelines_dir or get_dlt_pipelines_dir())
    # the warehouse copy needs the dataset (loaded before, or by this run) and a warehouse that
    # answers; a stopped run ends at once (the file keeps its report)
    stopped = exc is not None and (isinstance(exc, KeyboardInterrupt) or stop.stop_requested())
    dataset = not report.first_load or report.load_id is not None
    reachable = exc is None or not (stopped or _at_destination(exc))
    reached = recorder.pipeline if dataset and reachable else None
    warnings = [keep(report, pipelines_dir, reached)]
    for line in render_text(report):
        print(line, flush=True)
    if report_json:
        path = Path(report_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if not stopped:
        warnings.append(alert(report, reached))
    for warning in warnings:
        if warning:
            print(f"lxp-sync: warning: {warning}", file=sys.stderr, flush=True)


def _at_destination(exc: BaseException) -> bool:
    from dlt.destinations.exceptions import DestinationConnectionError
    from dlt.pipeline.exceptions import PipelineStepFailed

    for error in _chain(exc):
        if isinstance(error, DestinationConnectionError):
            return True
        if isinstance(error, PipelineStepFailed) and error.step in ("sync", "load"):
            return True
    return False
