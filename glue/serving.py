"""The serving copy on S3: one Parquet file per year, so history reads a few objects, not 64k.

Why. The refined layout (``refined/DataCarteira=D/Acao=X/run=<id>/``, fixed by the design) holds
one small object per issuer and date: at three years, 750 dates × ~85 issuers ≈ 64,000
objects. Athena opens every object of the partitions a query keeps, so an issuer's 3-year
history opens ~750 objects (one per date) and a full scan ~64,000. The serving copy is the
same rows, DataCarteira and Acao as ordinary columns, one object per year, catalogued as
``b3_etl_soma_acao_historico`` (partition ``ano``): an issuer's history and a full scan
both open 3 objects for 3 years (a year is ~21k rows: ~70 KB of ZSTD Parquet on generated
data, well under 1 MB). It is the S3 twin of the local
``serving/b3_etl_soma_acao/ano=YYYY.parquet`` (glue/local_job.py).

How a year is patched (:func:`patch_serving`, called by the Glue job after it published its
dates; boto3 and pyarrow only, no Spark: a year is small). Under the year's lock:

1. the refined catalog is the truth: the year's ``b3_etl_soma_acao`` partitions say which run
   published each date (the ``run=<id>`` of their locations);
2. the year's current file is the one the ``ano=YYYY`` partition points at; its Parquet
   metadata records the run each of its dates came from (a corrupt file, named in a warning,
   holds no date: every date of the year is re-read, so it is rebuilt);
3. every date whose run differs (just republished, or published by a run killed before its
   serving patch) is re-read from its refined partitions (or taken from ``fresh`` rows the
   caller already holds), dates no longer published are dropped, the rest is kept;
4. ONE new file is written under a name of its own
   (``serving/b3_etl_soma_acao/ano=YYYY/run=<run id>-<8 hex>/ano=YYYY.parquet``), the
   partition is repointed to its folder in one UpdatePartition (CreatePartition the first
   time). The file it replaced is kept: a query planned before the repoint may still read it
   (Athena plans from the catalog, reads later); it is deleted by a later patch once it has
   been superseded for longer than :data:`RETIRE_AFTER` (longer than any query may run).

Athena therefore reads the old year file or the new one, never a mix, and a run killed at any
step leaves the previous version readable; the next run touching the year finishes the job
(step 3 is the repair, like local_job.sync_serving: the run id stands for processado_em,
being one per run, and the catalog already holds it, so no file is read to compare).

Concurrency. Runs of one date are serialized by the job (glue/job.py), but runs of two dates
of one year are not, and a read-modify-write of the year file would lose one of them. So a
year is patched under a lock object, ``serving/_locks/b3_etl_soma_acao/ano=YYYY.lock``, taken
with an S3 conditional write (PutObject ``If-None-Match: *``: exactly one writer creates it).
A lock older than its lease (a run killed while holding it; a patch takes seconds) is taken
over with PutObject ``If-Match: <its ETag>``, so two waiters cannot both take it. The lease is
never renewed, so the holder commits only within the first half of it (:func:`check_lease`:
still its own object and less than half the lease since it took it; a taker needs the whole
lease to pass, so the two never overlap even with a slow repoint), and releases it with a
conditional DeleteObject (``If-Match: <its ETag>``): a taken-over lock is never deleted. A second
run waiting on the lock then sees the first run's dates (step 3) and adds its own.
Optimistic concurrency on the file alone was not enough: the partition repoint is a
separate call, and two runs could repoint in the opposite order of their writes.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from glue.catalog import ensure_database, table_input
from glue.layout import (
    REFINED_COLUMNS,
    RUN_ID_PATTERN,
    SERVING_PARTITION,
    SERVING_PREFIX,
    SERVING_TABLE_NAME,
    TABLE_NAME,
    refined_date_prefix,
    serving_lock_key,
    serving_version_key,
    serving_year_prefix,
)
from glue.storage import (
    delete_conditional,
    delete_keys,
    head_object,
    list_keys,
    list_objects,
    put_conditional,
    s3_error_code,
)
from glue.transform import REFINED_FILE_SCHEMA, REFINED_SCHEMA

log = logging.getLogger(__name__)

#: Parquet key-value metadata of a serving file: {DataCarteira: run that published it}.
RUNS_METADATA = b"b3.serving.runs"
WRITER_METADATA = b"b3.serving.written_by"
READ_WORKERS = 10  # parallel GETs of refined objects: boto3's default connection pool size


#: How long a superseded file stays readable: longer than the Athena workgroup's query
#: timeout (the DML query timeout quota, 30 minutes by default), so a query planned before a
#: repoint never finds its files gone (HIVE_CANNOT_OPEN_SPLIT / NoSuchKey).
RETIRE_AFTER = timedelta(hours=1)


class LockLost(RuntimeError):
    """The lock was taken over, or half its lease passed, before this run committed."""


@dataclass(frozen=True)
class LockPolicy:
    """How long a lock lasts and how long to wait for one (injectable clocks for tests).

    The lease bounds how long a killed holder blocks the year; a patch, even one re-reading
    a whole year, takes well under a minute, and the holder re-checks before it repoints."""

    lease: timedelta = timedelta(minutes=10)
    wait_s: float = 12 * 60.0  # longer than the lease: a dead holder's lock is always taken over
    poll_s: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Lease:
    """A held lock: its key, the ETag this run wrote it with, and when (``policy.clock``)."""

    bucket: str
    key: str
    etag: str
    owner: str
    acquired: float = 0.0


@dataclass(frozen=True)
class YearPatch:
    """What one year's patch did (JSON-friendly through dataclasses.asdict)."""

    year: int
    key: str | None  # the year's file now (None: the year has no rows)
    patched: list[str]  # dates whose rows were replaced or added
    removed: list[str]  # dates no longer published, dropped
    skipped: list[str]  # dates whose refined files vanished mid-read: left for the next run
    rows: int
    objects_removed: int


