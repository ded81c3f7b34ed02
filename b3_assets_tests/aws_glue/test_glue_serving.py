"""The S3 serving copy (glue/serving.py) on moto's server, without Spark: refined rows built by
the DuckDB transform, published as the Glue job publishes them (one object per issuer under
``run=<id>/``, partitions repointed), then the serving patch. Each test has its own bucket and
database (moto's backends are shared by the module's tests)."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.moto_server import MotoServer, unique_name
from glue.catalog import ensure_database, ensure_table, register_partitions
from glue.layout import (
    REFINED_COLUMNS,
    REFINED_PREFIX,
    SERVING_PREFIX,
    SERVING_TABLE_NAME,
    TABLE_NAME,
    refined_date_prefix,
    refined_run_prefix,
    serving_lock_key,
    serving_year_prefix,
)
from glue.serving import (
    RETIRE_AFTER,
    LockLost,
    LockPolicy,
    YearPatch,
    acquire_year_lock,
    check_lease,
    historico_table_input,
    patch_serving,
    release_year_lock,
    retirable,
    run_of,
)
from glue.storage import delete_conditional, put_conditional
from glue.transform import REFINED_FILE_SCHEMA, REFINED_SCHEMA, refine_duckdb

PROCESSADO_EM = datetime(2025, 3, 5, 22, 0, 1, tzinfo=UTC)
FAST = LockPolicy(wait_s=5.0, poll_s=0.05)


@dataclass
class Lake:
    """A bucket and a catalog database of the test's own, the refined table created."""

    s3: Any
    glue: Any
    bucket: str
    database: str
    workdir: Path

    def refine(self, day: date, run_id: str, **landing: Any) -> pa.Table:
        """The refined rows of ``day`` (DuckDB transform; processado_em names the run)."""
        path = write_landing(self.workdir / run_id, landing_table(day, **landing))
        stamp = PROCESSADO_EM + timedelta(seconds=sum(map(ord, run_id)))
        return refine_duckdb(path, None, day, None, stamp)

    def publish(
        self, day: date, rows: pa.Table, run_id: str, without: tuple[str, ...] = ()
    ) -> None:
        """What glue.job.publish_date does: files under run=<id>/, partitions repointed,
        the date's other objects deleted (``without``: columns an older job did not write)."""
        acoes = rows.column("Acao")
        locations = {
            a: f"s3://{self.bucket}/{refined_run_prefix(day, a, run_id)}"
            for a in sorted(set(acoes.to_pylist()))
        }

        def put(acao: str) -> None:
            buf = io.BytesIO()
            one = rows.filter(pc.equal(acoes, acao)).select(REFINED_FILE_SCHEMA.names)
            one = one.cast(REFINED_FILE_SCHEMA).drop_columns(list(without))
            pq.write_table(one, buf, compression="snappy")
            key = f"{refined_run_prefix(day, acao, run_id)}part-00000.c000.snappy.parquet"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=buf.getvalue())

        with ThreadPoolExecutor(8) as pool:  # moto takes ~30 ms a PUT
            list(pool.map(put, locations))
        register_partitions(self.glue, self.database, TABLE_NAME, day, locations)
        mine = tuple(locations[a].removeprefix(f"s3://{self.bucket}/") for a in locations)
        others = [k for k in self.keys(refined_date_prefix(day)) if not k.startswith(mine)]
        if others:
            self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in others]}
            )

    def patch(self, run_id: str, fresh: Mapping[date, pa.Table] | None = None, **kw: Any) -> Any:
        return patch_serving(
            self.s3, self.glue, bucket=self.bucket, database=self.database, run_id=run_id,
            fresh=fresh, policy=kw.pop("policy", FAST), **kw,
        )  # fmt: skip

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def partitions(self, table: str) -> dict[tuple[str, ...], str]:
        pages = self.glue.get_paginator("get_partitions").paginate(
            DatabaseName=self.database, TableName=table
        )
        return {
            tuple(p["Values"]): p["StorageDescriptor"]["Location"]
            for page in pages
            for p in page["Partitions"]
        }

    def objects_read(self, table: str, keep: Callable[[tuple[str, ...]], bool]) -> list[str]:
        """The objects Athena opens for ``table``: every object under the location of each
        partition the query keeps (``keep`` is its partition pruning)."""
        folders = [
            location.removeprefix(f"s3://{self.bucket}/")
            for values, location in self.partitions(table).items()
            if keep(values)
        ]
        prefix = REFINED_PREFIX if table == TABLE_NAME else SERVING_PREFIX
        return [k for k in self.keys(prefix) if k.startswith(tuple(folders))] if folders else []

    def served(self, year: int) -> pa.Table:
        """The year's rows as Athena reads them through b3_etl_soma_acao_historico: the one
        object at the ``ano`` partition's location."""
        (key,) = self.objects_read(SERVING_TABLE_NAME, lambda v: v == (f"{year:04d}",))
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.schema.remove_metadata() == REFINED_SCHEMA
        return table


@pytest.fixture
def lake(moto: MotoServer, tmp_path: Path) -> Lake:
    s3, glue = moto.client("s3"), moto.client("glue")
    bucket, database = unique_name("b3-serving"), f"b3_{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    ensure_database(glue, database)
    ensure_table(glue, database, TABLE_NAME, f"s3://{bucket}/refined/")
    return Lake(s3, glue, bucket, database, tmp_path)


def rows_of(*tables: pa.Table) -> list[dict[str, Any]]:
    """Rows sorted by (DataCarteira, Acao), B3 numbers as Decimal: comparable as they are."""
    rows = [r for t in tables for r in t.to_pylist()]
    return sorted(rows, key=lambda r: (r["DataCarteira"], r["Acao"]))


def only(patches: list[YearPatch], year: int) -> YearPatch:
    (patch,) = [p for p in patches if p.year == year]
    return patch


# --- one file per year ---------------------------------------------------------------------

THREE_YEARS = (
    date(2023, 3, 1), date(2023, 9, 1), date(2024, 3, 1),
    date(2024, 9, 2), date(2025, 3, 5), date(2025, 9, 1),
)  # fmt: skip


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_three_years_serve_from_three_objects(lake: Lake) -> None:
    refined = {
        d: lake.refine(d, "jr_a", drop={"AZUL"} if d.year == 2024 else ()) for d in THREE_YEARS
    }
    for day, rows in refined.items():
        lake.publish(day, rows, "jr_a")

    patches = lake.patch("jr_a", fresh=refined)

    assert [p.year for p in patches] == [2023, 2024, 2025]
    assert all(
        p.patched == [d.isoformat() for d in THREE_YEARS if d.year == p.year] for p in patches
    )
    partitions = lake.partitions(SERVING_TABLE_NAME)
    assert sorted(partitions) == [("2023",), ("2024",), ("2025",)]
    for patch in patches:  # one object per year, the one its partition points at
        assert lake.keys(serving_year_prefix(patch.year)) == [patch.key]
        folder = patch.key.rsplit("/", 1)[0] + "/"
        assert partitions[(f"{patch.year}",)] == f"s3://{lake.bucket}/{folder}"
        assert patch.key.startswith(f"{SERVING_PREFIX}/ano={patch.year}/run=jr_a-")
    served = [lake.served(y) for y in (2023, 2024, 2025)]
    assert rows_of(*served) == rows_of(*refined.values())  # every refined row, nothing else
    assert lake.keys(serving_lock_key(2025)) == []  # locks released

    # What Athena opens. The historico table has only `ano` to prune on, so an issuer's
    # history (WHERE acao = 'PETR') and a full scan both open every year's object: 3. The
    # refined layout prunes to the issuer's partitions: one object per date (~750 at three
    # years), and a full scan opens one per issuer and date (~64k at three years).
    history = lake.objects_read(SERVING_TABLE_NAME, lambda v: True)
    full_scan = lake.objects_read(SERVING_TABLE_NAME, lambda v: True)
    refined_history = lake.objects_read(TABLE_NAME, lambda v: v[1] == "PETR")
    refined_scan = lake.objects_read(TABLE_NAME, lambda v: True)
    assert len(history) == len(full_scan) == 3
    assert len(refined_history) == len(THREE_YEARS)  # one per date
    assert len(refined_scan) == sum(t.num_rows for t in refined.values()) == 6 * 84 - 2
    print(
        f"objects read for 6 dates over 3 years: PETR history {len(refined_history)} -> "
        f"{len(history)}, full scan {len(refined_scan)} -> {len(full_scan)}"
    )

    # A patch with nothing stale writes nothing.
    again = lake.patch("jr_again", years=[2024])
    assert only(again, 2024).patched == [] and only(again, 2024).key == only(patches, 2024).key


def test_a_rerun_of_a_date_replaces_its_rows(lake: Lake) -> None:
    d1, d2 = date(2025, 3, 4), date(2025, 3, 5)
    first = {d: lake.refine(d, "jr_a") for d in (d1, d2)}
    for day, rows in first.items():
        lake.publish(day, rows, "jr_a")
    (before,) = lake.patch("jr_a", fresh=first)

    rerun = lake.refine(d2, "jr_b", drop={"PETR", "BBDC"})
    lake.publish(d2, rerun, "jr_b")
    (after,) = lake.patch("jr_b", fresh={d2: rerun})

    assert (after.patched, after.removed, after.rows) == (["2025-03-05"], [], 84 + 82)
    # The version it replaced stays: a query planned before the repoint still reads it
    # (deleted by a later patch once older than RETIRE_AFTER: test_retirable_*).
    assert lake.keys(serving_year_prefix(2025)) == sorted([before.key, after.key])
    assert after.objects_removed == 0
    served = lake.served(2025)
    assert rows_of(served) == rows_of(first[d1], rerun)
    on_d2 = served.filter(pc.equal(served.column("DataCarteira"), "2025-03-05"))
    assert "PETR" not in on_d2.column("Acao").to_pylist()
    assert set(on_d2.column("processado_em").to_pylist()) == set(
        rerun.column("processado_em").to_pylist()
    )
    meta = served.schema.metadata
    assert meta[b"b3.serving.written_by"] == b"jr_b"


# --- repair --------------------------------------------------------------------------------


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_the_next_run_touching_the_year_repairs_what_killed_runs_left(lake: Lake) -> None:
    d0, d1, d2, d3 = date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 5), date(2025, 3, 6)
    served_before = {d: lake.refine(d, "jr_a") for d in (d0, d1)}
    for day, rows in served_before.items():
        lake.publish(day, rows, "jr_a")
    lake.patch("jr_a", fresh=served_before)
    # Killed between publish and serve-patch: d1 republished (stale in serving), d2 published
    # (missing from serving); a killed patch left a version nobody points at; d0 was taken
    # out of refined (its partitions deleted).
    d1_again = lake.refine(d1, "jr_k1", drop={"VALE"})
    lake.publish(d1, d1_again, "jr_k1")
    d2_rows = lake.refine(d2, "jr_k2")
    lake.publish(d2, d2_rows, "jr_k2")
    leftover = f"{serving_year_prefix(2025)}run=jr_dead-00000000/ano=2025.parquet"
    lake.s3.put_object(Bucket=lake.bucket, Key=leftover, Body=b"half")
    register_partitions(lake.glue, lake.database, TABLE_NAME, d0, {})
    assert rows_of(lake.served(2025)) == rows_of(*served_before.values())  # still the old copy

    d3_rows = lake.refine(d3, "jr_n")
    lake.publish(d3, d3_rows, "jr_n")
    (patch,) = lake.patch("jr_n", fresh={d3: d3_rows})

    assert patch.patched == ["2025-02-28", "2025-03-05", "2025-03-06"]  # two read from refined
    assert (patch.removed, patch.skipped) == (["2025-02-27"], [])
    assert rows_of(lake.served(2025)) == rows_of(d1_again, d2_rows, d3_rows)
    # The replaced version and the leftover stay until the replaced one is RETIRE_AFTER old.
    assert patch.key in lake.keys(serving_year_prefix(2025))
    assert leftover in lake.keys(serving_year_prefix(2025))
    assert patch.objects_removed == 0


def test_files_and_a_table_older_than_the_contract_are_conformed(lake: Lake) -> None:
    """A column added to REFINED_COLUMNS (setor, subsetor) is null in older refined files,
    as Athena reads them, and the historico table gains it at the next patch."""
    newer = [c for c in ("setor", "subsetor") if c in REFINED_FILE_SCHEMA.names]
    if not newer:
        pytest.skip("the contract has no column added since the first refined files")
    spec = historico_table_input(f"s3://{lake.bucket}/{SERVING_PREFIX}/")
    sd = spec["StorageDescriptor"]
    sd["Columns"] = [c for c in sd["Columns"] if c["Name"] not in newer]
    lake.glue.create_table(DatabaseName=lake.database, TableInput=spec)
    day = date(2025, 3, 5)
    rows = lake.refine(day, "jr_old")
    lake.publish(day, rows, "jr_old", without=tuple(newer))

    (patch,) = lake.patch("jr_new", years=[2025])  # not fresh: read from the old files

    assert patch.patched == ["2025-03-05"]
    served = lake.served(2025)
    assert all(served.column(c).null_count == served.num_rows for c in newer)
    assert rows_of(served.drop_columns(newer)) == rows_of(rows.drop_columns(newer))
    table = lake.glue.get_table(DatabaseName=lake.database, Name=SERVING_TABLE_NAME)["Table"]
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert names == [c.name.lower() for c in REFINED_COLUMNS]


def test_run_of_names_the_run_a_date_points_at() -> None:
    base = "s3://b/refined/DataCarteira=2025-03-05"
    assert run_of([f"{base}/Acao=PETR/run=jr_1/", f"{base}/Acao=VALE/run=jr_1"]) == "jr_1"
    assert run_of([f"{base}/Acao=PETR/run=jr_1/", f"{base}/Acao=VALE/run=jr_2/"]) == "jr_1,jr_2"


# --- concurrency ---------------------------------------------------------------------------


class PausesBeforeItsWrite:
    """The first run's S3 client: just before it writes its year file (holding the lock,
    having read the catalog and the old file), ``meanwhile`` runs."""

    def __init__(self, s3: Any, meanwhile: Callable[[], None]) -> None:
        self.s3, self.meanwhile, self.paused = s3, meanwhile, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"].startswith(f"{SERVING_PREFIX}/ano=") and not self.paused:
            self.paused = True
            self.meanwhile()
        return self.s3.put_object(**kwargs)


def test_two_interleaved_patches_of_a_year_keep_both_dates(lake: Lake) -> None:
    d1, d2 = date(2025, 3, 4), date(2025, 3, 5)
    rows1, rows2 = lake.refine(d1, "jr_one"), lake.refine(d2, "jr_two")
    lake.publish(d1, rows1, "jr_one")
    second: dict[str, Any] = {}
    waiting = threading.Event()

    def wait_on_the_lock(seconds: float) -> None:
        waiting.set()
        time.sleep(seconds)

    def run_two() -> None:
        policy = LockPolicy(wait_s=30.0, poll_s=0.05, sleep=wait_on_the_lock)
        try:
            second["patches"] = lake.patch("jr_two", fresh={d2: rows2}, policy=policy)
        except Exception as exc:  # surfaced by the assertions below
            second["error"] = exc

    thread = threading.Thread(target=run_two)

    def meanwhile() -> None:
        # jr_two publishes d2 after jr_one read the catalog, then patches the same year:
        # without the lock it would read the old file (no d1) and one write would be lost.
        lake.publish(d2, rows2, "jr_two")
        thread.start()
        assert waiting.wait(10), "jr_two should find the year locked"

    first = replace(lake, s3=PausesBeforeItsWrite(lake.s3, meanwhile))
    (one,) = first.patch("jr_one", fresh={d1: rows1})
    thread.join(30)

    assert "error" not in second, second.get("error")
    (two,) = second["patches"]
    assert (one.patched, two.patched) == (["2025-03-04"], ["2025-03-05"])
    assert rows_of(lake.served(2025)) == rows_of(rows1, rows2)  # both dates survive
    assert lake.keys(serving_year_prefix(2025)) == sorted([one.key, two.key])
    assert lake.keys(serving_lock_key(2025)) == []


def test_a_held_lock_times_out_writing_nothing_and_a_stale_one_is_taken_over(
    lake: Lake,
) -> None:
    day = date(2025, 3, 5)
    rows = lake.refine(day, "jr_a")
    lake.publish(day, rows, "jr_a")
    acquire_year_lock(lake.s3, lake.bucket, 2025, "jr_killed")  # its run died holding it

    with pytest.raises(TimeoutError, match=r"lock of serving year 2025.*held by jr_killed"):
        lake.patch("jr_a", fresh={day: rows}, policy=LockPolicy(wait_s=0.0, poll_s=0.0))
    assert lake.keys(SERVING_PREFIX) == []
    assert lake.partitions(SERVING_TABLE_NAME) == {}

    later = LockPolicy(wait_s=0.0, now=lambda: datetime.now(UTC) + timedelta(minutes=11))
    (patch,) = lake.patch("jr_a", fresh={day: rows}, policy=later)  # past the 10-min lease
    assert patch.patched == ["2025-03-05"] and lake.keys(serving_year_prefix(2025)) == [patch.key]
    assert lake.keys(serving_lock_key(2025)) == []


