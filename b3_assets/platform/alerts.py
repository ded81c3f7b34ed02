"""Alerts: every failed run of the deployment is POSTed as JSON to ``B3_ALERT_WEBHOOK``.

Off unless the setting is there. The body carries a ``text`` line (what Slack, Mattermost,
Teams workflows and most chat webhooks display) plus the run's fields for anything else:

    {"text": "b3-pipeline: run 1a2b3c4d of daily_ibov_portfolio [2025-03-05] failed: ...",
     "source": "b3-pipeline", "event": "run_failure", "run_id": "...", "job": "...",
     "partition": "2025-03-05", "message": "...", "failed_steps": [{"step": "...",
     "error": "..."}], "environment": "local"}

A run that fails is reported once (the sensor's cursor moves past it). A webhook that does
not answer 2xx is tried three times; then the sensor tick fails, visibly in the UI, and the
run gets an engine event saying so.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from b3_assets.settings import Settings

SENSOR_NAME = "alert_webhook_on_run_failure"
ATTEMPTS = 3
TIMEOUT_S = 10.0
MAX_ERROR_CHARS = 2000


class WebhookError(RuntimeError):
    """The webhook did not accept the alert (the URL itself is never in the message)."""


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _root_message(error: Any) -> str:
    """The innermost cause's message: Dagster wraps the real error ("Error occurred while
    executing op ...")."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(getattr(error, "message", error)).strip()


def failure_payload(context: dg.RunFailureSensorContext, environment: str) -> dict[str, Any]:
    """The JSON body for one failed run."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    range_start = run.tags.get("dagster/asset_partition_range_start")
    range_end = run.tags.get("dagster/asset_partition_range_end")
    if partition is None and range_start and range_end:
        partition = f"{range_start}...{range_end}"
    failed_steps = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        message = _root_message(error) if error is not None else event.message or ""
        failed_steps.append({"step": event.step_key, "error": message[:MAX_ERROR_CHARS]})
    reason = (
        _first_line(failed_steps[0]["error"])
        if failed_steps
        else _first_line(context.failure_event.message)
    )
    where = f" [{partition}]" if partition else ""
    return {
        "text": f"b3-pipeline: run {run.run_id[:8]} of {run.job_name}{where} failed: {reason}",
        "source": "b3-pipeline",
        "event": "run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": partition,
        "message": context.failure_event.message,
        "failed_steps": failed_steps,
        "environment": environment,
    }


def post_json(url: str, payload: dict[str, Any], attempts: int = ATTEMPTS) -> int:
    """POST ``payload``; the HTTP status of the accepted attempt. Retries connection errors,
    timeouts, 429 and 5xx with a short backoff (a sensor tick has about a minute)."""
    body = json.dumps(payload).encode()
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(2 ** (attempt - 1))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "b3-pipeline-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break  # a 4xx other than 429 will not change by asking again
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{type(reason).__name__}: {reason}"
    raise WebhookError(f"B3_ALERT_WEBHOOK did not accept the alert ({last}).")


def alert_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The run-failure webhook sensor, or nothing when B3_ALERT_WEBHOOK is not set."""
    url = settings.alert_webhook
    if not url:
        return []

    @dg.run_failure_sensor(
        name=SENSOR_NAME,
        description="POSTs every failed run of this deployment to B3_ALERT_WEBHOOK as JSON.",
        # Runs launched from the CLI (backfills) count too, not only this location's.
        monitor_all_code_locations=True,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def alert_webhook_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        payload = failure_payload(context, settings.env)
        status = post_json(url, payload)
        context.log.info(f"alert for run {context.dagster_run.run_id} sent (HTTP {status})")

    return [alert_webhook_on_run_failure]