# --- S3 helpers ----------------------------------------------------------------------------


def _key_of(bucket: str, location: str) -> str:
    """``s3://bucket/a/b/`` -> ``a/b/`` (a location in another bucket is refused)."""
    head = f"s3://{bucket}/"
    if not location.startswith(head):
        raise ValueError(f"location {location!r} is not in s3://{bucket}/")
    key = location.removeprefix(head)
    return key if key.endswith("/") else key + "/"


# --- the year lock -------------------------------------------------------------------------


def acquire_year_lock(
    s3: Any, bucket: str, year: int, owner: str, policy: LockPolicy | None = None
) -> Lease:
    """Take the year's lock (see the module docstring); raises TimeoutError after
    ``policy.wait_s`` while a live holder keeps it, having written nothing."""
    return acquire_lock(s3, bucket, serving_lock_key(year), owner, f"serving year {year}", policy)


def acquire_lock(
    s3: Any, bucket: str, key: str, owner: str, what: str, policy: LockPolicy | None = None
) -> Lease:
    """Take the lock object ``key`` (conditional write; a lock older than the lease is taken
    over by a conditional overwrite); raises TimeoutError after ``policy.wait_s`` while a live
    holder keeps it, having written nothing. ``what`` names the lock in messages."""
    policy = policy or LockPolicy()
    body = json.dumps({"owner": owner, "acquired_at": policy.now().isoformat()}).encode()
    deadline = policy.clock() + policy.wait_s
    while True:
        started = policy.clock()
        etag = put_conditional(s3, bucket, key, body, if_none_match=True, metadata={"owner": owner})
        if etag is not None:
            return Lease(bucket, key, etag, owner, started)
        held = head_object(s3, bucket, key)
        if held is None:
            continue  # released meanwhile: try again at once
        holder = held.get("Metadata", {}).get("owner", "?")
        if policy.now() - held["LastModified"] > policy.lease:
            etag = put_conditional(
                s3, bucket, key, body, if_match=held["ETag"], metadata={"owner": owner}
            )
            if etag is not None:
                log.warning("took over the stale lock s3://%s/%s of %s", bucket, key, holder)
                return Lease(bucket, key, etag, owner, started)
            continue  # another waiter took it over first
        if policy.clock() >= deadline:
            raise TimeoutError(
                f"run {owner} waited {policy.wait_s:.0f} s for the lock of {what} "
                f"(s3://{bucket}/{key}, held by {holder}); nothing was written. Start it again "
                "once that run is done (or stop it in the Glue console)"
            )
        log.info("%s is locked by %s; waiting", what, holder)
        policy.sleep(policy.poll_s)


