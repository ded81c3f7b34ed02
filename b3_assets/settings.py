"""Every setting of b3-pipeline, read from the environment in one place.

Asset code never reads the environment: resources are built from a :class:`Settings`, so the
same graph runs on the local lake (``B3_ENV=local``) and on AWS (``B3_ENV=aws``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_BASE_URL = "https://sistemaswebb3-listados.b3.com.br"

Environment = Literal["local", "aws"]
FetchMode = Literal["auto", "api", "browser"]


class SettingsError(ValueError):
    """A setting has a value b3-pipeline cannot use."""


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(allowed)}.")
    return value


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
    glue_table: str = "b3_etl_soma_acao"
    athena_workgroup: str = "b3-pipeline"
    athena_output: str | None = None
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    http_timeout_s: float = 20.0
    http_retries: int = 4
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        e = os.environ if environ is None else environ
        env = _choice("B3_ENV", e.get("B3_ENV", "local").strip() or "local", ("local", "aws"))
        fetch = _choice(
            "B3_FETCH", e.get("B3_FETCH", "auto").strip() or "auto", ("auto", "api", "browser")
        )
        bucket = e.get("B3_BUCKET", "").strip()
        if env == "aws" and not bucket:
            raise SettingsError("B3_ENV=aws needs B3_BUCKET (the lake bucket the stack created).")
        return cls(
            env=env,  # type: ignore[arg-type]
            data_dir=Path(e.get("B3_DATA_DIR", "data")).expanduser(),
            bucket=bucket,
            base_url=e.get("B3_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
            fetch=fetch,  # type: ignore[arg-type]
            browser_path=e.get("B3_BROWSER_PATH") or None,
            glue_job_name=e.get("B3_GLUE_JOB", "b3-etl-soma-acao"),
            glue_database=e.get("B3_GLUE_DATABASE", "default"),
            glue_table=e.get("B3_GLUE_TABLE", "b3_etl_soma_acao"),
            athena_workgroup=e.get("B3_ATHENA_WORKGROUP", "b3-pipeline"),
            athena_output=e.get("B3_ATHENA_OUTPUT") or None,
            aws_region=e.get("AWS_REGION") or e.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
            http_timeout_s=float(e.get("B3_HTTP_TIMEOUT", "20")),
            http_retries=int(e.get("B3_HTTP_RETRIES", "4")),
        )
