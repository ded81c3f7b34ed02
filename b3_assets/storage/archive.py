"""The raw archive: what B3 sent for each portfolio date, verbatim, with a manifest.

Layout: ``raw/ibov/dt=YYYY-MM-DD/<fetched-at>-<digest>/<files>`` and ``manifest.json``,
written last (B3's views of the period the same way under their own prefixes,
``raw/ibov_teorica/`` and ``raw/ibov_previa/``, by trading date of capture), so a folder
without a manifest is an interrupted write and is ignored.
Storing a payload equal to one already archived is a no-op; a different payload for the same
date is kept beside the others (history is never silently replaced) and reported, and the
newest one is the one landing is built from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from b3_assets.source.errors import B3PermanentError
from b3_assets.source.payload import RawPayload
from b3_assets.storage.lake import Lake
from glue.layout import RAW_PREFIX

MANIFEST = "manifest.json"


class ArchiveCorruptError(B3PermanentError):
    """An archived payload that cannot be trusted: retrying cannot heal it, a person must."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"raw archive {where} is corrupt: {problem}")


def raw_date_prefix(data_carteira: date, prefix: str = RAW_PREFIX) -> str:
    return f"{prefix}/dt={data_carteira.isoformat()}"


@dataclass(frozen=True)
class ArchivedPayload:
    """One archived payload of a date: its folder key and its manifest."""

    prefix: str
    manifest: dict

    @property
    def digest(self) -> str:
        return str(self.manifest["digest"])

    @property
    def fetched_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["fetched_at"])


@dataclass(frozen=True)
class StoreOutcome:
    """What :meth:`RawArchive.store` did."""

    archived: ArchivedPayload
    new: bool
    #: Other, different payloads already archived for the same date.
    others: tuple[ArchivedPayload, ...]


class RawArchive:
    """The archive under ``prefix`` (``raw/ibov``: the day's portfolio; ``raw/ibov_teorica``,
    ``raw/ibov_previa``: the period views). ``date_field``: the manifest's name for the
    folder's date (``data_carteira``; ``data_captura`` for views B3 does not date).
    ``sub``: a folder under each date's (``raw/indices/dt=D/indice=SMLL/``), so the many
    archives of one date (every index's portfolio) are listed together."""

    def __init__(self, lake: Lake, prefix: str = RAW_PREFIX,
                 date_field: str = "data_carteira", sub: str = "") -> None:
        self.lake = lake
        self.prefix = prefix.strip("/")
        self.date_field = date_field
        self.sub = sub.strip("/")

    def date_prefix(self, data_carteira: date) -> str:
        """The folder of one date's payloads (``raw/ibov/dt=D``, ``raw/indices/dt=D/…``)."""
        prefix = raw_date_prefix(data_carteira, self.prefix)
        return f"{prefix}/{self.sub}" if self.sub else prefix

    def entries(self, data_carteira: date) -> list[ArchivedPayload]:
        """Every complete payload archived for the date, oldest first."""
        prefix = self.date_prefix(data_carteira)
        found = []
        for key in self.lake.list_keys(prefix + "/"):
            if key.endswith("/" + MANIFEST):
                try:
                    manifest = json.loads(self.lake.read_bytes(key))
                    missing = {"fetched_at", "digest", "files"} - set(manifest)
                    if missing:
                        raise KeyError(f"no {', '.join(sorted(missing))}")
                    datetime.fromisoformat(manifest["fetched_at"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ArchiveCorruptError(
                        self.lake.uri(key),
                        f"the manifest is unreadable ({type(exc).__name__}: {exc}); delete "
                        f"{self.lake.uri(key.rsplit('/', 1)[0])} and fetch or import the date "
                        "again",
                    ) from exc
                found.append(ArchivedPayload(key.rsplit("/", 1)[0], manifest))
        return sorted(found, key=lambda e: (e.fetched_at, e.digest))

    def dates(self) -> list[date]:
        """Portfolio dates with at least one folder in the archive."""
        return [
            date.fromisoformat(f.removeprefix("dt="))
            for f in self.lake.list_folders(self.prefix)
            if f.startswith("dt=")
        ]

    def latest(self, data_carteira: date) -> RawPayload | None:
        entries = self.entries(data_carteira)
        return self.load(entries[-1]) if entries else None

    def load(self, entry: ArchivedPayload) -> RawPayload:
        m = entry.manifest
        files = tuple(
            (f["name"], self.lake.read_bytes(f"{entry.prefix}/{f['name']}")) for f in m["files"]
        )
        payload = RawPayload(m["source"], m["url"], datetime.fromisoformat(m["fetched_at"]), files)
        if payload.digest != entry.digest:
            raise ArchiveCorruptError(
                self.lake.uri(entry.prefix),
                "its files do not match the digest in its manifest. Delete the folder and fetch "
                "or import that date again.",
            )
        return payload

    def store(self, payload: RawPayload, data_carteira: date,
              notes: Mapping[str, Any] | None = None) -> StoreOutcome:
        """Archive ``payload`` as the date's portfolio (the caller has validated it).

        ``notes``: more manifest fields, kept with the payload (an enrichment it lacks or
        fills: b3_assets/portfolio/enrichments.py)."""
        entries = self.entries(data_carteira)
        content = [hashlib.sha256(data).hexdigest() for _, data in payload.files]
        for entry in entries:
            if [f["sha256"] for f in entry.manifest["files"]] == content:
                # The same bytes (under any file name) are the same payload: archived once.
                others = tuple(e for e in entries if e is not entry)
                return StoreOutcome(entry, False, others)
        stamp = payload.fetched_at.strftime("%Y%m%dT%H%M%S%fZ")
        prefix = f"{self.date_prefix(data_carteira)}/{stamp}-{payload.digest[:12]}"
        manifest = {
            self.date_field: data_carteira.isoformat(),
            "source": payload.source,
            "url": payload.url,
            "fetched_at": payload.fetched_at.isoformat(),
            "digest": payload.digest,
            "files": [
                {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in payload.files
            ],
            **(notes or {}),
        }
        for name, data in payload.files:
            self.lake.write_bytes(f"{prefix}/{name}", data)
        self.lake.write_bytes(
            f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode()
        )
        return StoreOutcome(ArchivedPayload(prefix, manifest), True, tuple(entries))