def still_held(s3: Any, lease: Lease) -> bool:
    """True while the lock object is the one this run wrote (not taken over)."""
    held = head_object(s3, lease.bucket, lease.key)
    return held is not None and held.get("ETag") == lease.etag


def check_lease(s3: Any, lease: Lease, policy: LockPolicy | None = None) -> None:
    """Raise :class:`LockLost` unless the lock is still this run's and less than half its
    lease has passed since it was taken: the lease is never renewed, and a taker waits the
    whole lease, so a commit in the first half cannot overlap the next holder's."""
    policy = policy or LockPolicy()
    elapsed = policy.clock() - lease.acquired
    if elapsed > policy.lease.total_seconds() / 2:
        raise LockLost(
            f"{lease.owner} held s3://{lease.bucket}/{lease.key} for {elapsed:.0f} s, past half "
            f"its {policy.lease.total_seconds():.0f} s lease: it did not commit; run it again"
        )
    if not still_held(s3, lease):
        raise LockLost(
            f"s3://{lease.bucket}/{lease.key} was taken over from {lease.owner}: it did not "
            "commit; run it again"
        )


def release_year_lock(s3: Any, lease: Lease) -> None:
    """Delete the lock only if it is still this run's: one conditional DeleteObject
    (``If-Match``), so a lock taken over between a check and the delete is never deleted."""
    if not delete_conditional(s3, lease.bucket, lease.key, lease.etag):
        log.warning("lock s3://%s/%s was taken over before release", lease.bucket, lease.key)


release_lock = release_year_lock


@contextmanager
def year_lock(
    s3: Any, bucket: str, year: int, owner: str, policy: LockPolicy | None = None
) -> Iterator[Lease]:
    """Hold the year's lock for the block; released even when the block raises."""
    lease = acquire_year_lock(s3, bucket, year, owner, policy)
    try:
        yield lease
    finally:
        release_year_lock(s3, lease)


# --- the catalog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Historico:
    """Where the serving table lives, and the StorageDescriptor its partitions copy."""

    bucket: str
    database: str
    storage_descriptor: Mapping[str, Any]


def historico_table_input(location: str) -> dict[str, Any]:
    """The TableInput of ``b3_etl_soma_acao_historico``: every refined column as data (Glue
    lowercases names; Athena matches Parquet's DataCarteira/Acao case-insensitively),
    partitioned by ``ano`` (string YYYY), each partition the folder of one year file."""
    spec = table_input(SERVING_TABLE_NAME, location)
    spec["Description"] = (
        "IBOV theoretical portfolio per issuer and date, one file per year (b3-pipeline "
        "serving copy of b3_etl_soma_acao: read history here)"
    )
    spec["Parameters"] = {**spec["Parameters"], "parquet.compression": "ZSTD"}
    spec["PartitionKeys"] = [
        {"Name": SERVING_PARTITION, "Type": "string", "Comment": "Year of DataCarteira, YYYY"}
    ]
    spec["StorageDescriptor"]["Columns"] = [
        {"Name": c.name.lower(), "Type": c.glue_type, "Comment": c.comment} for c in REFINED_COLUMNS
    ]
    return spec


