"""B3_ALERT_WEBHOOK: a failed run of the real daily job is POSTed once, as JSON, to a local
receiver (http.server on 127.0.0.1); the setting is validated; off unless set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from b3_assets.definitions import build_definitions
from b3_assets.platform.alerts import SENSOR_NAME, WebhookError, alert_sensors, post_json
from b3_assets.settings import Settings, SettingsError
from b3_assets_tests.support.deployment import CLOSED_URL

DAY = "2025-03-05"


@dataclass
class Receiver:
    """A webhook on 127.0.0.1 that records each POST and answers ``statuses`` in turn
    (then 200)."""

    statuses: list[int] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append(json.loads(body))
            state.headers.append(dict(self.headers))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/b3"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _settings(tmp_path: Path, webhook: str | None) -> Settings:
    # B3 unreachable: the raw step fails at once (connection refused is a permanent error).
    return Settings(
        data_dir=tmp_path / "lake",
        base_url=CLOSED_URL,
        fetch="api",
        http_retries=0,
        alert_webhook=webhook,
    )


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_a_failed_daily_run_is_posted_once(tmp_path, receiver):
    defs = build_definitions(_settings(tmp_path, receiver.url))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, None)  # the sensor starts at "now"
        result = defs.resolve_job_def("daily_ibov_portfolio").execute_in_process(
            partition_key=DAY, instance=instance, raise_on_error=False
        )
        assert not result.success
        second = _tick(sensor, instance, first.cursor)
        assert [r.error for r in second.dagster_run_reactions] == [None]
        assert len(receiver.posts) == 1
        alert = receiver.posts[0]
        assert receiver.headers[0]["Content-Type"] == "application/json"
        assert alert["event"] == "run_failure" and alert["source"] == "b3-pipeline"
        assert alert["run_id"] == result.run_id
        assert alert["job"] == "daily_ibov_portfolio"
        assert alert["partition"] == DAY
        assert alert["environment"] == "local"
        assert [s["step"] for s in alert["failed_steps"]] == ["raw__ibov_portfolio"]
        assert alert["text"].startswith(
            f"b3-pipeline: run {result.run_id[:8]} of daily_ibov_portfolio [{DAY}] failed: "
        )
        # The reason is the real error, not Dagster's wrapper.
        assert "Error occurred while executing" not in alert["text"]
        assert alert["failed_steps"][0]["error"] in alert["text"]
        # Reported once: the next tick has nothing new.
        third = _tick(sensor, instance, second.cursor)
        assert third.dagster_run_reactions == [] and len(receiver.posts) == 1


def test_a_busy_webhook_is_retried_and_a_refusing_one_fails_the_tick(tmp_path, receiver):
    receiver.statuses = [503]
    assert post_json(receiver.url, {"text": "x"}) == 200
    assert len(receiver.posts) == 2  # 503, then accepted

    receiver.statuses = [404]
    with pytest.raises(WebhookError, match="HTTP 404") as raised:
        post_json(receiver.url, {"text": "x"})
    assert receiver.url not in str(raised.value)  # the URL may hold a token
    assert len(receiver.posts) == 3  # a 404 is not asked again

    defs = build_definitions(_settings(tmp_path, receiver.url))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.instance_for_test() as instance:
        cursor = _tick(sensor, instance, None).cursor
        defs.resolve_job_def("daily_ibov_portfolio").execute_in_process(
            partition_key=DAY, instance=instance, raise_on_error=False
        )
        receiver.statuses = [400]
        tick = _tick(sensor, instance, cursor)
        (reaction,) = tick.dagster_run_reactions
        assert reaction.error is not None and "HTTP 400" in reaction.error.to_string()


def test_the_webhook_setting(tmp_path):
    assert Settings.from_env({}).alert_webhook is None
    assert Settings.from_env({"B3_ALERT_WEBHOOK": "  "}).alert_webhook is None
    assert alert_sensors(Settings()) == []
    names = {s.name for s in build_definitions(_settings(tmp_path, None)).sensors or []}
    assert SENSOR_NAME not in names
    url = "https://hooks.example.com/services/T0/B0/secret"
    settings = Settings.from_env({"B3_ALERT_WEBHOOK": url})
    assert settings.alert_webhook == url
    assert "secret" not in repr(settings)
    for bad in ["hooks.example.com/x", "ftp://example.com/x", "http://", "mailto:a@b.c"]:
        with pytest.raises(SettingsError, match="B3_ALERT_WEBHOOK") as raised:
            Settings.from_env({"B3_ALERT_WEBHOOK": bad})
        assert bad not in str(raised.value)
