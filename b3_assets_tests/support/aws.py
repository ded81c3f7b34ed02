"""The stack in moto, as the AWS-path tests deploy it: unique names, the template's real job."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from b3_assets.settings import Settings
from b3_assets_tests.support.cfn import Stack
from b3_assets_tests.support.moto_server import MotoServer, unique_name
from glue.layout import SERVING_TABLE_NAME, landing_key, serving_year_prefix
from glue.local_job import run_local_refine
from glue.transform import REFINED_SCHEMA

# --------------------------------------------------------------------------- the stack, in moto


def stack_for(settings: Settings) -> Stack:
    """The template deployed with the test's unique names (infra/template.yaml, resolved)."""
    return Stack(
        parameters={
            "ArtifactBucket": "b3-artifacts",
            "ArtifactPrefix": "b3",
            "LambdaCodeS3Key": "b3/lambda.zip",
            "GlueScriptS3Key": "b3/job.py",
            "GluePackageS3Key": "b3/glue.zip",
        },
        physical_ids={
            "LakeBucket": settings.bucket,
            "GlueJob": settings.glue_job_name,
            "AthenaWorkGroup": settings.athena_workgroup,
        },
    )


def create_stack_in(moto: MotoServer, settings: Settings) -> Stack:
    """What the stack creates that this path touches: bucket, job (its real defaults), workgroup."""
    stack = stack_for(settings)
    job = stack.properties("GlueJob")
    moto.client("s3").create_bucket(Bucket=settings.bucket)
    moto.client("glue").create_job(
        Name=settings.glue_job_name,
        Role="arn:aws:iam::123456789012:role/b3-glue-job",
        Command={k: job["Command"][k] for k in ("Name", "PythonVersion", "ScriptLocation")},
        GlueVersion=job["GlueVersion"],
        WorkerType=job["WorkerType"],
        NumberOfWorkers=job["NumberOfWorkers"],
        Timeout=job["Timeout"],
        MaxRetries=job["MaxRetries"],
        ExecutionProperty={"MaxConcurrentRuns": 300},
        DefaultArguments=job["DefaultArguments"],
    )
    moto.client("athena").create_work_group(Name=settings.athena_workgroup)
    return stack


# --------------------------------------------------------------------------- fixtures


def aws_settings(moto: MotoServer, base_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(
        env="aws",
        bucket=unique_name("b3-lake"),
        base_url=base_url,
        fetch="api",
        http_retries=1,
        http_timeout_s=5.0,
        glue_job_name=unique_name("b3-etl-soma-acao"),
        athena_workgroup=unique_name("b3-pipeline"),
        aws_endpoint_url=moto.endpoint,
    )


class LambdaContext:
    aws_request_id = "req-e2e-1"
    function_name = "b3-landing-trigger"


def play_glue_worker(
    s3: Any, bucket: str, day: date, workdir: Path, run_id: str | None = None
) -> list[tuple[str, str]]:
    """What the Glue job writes for ``day`` (same transform, local runner), put in the bucket;
    with the Glue ``run_id``, also the date's ``_current.json`` as the job writes it (which
    run published it, from which landing ETags: what the refined step records).

    Returns the refined (Acao, participacao_total_pct) rows, as Athena would read them."""
    key = landing_key(day)
    (workdir / key).parent.mkdir(parents=True)
    (workdir / key).write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    run_local_refine(workdir, day, datetime.now(UTC))
    rows = []
    for path in sorted((workdir / "refined").rglob("*.parquet")):
        rel = path.relative_to(workdir).as_posix()
        s3.put_object(Bucket=bucket, Key=rel, Body=path.read_bytes())
        (value,) = pq.read_table(path, columns=["participacao_total_pct"], use_threads=False)[
            0
        ].to_pylist()
        rows.append((rel.split("Acao=", 1)[1].split("/", 1)[0], str(value)))
    if run_id:
        from glue.published import list_landing, write_published_record
        from glue.transform import publication_inputs

        record = {
            "run_id": run_id,
            "processado_em": datetime.now(UTC).isoformat(),
            "issuers": [acao for acao, _ in rows],
            **publication_inputs(list_landing(s3, bucket), day, "etag"),
        }
        write_published_record(s3, bucket, day, record)
    return rows


def historico_rows(s3: Any, glue: Any, bucket: str, database: str, year: int) -> pa.Table:
    """The year's rows through b3_etl_soma_acao_historico, asserting they are one object (the
    versions it replaced stay beside it for readers that planned before: glue/serving.py)."""
    location = glue.get_partition(
        DatabaseName=database, TableName=SERVING_TABLE_NAME, PartitionValues=[f"{year:04d}"]
    )["Partition"]["StorageDescriptor"]["Location"]
    folder = location.removeprefix(f"s3://{bucket}/")
    assert folder.startswith(serving_year_prefix(year))
    (key,) = [
        k
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
        for k in (o["Key"] for o in page.get("Contents", []))
    ]
    assert location == f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).cast(REFINED_SCHEMA)