def _shape(spec: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    columns = spec.get("StorageDescriptor", {}).get("Columns", [])
    keys = spec.get("PartitionKeys", [])
    return [(c["Name"], c["Type"]) for c in columns], [k["Name"] for k in keys]


def ensure_historico_table(glue: Any, database: str, bucket: str) -> Historico:
    """Create the serving table, or update it when its columns differ from the contract
    (a column added to REFINED_COLUMNS); each partition copies the new columns at its next
    repoint. IAM: glue:GetTable, CreateTable, UpdateTable (GetDatabase, CreateDatabase)."""
    spec = historico_table_input(f"s3://{bucket}/{SERVING_PREFIX}/")
    try:
        table = glue.get_table(DatabaseName=database, Name=SERVING_TABLE_NAME)["Table"]
    except glue.exceptions.EntityNotFoundException:
        table = None
    if table is not None:
        if _shape(table) == _shape(spec):
            return Historico(bucket, database, table["StorageDescriptor"])
        sd = {**table["StorageDescriptor"], "Columns": spec["StorageDescriptor"]["Columns"]}
        glue.update_table(DatabaseName=database, TableInput={**spec, "StorageDescriptor": sd})
        log.info("updated the columns of Glue table %s.%s", database, SERVING_TABLE_NAME)
        return Historico(bucket, database, sd)
    ensure_database(glue, database)
    try:
        glue.create_table(DatabaseName=database, TableInput=spec)
        log.info("created Glue table %s.%s", database, SERVING_TABLE_NAME)
    except glue.exceptions.AlreadyExistsException:  # created concurrently
        table = glue.get_table(DatabaseName=database, Name=SERVING_TABLE_NAME)["Table"]
        return Historico(bucket, database, table["StorageDescriptor"])
    return Historico(bucket, database, spec["StorageDescriptor"])


def _year_value(year: int) -> str:
    return f"{year:04d}"


def _point_year(glue: Any, historico: Historico, year: int, location: str, exists: bool) -> None:
    """Repoint (or create) the year's partition: one call, so readers switch files at once."""
    sd = copy.deepcopy(dict(historico.storage_descriptor))
    sd["Location"] = location
    partition = {"Values": [_year_value(year)], "StorageDescriptor": sd}
    names = {"DatabaseName": historico.database, "TableName": SERVING_TABLE_NAME}
    if exists:
        glue.update_partition(
            **names, PartitionValueList=[_year_value(year)], PartitionInput=partition
        )
    else:
        glue.create_partition(**names, PartitionInput=partition)


_RUN_IN_LOCATION = re.compile(r"/run=([^/]+)/?$")


def run_of(locations: Iterable[str]) -> str:
    """The run a date's partitions point at (``…/run=<id>/``); one per date as the job
    publishes, several joined by commas otherwise (never equal to a single run)."""
    runs = {m.group(1) if (m := _RUN_IN_LOCATION.search(loc)) else loc for loc in locations}
    return ",".join(sorted(runs))


def published_dates(glue: Any, database: str, year: int) -> dict[str, dict[str, str]]:
    """The year's published refined dates: DataCarteira -> {Acao: location}, from the
    ``b3_etl_soma_acao`` partitions (the truth the serving copy follows)."""
    y = _year_value(year)
    expression = f"datacarteira >= '{y}-01-01' AND datacarteira <= '{y}-12-31'"
    found: dict[str, dict[str, str]] = {}
    paginator = glue.get_paginator("get_partitions")
    pages = paginator.paginate(
        DatabaseName=database, TableName=TABLE_NAME, Expression=expression, ExcludeColumnSchema=True
    )
    try:
        for page in pages:
            for p in page.get("Partitions", []):
                values = p.get("Values", [])
                if len(values) == 2 and values[0].startswith(f"{y}-"):
                    found.setdefault(values[0], {})[values[1]] = p["StorageDescriptor"]["Location"]
    except glue.exceptions.EntityNotFoundException:
        return {}  # no refined table yet: nothing published
    return found


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """The year's current serving file as the catalog points at it."""

    location: str | None  # the partition's folder; None: no partition yet
    keys: list[str]
    table: pa.Table  # REFINED_SCHEMA
    runs: dict[str, str]  # DataCarteira -> run its rows came from (the file's metadata)


def read_served(s3: Any, glue: Any, historico: Historico, year: int) -> Served:
    """The rows and run record of the file the ``ano=YYYY`` partition points at."""
    try:
        partition = glue.get_partition(
            DatabaseName=historico.database,
            TableName=SERVING_TABLE_NAME,
            PartitionValues=[_year_value(year)],
        )["Partition"]
    except glue.exceptions.EntityNotFoundException:
        return Served(None, [], REFINED_SCHEMA.empty_table(), {})
    location = partition["StorageDescriptor"]["Location"]
    folder = _key_of(historico.bucket, location)
    keys = [k for k in list_keys(s3, historico.bucket, folder) if k.endswith(".parquet")]
    tables, runs = [], {}
    for key in keys:
        body = s3.get_object(Bucket=historico.bucket, Key=key)["Body"].read()
        try:
            table = pq.read_table(io.BytesIO(body))
            found = json.loads((table.schema.metadata or {}).get(RUNS_METADATA, b"{}"))
            rows = conform(table, REFINED_SCHEMA)
        except (OSError, ValueError, KeyError) as exc:  # ArrowInvalid is a ValueError
            # A torn or foreign object: its dates count as not served, so the patch re-reads
            # each from its published partitions (the rebuild) instead of failing the run.
            log.warning(
                "s3://%s/%s is corrupt (%s): serving year %d is rebuilt from the published "
                "refined partitions of its dates", historico.bucket, key,
                str(exc).splitlines()[0][:200], year)  # fmt: skip
            continue
        runs.update(found)
        tables.append(rows)
    rows = pa.concat_tables(tables) if tables else REFINED_SCHEMA.empty_table()
    return Served(location, keys, rows, runs)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: a column missing from an older file (one
    added to the contract since) is null, as Athena reads it; extra columns are dropped."""
    columns = [
        table.column(f.name).cast(f.type) if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]  # fmt: skip
    return pa.Table.from_arrays(columns, schema=schema)


def _read_refined_object(s3: Any, bucket: str, day: str, acao: str, key: str) -> pa.Table | None:
    """One issuer's refined file as REFINED_SCHEMA rows (the path's DataCarteira and Acao
    become columns); None when it was deleted meanwhile."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if s3_error_code(exc) in {"NoSuchKey", "404"}:
            return None
        raise
    rows = conform(pq.read_table(io.BytesIO(body)), REFINED_FILE_SCHEMA)
    n = rows.num_rows
    rows = rows.append_column("DataCarteira", pa.array([day] * n, pa.string()))
    return rows.append_column("Acao", pa.array([acao] * n, pa.string())).cast(REFINED_SCHEMA)


