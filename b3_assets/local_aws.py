"""The AWS event path played locally: S3's "Object Created" event, the Lambda, a Glue runner.

With ``B3_ENV=local`` the folder lake emits the EventBridge event S3 would after a landing
write, the same ``lambda_handler`` code decides, and :class:`LocalGlueRunner` executes the
refine on DuckDB and records runs shaped like Glue JobRuns (what the sensor watches)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import quote_plus


def object_created_event(
    bucket: str,
    key: str,
    *,
    event_id: str | None = None,
    time: dt.datetime | None = None,
    encode_key: bool = True,
) -> dict[str, Any]:
    """The EventBridge event S3 emits after a write of ``bucket``/``key``.

    The key is URL-encoded as in S3 notifications (``" "`` -> ``+``, ``=`` -> ``%3D``, ``/``
    kept) unless ``encode_key`` is false, so callers exercise the decoding real events need.
    """
    when = (time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": quote_plus(key, safe="/") if encode_key else key,
                "size": 0,
                "etag": "",
                "sequencer": f"{int(when.timestamp() * 1_000_000):018X}",
            },
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": "000000000000",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }
