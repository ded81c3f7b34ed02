"""The Glue job's own code (glue/job.py ``run_job``: per-date lock, partitions repointed,
``_current.json``, superseded objects kept for RETIRE_AFTER, the serving patch) on moto,
with only the Spark write replaced by the DuckDB transform (same rules, glue/transform.py):
what the Athena twin's tests read, in seconds instead of a Spark session."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import glue.job as job
from glue.layout import landing_key, refined_run_prefix
from glue.transform import REFINED_FILE_SCHEMA, refine_duckdb


class NoSpark:
    """The one thing run_job asks of its Spark session besides write_refined."""

    class conf:  # noqa: N801 (SparkSession.conf)
        @staticmethod
        def set(key: str, value: str) -> None:
            pass


def _write_refined_duckdb(s3: Any) -> Any:
    def write_refined(spark: Any, run: job.Run, day: date, anterior: date | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for d in [day] + ([anterior] if anterior else []):
                path = Path(tmp) / f"{d.isoformat()}.parquet"
                path.write_bytes(
                    s3.get_object(Bucket=run.bucket, Key=landing_key(d))["Body"].read()
                )
                paths[d] = path
            rows = refine_duckdb(
                paths[day], paths.get(anterior) if anterior else None, day, anterior,
                run.processado_em,
            )  # fmt: skip
        acoes = rows.column("Acao")
        for acao in sorted(set(acoes.to_pylist())):
            one = rows.filter(pc.equal(acoes, acao)).select(REFINED_FILE_SCHEMA.names)
            buf = io.BytesIO()
            pq.write_table(one.cast(REFINED_FILE_SCHEMA), buf, compression="snappy")
            key = f"{refined_run_prefix(day, acao, run.run_id)}part-00000.c000.snappy.parquet"
            s3.put_object(Bucket=run.bucket, Key=key, Body=buf.getvalue())

    return write_refined


def put_landing(s3: Any, bucket: str, table: pa.Table) -> None:
    """A landing file in the bucket (one date's LANDING_SCHEMA rows)."""
    (day,) = set(table.column("data_carteira").to_pylist())
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3.put_object(Bucket=bucket, Key=landing_key(day), Body=buf.getvalue())


def run_glue_job(
    monkeypatch: pytest.MonkeyPatch,
    s3: Any,
    glue: Any,
    bucket: str,
    database: str,
    dates: Sequence[date],
    run_id: str,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """One Glue job run of ``dates`` (glue.job.run_job) against moto; returns its summary."""
    monkeypatch.setattr(job, "write_refined", _write_refined_duckdb(s3))
    args = {
        "bucket": bucket,
        "database": database,
        "data_carteiras": ",".join(d.isoformat() for d in dates),
        "JOB_RUN_ID": run_id,
        "force": "true" if force else "false",
    }
    return job.run_job(NoSpark(), s3, glue, args, processado_em=datetime.now(UTC))