def read_refined_dates(
    s3: Any, bucket: str, dates: Mapping[str, Mapping[str, str]]
) -> dict[str, pa.Table | None]:
    """The published rows of ``dates`` (DataCarteira -> {Acao: location}): one LIST per date
    and one GET per issuer, in parallel. None for a date whose objects vanished meanwhile
    (a later run republished it; that run patches the year after this one)."""
    days = sorted(dates)
    if not days:
        return {}
    with ThreadPoolExecutor(READ_WORKERS) as pool:

        def listing(day: str) -> list[str]:
            return list_keys(s3, bucket, refined_date_prefix(date.fromisoformat(day)))

        listed = dict(zip(days, pool.map(listing, days), strict=True))
        jobs: list[tuple[str, str, str]] = []
        vanished: set[str] = set()
        for day in days:
            for acao, location in sorted(dates[day].items()):
                folder = _key_of(bucket, location)
                keys = [k for k in listed[day] if k.startswith(folder) and k.endswith(".parquet")]
                if not keys:
                    vanished.add(day)
                jobs.extend((day, acao, k) for k in keys)
        tables = list(pool.map(lambda job: _read_refined_object(s3, bucket, *job), jobs))
    by_day: dict[str, list[pa.Table]] = {}
    for (day, _, _), table in zip(jobs, tables, strict=True):
        if table is None:
            vanished.add(day)
        else:
            by_day.setdefault(day, []).append(table)
    return {d: None if d in vanished else pa.concat_tables(by_day[d]) for d in days}


