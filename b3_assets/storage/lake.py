"""The lake: a local folder or an S3 bucket, with the same relative keys (docs/contracts.md).

Writes are atomic in both: a local write goes to a hidden temporary file in the target folder
and is renamed into place; an S3 PUT is atomic by nature. No reader ever sees half a file.
The local lake also plays S3's part in the event path: after each object it writes, it emits
the EventBridge "Object Created" event S3 would, to whoever listens (the local Lambda)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from glue.storage import file_sha256, list_keys, locked, put_conditional, write_atomic

#: Called after each write with (bucket, key, tags): S3's "Object Created" event.
ObjectCreatedListener = Callable[[str, str, dict[str, str]], None]

LOCAL_BUCKET = "local-lake"


class LakeError(RuntimeError):
    """The lake could not be read or written."""


class Lake(ABC):
    """What the pipeline needs from storage; keys are relative (``landing/ibov/dt=…``)."""

    bucket: str

    @abstractmethod
    def uri(self, key: str = "") -> str: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, tags: dict[str, str] | None = None) -> None:
        """Write one object atomically; ``tags`` become S3 object tags (locally: handed to the
        write's listeners, as the Lambda reads them from S3)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix``, sorted."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """The object's bytes and version (on S3 its ETag, in a folder its sha256), or
        (None, None) when absent: what :meth:`write_if_unchanged` compares."""

    @abstractmethod
    def write_if_unchanged(self, key: str, data: bytes, version: str | None) -> bool:
        """Write ``key`` only while it still has ``version`` (None: while it is absent);
        False when another writer changed it first (read it again and retry)."""

    @abstractmethod
    def serialized(self, prefix: str) -> contextlib.AbstractContextManager[None]:
        """Writers of ``prefix`` one at a time for the block, where the lake can lock (a
        folder: ``<prefix>/.lock``); a bucket cannot, its writers re-check with
        :meth:`write_if_unchanged` instead."""

    def list_folders(self, prefix: str) -> list[str]:
        """The distinct next path segments under ``prefix`` (``dt=2025-03-05``…), sorted."""
        prefix = prefix.rstrip("/") + "/"
        return sorted(
            {
                k[len(prefix) :].split("/", 1)[0]
                for k in self.list_keys(prefix)
                if "/" in k[len(prefix) :]
            }
        )


class LocalLake(Lake):
    """A folder lake (``B3_DATA_DIR``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.bucket = LOCAL_BUCKET
        self._listeners: list[ObjectCreatedListener] = []

    def add_listener(self, listener: ObjectCreatedListener) -> None:
        self._listeners.append(listener)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise LakeError(f"key {key!r} points outside the lake {self.root}")
        return path

    def uri(self, key: str = "") -> str:
        # Not Path.as_uri(): it percent-encodes the "=" of dt=/DataCarteira= folders.
        return "file://" + (self.path(key) if key else self.root).as_posix()

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise LakeError(f"{self.uri(key)} does not exist") from exc

    def write_bytes(self, key: str, data: bytes, tags: dict[str, str] | None = None) -> None:
        write_atomic(self.path(key), data)
        for listener in self._listeners:
            listener(self.bucket, key, dict(tags or {}))

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            return None, None
        return data, hashlib.sha256(data).hexdigest()

    def write_if_unchanged(self, key: str, data: bytes, version: str | None) -> bool:
        target = self.path(key)
        with locked(target.with_name(f".{target.name}.lock")):
            if file_sha256(target) != version:
                return False
            self.write_bytes(key, data)
        return True

    def serialized(self, prefix: str) -> contextlib.AbstractContextManager[None]:
        return locked(self.path(prefix) / ".lock")

    def _walk(self, base: Path) -> Iterator[Path]:
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith("."):
                    yield Path(dirpath) / name

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.exists():
            return []
        keys = [p.relative_to(self.root).as_posix() for p in self._walk(base)]
        return sorted(k for k in keys if k.startswith(prefix))


class S3Lake(Lake):
    """A bucket lake (``B3_BUCKET``); works against any S3 endpoint (``AWS_ENDPOINT_URL``)."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise LakeError(f"{self.uri(key)} does not exist") from exc

    def write_bytes(self, key: str, data: bytes, tags: dict[str, str] | None = None) -> None:
        extra = {"Tagging": urlencode(tags)} if tags else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None, None
        return obj["Body"].read(), obj["ETag"]

    def write_if_unchanged(self, key: str, data: bytes, version: str | None) -> bool:
        return put_conditional(self.client, self.bucket, key, data,
                               if_none_match=version is None, if_match=version) is not None

    def serialized(self, prefix: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(list_keys(self.client, self.bucket, prefix))
