"""Slack alerts through dlt's own helper: on a failed run, and on a schema change. Off by default.

The hook is dlt's runtime setting `slack_incoming_hook` (`[runtime]` in `.dlt/secrets.toml`, or
`RUNTIME__SLACK_INCOMING_HOOK`); without it nothing is sent. A first load creates every table:
that is no change to alert on. The message carries the run's one-line reason, which never holds
a secret; the hook's URL is never printed.
"""

from __future__ import annotations

from typing import Any

from lxp_sync.pipelines.report import RunReport, schema_changes


def slack_hook(pipeline: Any = None) -> str | None:
    """dlt's `runtime.slack_incoming_hook`, from the pipeline's runtime settings or dlt's config."""
    if pipeline is not None:
        return pipeline.runtime_config.slack_incoming_hook or None
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.specs import RuntimeConfiguration

    return resolve_configuration(RuntimeConfiguration()).slack_incoming_hook or None


def message(report: RunReport) -> str | None:
    """The alert for `report`, or None when it needs none."""
    where = f"`{report.source}` into {report.destination} dataset `{report.dataset}`"
    if not report.ok:
        return f":red_circle: lxp-sync {where} failed after {report.seconds:.0f}s: {report.error}"
    if report.schema_changed:
        changes = ", ".join(schema_changes(report, quote="`"))
        return f":large_yellow_circle: lxp-sync {where}: the schema changed: {changes}"
    return None


def alert(report: RunReport, pipeline: Any = None) -> str | None:
    """Send the alert `report` calls for, if a hook is set; a one-line warning if sending failed."""
    text = message(report)
    if text is None:
        return None
    try:
        hook = slack_hook(pipeline)
    except Exception:
        return None  # settings that cannot be read: the run's own error says so
    if not hook:
        return None
    from dlt.common.runtime.slack import send_slack_message

    try:
        send_slack_message(hook, text)
    except Exception as exc:
        return f"{report.source}: the Slack alert was not sent ({type(exc).__name__})"
    return None