def test_a_run_whose_lock_was_taken_over_does_not_repoint(lake: Lake) -> None:
    d1, d2 = date(2025, 3, 4), date(2025, 3, 5)
    rows1, rows2 = lake.refine(d1, "jr_a"), lake.refine(d2, "jr_b")
    lake.publish(d1, rows1, "jr_a")
    (before,) = lake.patch("jr_a", fresh={d1: rows1})
    lake.publish(d2, rows2, "jr_b")

    def taken_over() -> None:  # as if jr_b's lease ran out and another run took the lock
        lake.s3.put_object(Bucket=lake.bucket, Key=serving_lock_key(2025), Body=b"{}")

    slow = replace(lake, s3=PausesBeforeItsWrite(lake.s3, taken_over))
    with pytest.raises(LockLost, match="taken over"):
        slow.patch("jr_b", fresh={d2: rows2})
    assert lake.keys(serving_year_prefix(2025)) == [before.key]  # its new file deleted
    assert rows_of(lake.served(2025)) == rows_of(rows1)  # readers still on the old version


@pytest.mark.parametrize("native", [True, False], ids=["parameters", "headers"])
def test_conditional_writes_on_moto(lake: Lake, native: bool) -> None:
    """Both ways of sending the condition (boto3 parameters, or headers for Glue 5.0's older
    botocore) are honoured: one creator wins, a stale ETag loses."""
    key = f"serving/_locks/test-{native}"
    etag = put_conditional(lake.s3, lake.bucket, key, b"a", if_none_match=True, native=native)
    assert etag is not None
    assert (
        put_conditional(lake.s3, lake.bucket, key, b"b", if_none_match=True, native=native) is None
    )
    assert put_conditional(lake.s3, lake.bucket, key, b"c", if_match='"0"', native=native) is None
    newer = put_conditional(lake.s3, lake.bucket, key, b"d", if_match=etag, native=native)
    assert newer not in (None, etag)
    assert lake.s3.get_object(Bucket=lake.bucket, Key=key)["Body"].read() == b"d"


# --- for the Spark test in test_glue_job.py ------------------------------------------------




# --- snapshot reads: superseded files outlive any query (issue #20) -----------------------


def test_retirable_keeps_what_a_query_may_still_read() -> None:
    """The served file and the one it just replaced are never deleted; every older file goes
    only once the replaced one was written more than RETIRE_AFTER ago (a query planned
    before the repoint ran at most the workgroup's timeout, shorter than that)."""
    t0 = datetime(2025, 3, 5, 12, tzinfo=UTC)
    objects = {
        "y/run=old/a.parquet": t0 - timedelta(days=2),
        "y/run=killed/a.parquet": t0 - timedelta(days=1),
        "y/run=prev/a.parquet": t0,
        "y/run=new/a.parquet": t0 + timedelta(minutes=5),
    }
    soon = t0 + timedelta(minutes=30)
    assert retirable(objects, "y/run=new/", "y/run=prev/", soon) == []
    late = t0 + RETIRE_AFTER + timedelta(seconds=1)
    assert retirable(objects, "y/run=new/", "y/run=prev/", late) == [
        "y/run=killed/a.parquet", "y/run=old/a.parquet"]
    # Nothing replaced now (a patch with nothing stale): the served file is the reference.
    assert retirable(objects, "y/run=new/", None, soon) == []
    assert retirable(objects, "y/run=new/", None, late + timedelta(minutes=5)) == [
        "y/run=killed/a.parquet", "y/run=old/a.parquet", "y/run=prev/a.parquet"]


def test_a_lock_is_not_committed_past_half_its_lease_nor_released_when_taken_over(
    lake: Lake,
) -> None:
    clock = [0.0]
    policy = LockPolicy(lease=timedelta(minutes=10), clock=lambda: clock[0])
    lease = acquire_year_lock(lake.s3, lake.bucket, 2025, "jr_a", policy)
    check_lease(lake.s3, lease, policy)  # fresh: fine
    clock[0] = 301.0  # past half the 600 s lease: a taker may come at 600 s
    with pytest.raises(LockLost, match="past half"):
        check_lease(lake.s3, lease, policy)
    # Taken over between any check and the release: the conditional delete leaves it alone.
    lake.s3.put_object(Bucket=lake.bucket, Key=serving_lock_key(2025), Body=b"{}")
    release_year_lock(lake.s3, lease)
    assert lake.keys(serving_lock_key(2025)) == [serving_lock_key(2025)]
    fresh = lake.s3.head_object(Bucket=lake.bucket, Key=serving_lock_key(2025))["ETag"]
    assert delete_conditional(lake.s3, lake.bucket, serving_lock_key(2025), fresh)
    assert lake.keys(serving_lock_key(2025)) == []
