"""The one storage layer under the Glue job, the serving copy, the marts' store and the local
runner: atomic local writes and locks, and S3's listing, conditional put and delete.

stdlib and boto3 only, as the Glue job ships it. Nothing half-written is ever visible: a local
write goes through a hidden temporary file renamed into place, an S3 PUT is atomic, and the
conditional forms let concurrent writers find out instead of overwriting each other."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from glue.layout import LANDING_PREFIX, landing_date_from_key

# --- a folder -------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write through a hidden temporary file, fsync, rename: readers see old or new bytes.

    ``fsync=False`` for a run's issuer files: a killed process loses nothing the kernel has,
    and they are invisible until the (fsynced) pointer names them; 85 fsyncs per date would
    cost more than the refine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temp_files(folder: Path) -> None:
    """The hidden temporary files :func:`write_atomic` leaves in ``folder`` when its process
    is killed mid-write (``.<name>.<hex>.tmp``). Only for a caller that holds the folder's
    writers off (its lock): a live writer's temporary file would go too."""
    for leftover in folder.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock held by this process until the block ends (or the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def file_sha256(path: Path) -> str | None:
    """The file's sha256 (its version, as an ETag is an object's), None when absent."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


# --- a bucket -------------------------------------------------------------------------------

#: DeleteObjects' limit (and a listing page's size).
DELETE_OBJECTS_MAX = 1000
#: S3 answers these when a conditional write's condition fails (409: a concurrent one won).
CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
#: S3's answers for an object that is not there.
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_CONDITION_HEADERS = {"IfNoneMatch": "If-None-Match", "IfMatch": "If-Match"}


def s3_error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ("" for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[Mapping[str, Any]]:
    """Every object under ``prefix`` as ListObjectsV2 describes it (Key, ETag, LastModified)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [obj["Key"] for obj in list_objects(s3, bucket, prefix)]


def delete_keys(s3: Any, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` (DeleteObjects, 1000 a call); raises on any key S3 refuses to delete."""
    for start in range(0, len(keys), DELETE_OBJECTS_MAX):
        objects = [{"Key": k} for k in keys[start : start + DELETE_OBJECTS_MAX]]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        if response.get("Errors"):
            raise RuntimeError(f"S3 refused to delete from s3://{bucket}: {response['Errors']}")


def head_object(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HeadObject's answer, None when the object is absent."""
    try:
        return dict(s3.head_object(Bucket=bucket, Key=key))
    except Exception as exc:
        if s3_error_code(exc) in NOT_FOUND:
            return None
        raise


def _with_conditions(s3: Any, operation: str, call: Any, params: Mapping[str, Any],
                     conditions: Mapping[str, str], native: bool | None = None) -> Any:
    """``call(**params, **conditions)``; botocore older than the conditional parameters
    (Glue 5.0 ships an older boto3 than the dev venv) rejects them, so then the headers are
    added at signing instead (``native`` forces one way: tests)."""
    if native is None:
        members = s3.meta.service_model.operation_model(operation).input_shape.members
        native = all(name in members for name in conditions)
    if native:
        return call(**params, **conditions)
    headers = {_CONDITION_HEADERS[name]: value for name, value in conditions.items()}

    def add_headers(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            del request.headers[name]  # an email.message-like mapping: set appends
            request.headers[name] = value

    event = f"before-sign.s3.{operation}"
    s3.meta.events.register(event, add_headers)
    try:
        return call(**params)
    finally:
        s3.meta.events.unregister(event, add_headers)


def put_conditional(
    s3: Any,
    bucket: str,
    key: str,
    body: bytes,
    *,
    if_none_match: bool = False,
    if_match: str | None = None,
    metadata: Mapping[str, str] | None = None,
    native: bool | None = None,
) -> str | None:
    """PutObject only if ``key`` is absent (``if_none_match``) or still has ETag ``if_match``;
    returns the new ETag, or None when the condition failed (another writer was first)."""
    conditions = {"IfNoneMatch": "*"} if if_none_match else {}
    if if_match is not None:
        conditions["IfMatch"] = if_match
    params = {"Bucket": bucket, "Key": key, "Body": body, "Metadata": dict(metadata or {})}
    try:
        put = _with_conditions(s3, "PutObject", s3.put_object, params, conditions, native)
        return str(put["ETag"])
    except Exception as exc:
        if s3_error_code(exc) in CONDITION_FAILED:
            return None
        raise


def delete_conditional(s3: Any, bucket: str, key: str, etag: str) -> bool:
    """DeleteObject only while ``key`` still has ``etag`` (``If-Match``); False when it
    changed or is gone."""
    try:
        _with_conditions(s3, "DeleteObject", s3.delete_object, {"Bucket": bucket, "Key": key},
                         {"IfMatch": etag})
        return True
    except Exception as exc:
        if s3_error_code(exc) in CONDITION_FAILED | NOT_FOUND:
            return False
        raise


@dataclass(frozen=True)
class LandingObject:
    """A landing file as the bucket lists it: its ETag (the fingerprint a published date
    records its inputs by) and when it was written."""

    etag: str
    last_modified: datetime


def landing_objects(s3: Any, bucket: str) -> dict[date, LandingObject]:
    """Every landing file of the bucket by trading date, ascending (one listing)."""
    found: dict[date, LandingObject] = {}
    for obj in list_objects(s3, bucket, f"{LANDING_PREFIX}/dt="):
        day = landing_date_from_key(obj["Key"])
        if day is not None:
            modified = obj.get("LastModified") or datetime.now(UTC)
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            found[day] = LandingObject(obj["ETag"].strip('"'), modified)
    return dict(sorted(found.items()))
