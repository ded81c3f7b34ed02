"""Every setting of b3-pipeline, read from the environment in one place.

Asset code never reads the environment: resources are built from a :class:`Settings`, so the
same graph runs on the local lake (``B3_ENV=local``) and on AWS (``B3_ENV=aws``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://sistemaswebb3-listados.b3.com.br"

Environment = Literal["local", "aws"]
FetchMode = Literal["auto", "api", "browser"]


class SettingsError(ValueError):
    """A setting has a value b3-pipeline cannot use."""


def code_location_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """:meth:`Settings.from_env` for the Dagster code location: a bad setting fails the
    location with the SettingsError's message as the error's first line.

    Dagster wraps an exception raised while loading definitions in a DagsterUserCodeLoadError
    ("Error occurred during the loading of Dagster definitions in …") and shows the cause
    further down, unless it is a DagsterError, which it passes on as is. So the SettingsError
    is raised again as a DagsterError of the same name (dagster is imported here only: the
    CLI, Glue and the Lambda read settings without it)."""
    try:
        return Settings.from_env(environ)
    except SettingsError as exc:
        from dagster import DagsterError

        location_error = type(
            "SettingsError", (DagsterError, SettingsError), {"__module__": __name__}
        )
        raise location_error(str(exc)) from None


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}.")
    return value


def _number(name: str, text: str, kind: type[float] | type[int], low: float, high: float) -> Any:
    """A numeric setting within [low, high]; the error names the variable and the range."""
    try:
        value = kind(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        what = "a whole number" if kind is int else "a number of seconds"
        raise SettingsError(f"{name}={text!r}: expected {what} from {low:g} to {high:g}.")
    return value


def _data_dir(text: str) -> Path:
    if not text.strip():
        raise SettingsError("B3_DATA_DIR is empty: set it to the lake folder (default ./data).")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise SettingsError(f"B3_DATA_DIR={text!r} is a file, not a folder: point it at a folder.")
    return path


def _base_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(
            f"B3_BASE_URL={text!r} is not an http(s) URL such as {DEFAULT_BASE_URL}."
        )
    return url


def _webhook(text: str) -> str | None:
    """B3_ALERT_WEBHOOK: empty is off. The value is never echoed (such URLs hold a secret)."""
    url = text.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(
            "B3_ALERT_WEBHOOK is not an http(s) URL (e.g. a Slack incoming webhook "
            "https://hooks.slack.com/services/...); unset it to turn alerts off."
        )
    return url


@dataclass(frozen=True)
class Settings:
    """The environment variables of README's configuration table, with their defaults."""

    env: Environment = "local"
    data_dir: Path = Path("data")
    bucket: str = ""
    base_url: str = DEFAULT_BASE_URL
    fetch: FetchMode = "auto"
    browser_path: str | None = None
    glue_job_name: str = "b3-etl-soma-acao"
    glue_database: str = "default"
    athena_workgroup: str = "b3-pipeline"
    athena_output: str | None = None
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    http_timeout_s: float = 20.0
    http_retries: int = 4
    sensor_interval_s: int = 30
    alert_webhook: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting now, so a bad value fails at start, named."""
        e = os.environ if environ is None else environ
        env = _choice("B3_ENV", e.get("B3_ENV", "local").strip() or "local", ("local", "aws"))
        fetch = _choice(
            "B3_FETCH", e.get("B3_FETCH", "auto").strip() or "auto", ("auto", "api", "browser")
        )
        bucket = e.get("B3_BUCKET", "").strip()
        if env == "aws" and not bucket:
            raise SettingsError("B3_ENV=aws needs B3_BUCKET (the lake bucket the stack created).")
        return cls(
            env="aws" if env == "aws" else "local",
            data_dir=_data_dir(e.get("B3_DATA_DIR", "data")),
            bucket=bucket,
            base_url=_base_url(e.get("B3_BASE_URL", DEFAULT_BASE_URL)),
            fetch="api" if fetch == "api" else "browser" if fetch == "browser" else "auto",
            browser_path=e.get("B3_BROWSER_PATH") or None,
            glue_job_name=e.get("B3_GLUE_JOB", "b3-etl-soma-acao").strip() or "b3-etl-soma-acao",
            glue_database=e.get("B3_GLUE_DATABASE", "default").strip() or "default",
            athena_workgroup=e.get("B3_ATHENA_WORKGROUP", "b3-pipeline"),
            athena_output=e.get("B3_ATHENA_OUTPUT") or None,
            aws_region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
            http_timeout_s=_number(
                "B3_HTTP_TIMEOUT", e.get("B3_HTTP_TIMEOUT", "20"), float, 1, 300
            ),
            http_retries=_number("B3_HTTP_RETRIES", e.get("B3_HTTP_RETRIES", "4"), int, 0, 10),
            sensor_interval_s=_number(
                "B3_SENSOR_INTERVAL", e.get("B3_SENSOR_INTERVAL", "30"), int, 1, 3600
            ),
            alert_webhook=_webhook(e.get("B3_ALERT_WEBHOOK", "")),
        )
