"""moto's server on 127.0.0.1 for the AWS-path tests: S3, Glue and Athena with no AWS account.

    with MotoServer() as moto:
        s3 = moto.client("s3")
        moto.queue_athena_results([athena_result([("n", "integer")], [(1,)])])

All moto servers of one process share moto's in-memory backends, so tests name what they
create uniquely (:func:`unique_name`) instead of relying on an empty account.
:func:`use_moto` points boto3 at the server through the environment (fake credentials,
``AWS_ENDPOINT_URL``), so code that builds its own clients (the Lambda, ``b3-pipeline``)
reaches moto too, never a real account.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

#: Variables that could lead boto3 to a real account or another endpoint.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_ENDPOINT_URL_ATHENA",
)


def unique_name(prefix: str) -> str:
    """``prefix-<8 hex>``: a bucket, job or workgroup name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class MotoServer:
    """A ``ThreadedMotoServer`` on 127.0.0.1 and an OS-chosen free port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def client(self, service: str, region: str = REGION, **kwargs: Any) -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region, **FAKE_CREDENTIALS, **kwargs
        )

    def _post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"moto refused {path}: HTTP {response.status}")

    @contextmanager
    def transition(self, model: str, **transition: Any) -> Iterator[None]:
        """moto's state manager for ``model`` (``glue::job_run``, ``athena::execution``…)
        while the block runs, e.g. ``progression="manual", times=10**9`` to never finish."""
        self._post(
            "/moto-api/state-manager/set-transition",
            {"model_name": model, "transition": transition},
        )
        try:
            yield
        finally:
            self._post("/moto-api/state-manager/unset-transition", {"model_name": model})

    def queue_athena_results(
        self, results: Sequence[dict[str, Any]], region: str = REGION, account: str = ACCOUNT
    ) -> None:
        """Results the next Athena queries get, in order (one per StartQueryExecution)."""
        self._post(
            "/moto-api/static/athena/query-results",
            {"account_id": account, "region": region, "results": list(results)},
        )


def athena_result(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *, header: bool = True
) -> dict[str, Any]:
    """One Athena result set as moto's query-results API takes it.

    ``columns`` are (name, Athena type); values are sent as text, ``None`` as a missing
    VarCharValue (Athena's NULL). A SELECT's first row repeats the header, as on Athena."""

    def row(values: Sequence[Any]) -> dict[str, Any]:
        return {"Data": [{} if v is None else {"VarCharValue": str(v)} for v in values]}

    data = [row([name for name, _ in columns])] if header else []
    data += [row(r) for r in rows]
    info = [
        {
            "CatalogName": "hive",
            "SchemaName": "",
            "TableName": "",
            "Name": name,
            "Label": name,
            "Type": type_,
            "Precision": 0,
            "Scale": 0,
            "Nullable": "UNKNOWN",
            "CaseSensitive": type_ == "varchar",
        }
        for name, type_ in columns
    ]
    return {"rows": data, "column_info": info}


def use_moto(monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str = REGION) -> None:
    """Point every boto3 client built from now on at moto, with fake credentials."""
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/b3-tests/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/b3-tests/aws-credentials")
