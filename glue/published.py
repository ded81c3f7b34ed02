"""What the bucket says is published: the landing files (by ETag) and each date's
``refined/DataCarteira=D/_current.json`` (which run published it, from which inputs), and the
dates whose refine is missing or stale. Read by the Glue job and by Dagster (the sensor, the
reconciliation, the marts' plan), which never import the job's entry module for it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from glue.layout import refined_current_key
from glue.storage import landing_objects
from glue.transform import stale_among

log = logging.getLogger(__name__)


def list_landing(s3_client: Any, bucket: str) -> dict[date, str]:
    """Landing files in the bucket by trading date, ascending: each file's ETag, the
    fingerprint a published date records its inputs by (:func:`publication_inputs`)."""
    return {d: obj.etag for d, obj in landing_objects(s3_client, bucket).items()}


def published_record(s3_client: Any, bucket: str, data_carteira: date) -> dict[str, Any] | None:
    """The date's ``_current.json`` (which run published it, from which inputs), or None."""
    key = refined_current_key(data_carteira)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        return None
    try:
        record = json.loads(body)
    except ValueError:
        log.warning("unreadable s3://%s/%s: the date counts as unpublished", bucket, key)
        return None
    return record if isinstance(record, dict) else None


def write_published_record(
    s3_client: Any, bucket: str, data_carteira: date, record: Mapping[str, Any]
) -> None:
    """Record which run published the date and from which landing files (after the repoint:
    a run that dies before it leaves the date stale, so the reconciliation refines it)."""
    s3_client.put_object(
        Bucket=bucket,
        Key=refined_current_key(data_carteira),
        Body=json.dumps(record, indent=1).encode(),
        ContentType="application/json",
    )


def stale_dates(
    s3_client: Any, bucket: str, is_session: Callable[[date], bool] | None = None
) -> list[date]:
    """Landing dates of the bucket whose published refine is missing or stale
    (:func:`stale_among`): what a lost landing event, a killed run or a gap filled before
    a date leaves behind. One listing and one small GET per date (10 at a time: the client's
    connection pool)."""
    landing = {
        d: etag
        for d, etag in list_landing(s3_client, bucket).items()
        if is_session is None or is_session(d)
    }
    with ThreadPoolExecutor(max_workers=10) as pool:
        records = dict(
            zip(
                landing,
                pool.map(lambda d: published_record(s3_client, bucket, d), landing),
                strict=True,
            )
        )
    return stale_among(landing, records.get, "etag")