# --- patching ------------------------------------------------------------------------------


def serving_bytes(table: pa.Table, runs: Mapping[str, str], written_by: str) -> bytes:
    """The year file: rows sorted by (DataCarteira, Acao), ZSTD, the run record in metadata."""
    order = pc.sort_indices(table, [("DataCarteira", "ascending"), ("Acao", "ascending")])
    metadata = {RUNS_METADATA: json.dumps(dict(runs), sort_keys=True), WRITER_METADATA: written_by}
    rows = table.take(order).replace_schema_metadata(metadata)
    buf = io.BytesIO()
    pq.write_table(rows, buf, compression="zstd")
    return buf.getvalue()


def _conform_fresh(day: date, rows: pa.Table) -> pa.Table:
    table = conform(rows, REFINED_SCHEMA)
    if set(table.column("DataCarteira").to_pylist()) - {day.isoformat()}:
        raise ValueError(f"fresh rows given for {day.isoformat()} hold other dates")
    return table


def retirable(
    objects: Mapping[str, datetime],
    keep: str | None,
    replaced: str | None,
    now: datetime,
    after: timedelta = RETIRE_AFTER,
) -> list[str]:
    """The keys of ``objects`` (key -> LastModified) that no query can still be reading.

    Never deleted: folder ``keep`` (the version served now) and folder ``replaced`` (the one it
    replaced just now: a query planned before the repoint reads it). Every other file stopped
    being served (or never was: a killed patch's) no later than the newest of those two was
    written, so they go only once that file is older than ``after``."""
    folders = [f for f in (keep, replaced) if f]
    reference = replaced or keep
    if reference is None:
        return []
    written = [m for k, m in objects.items() if k.startswith(reference)]
    if not written or now - min(written) < after:
        return []
    return sorted(k for k in objects if not any(k.startswith(f) for f in folders))


def _remove_other_versions(
    s3: Any,
    bucket: str,
    year: int,
    keep: str | None,
    replaced: str | None = None,
    now: datetime | None = None,
) -> int:
    """Delete the year's files no query can still read (:func:`retirable`); returns how many."""
    objects = {
        obj["Key"]: obj["LastModified"]
        for obj in list_objects(s3, bucket, serving_year_prefix(year))
    }
    gone = retirable(objects, keep, replaced, now or datetime.now(UTC))
    delete_keys(s3, bucket, gone)
    return len(gone)


def patch_year(
    s3: Any,
    glue: Any,
    historico: Historico,
    run_id: str,
    year: int,
    fresh: Mapping[str, pa.Table],
    lease: Lease,
    policy: LockPolicy | None = None,
) -> YearPatch:
    """Bring the year's serving file in line with the published refined dates (module
    docstring, steps 1-4). Call it holding the year's lock (``lease``)."""
    bucket = historico.bucket
    published = published_dates(glue, historico.database, year)
    served = read_served(s3, glue, historico, year)
    markers = {day: run_of(locations.values()) for day, locations in published.items()}
    served_days = set(served.table.column("DataCarteira").to_pylist()) | set(served.runs)
    stale = sorted(d for d in markers if served.runs.get(d) != markers[d])
    removed = sorted(served_days - set(markers))
    rows: dict[str, pa.Table | None] = {
        d: fresh[d] for d in stale if d in fresh and markers[d] == run_id
    }
    rows.update(read_refined_dates(s3, bucket, {d: published[d] for d in stale if d not in rows}))
    skipped = sorted(d for d, t in rows.items() if t is None)
    patched = sorted(d for d, t in rows.items() if t is not None)
    if not patched and not removed:  # current already: only sweep killed patches' leftovers
        current = _key_of(bucket, served.location) if served.location else None
        swept = _remove_other_versions(s3, bucket, year, current) if current else 0
        key = served.keys[0] if served.keys else None
        return YearPatch(year, key, [], [], skipped, served.table.num_rows, swept)
    replaced = pa.array(patched + removed, pa.string())
    kept = served.table.filter(pc.invert(pc.is_in(served.table.column("DataCarteira"), replaced)))
    table = pa.concat_tables([kept, *(t for d in patched if (t := rows[d]) is not None)])
    runs = {d: r for d, r in served.runs.items() if d not in removed and d not in patched}
    runs.update({d: markers[d] for d in patched})
    key = _commit(s3, glue, historico, year, table, runs, run_id, lease, served, policy)
    replaced = _key_of(bucket, served.location) if served.location else None
    folder = key.rsplit("/", 1)[0] + "/" if key else None
    swept = _remove_other_versions(s3, bucket, year, folder, replaced)
    log.info(
        "serving %d: %d date(s) patched, %d removed, %d skipped; %d rows in %s",
        year, len(patched), len(removed), len(skipped), table.num_rows, key,
    )  # fmt: skip
    return YearPatch(year, key, patched, removed, skipped, table.num_rows, swept)


def _commit(
    s3: Any,
    glue: Any,
    historico: Historico,
    year: int,
    table: pa.Table,
    runs: Mapping[str, str],
    run_id: str,
    lease: Lease,
    served: Served,
    policy: LockPolicy | None = None,
) -> str | None:
    """Write the new version beside the current one and repoint the partition to it (or
    drop the partition when the year is empty); returns the new key. The lock is re-checked
    just before the repoint: a run whose lease expired must not overwrite its taker."""
    key = None
    if table.num_rows:
        key = serving_version_key(year, f"{run_id}-{uuid.uuid4().hex[:8]}")
        body = serving_bytes(table, runs, run_id)
        s3.put_object(Bucket=historico.bucket, Key=key, Body=body)
    try:
        check_lease(s3, lease, policy)
    except LockLost:
        if key:
            delete_keys(s3, historico.bucket, [key])  # never served: no reader holds it
        raise
    if key:
        folder = f"s3://{historico.bucket}/{key.rsplit('/', 1)[0]}/"
        _point_year(glue, historico, year, folder, exists=served.location is not None)
    elif served.location is not None:
        glue.delete_partition(
            DatabaseName=historico.database,
            TableName=SERVING_TABLE_NAME,
            PartitionValues=[_year_value(year)],
        )
    return key


def patch_serving(
    s3: Any,
    glue: Any,
    *,
    bucket: str,
    database: str,
    run_id: str,
    years: Iterable[int] = (),
    fresh: Mapping[date, pa.Table] | None = None,
    policy: LockPolicy | None = None,
) -> list[YearPatch]:
    """Patch the serving copy of each year in ``years`` (and of ``fresh``'s dates), one year
    at a time under its lock; returns what each year's patch did.

    ``fresh`` holds rows this run published (REFINED_SCHEMA, by date): used instead of
    re-reading those dates' refined objects when the catalog still names ``run_id`` for them.
    Every other date of the year that is missing or stale in the serving file is re-read
    from its refined partitions (the repair). IAM: see the module's callers (README)."""
    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        raise ValueError(f"run id {run_id!r} does not match {RUN_ID_PATTERN}")
    given = {day.isoformat(): _conform_fresh(day, rows) for day, rows in (fresh or {}).items()}
    wanted = sorted(set(years) | {int(day[:4]) for day in given})
    if not wanted:
        return []
    historico = ensure_historico_table(glue, database, bucket)
    patches = []
    for year in wanted:
        with year_lock(s3, bucket, year, run_id, policy) as lease:
            patches.append(patch_year(s3, glue, historico, run_id, year, given, lease, policy))
    return patches
