"""Refined over time: whole dates under kills and re-runs, right previous dates after gap fills
and out-of-order runs, stray files ignored, nothing lost when a refine dies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from b3_assets.platform.resources import resources_for
from b3_assets.portfolio.sensors import RANGE_END, RANGE_START
from b3_assets.settings import Settings
from b3_assets_tests.support.chain import local_platform, sensor_tick
from b3_assets_tests.support.landing_factory import landing_table, write_landing
from b3_assets_tests.support.local_lake import land, refined_rows
from glue import local_job
from glue.local_job import published, read_published, run_local_refine, stale_dates, sync_serving

D18, D19, D20 = date(2025, 3, 18), date(2025, 3, 19), date(2025, 3, 20)
REPO = Path(__file__).resolve().parents[2]


def test_gap_fill_and_out_of_order_runs_converge_to_a_full_backfill(tmp_path):
    full, gap, reverse = tmp_path / "full", tmp_path / "gap", tmp_path / "reverse"
    land(full, D18, D19, D20)
    land(gap, D18, D20)
    land(gap, D19)  # the gap filled later: D20's previous date becomes D19
    land(reverse, D20)
    land(reverse, D19)
    land(reverse, D18)
    expected = refined_rows(full)
    assert refined_rows(gap) == expected
    assert refined_rows(reverse) == expected
    assert {str(r[5]) for r in expected if r[-2] == D20.isoformat()} == {D19.isoformat()}


def test_a_stray_landing_file_on_a_holiday_is_never_a_previous_date(tmp_path):
    write_landing(tmp_path, landing_table(date(2022, 12, 30)))  # before the calendar: ignored
    land(tmp_path, date(2025, 2, 28))
    write_landing(tmp_path, landing_table(date(2025, 3, 4)))  # Carnival: no session
    land(tmp_path, date(2025, 3, 5))
    rows = refined_rows(tmp_path)
    assert {str(r[5]) for r in rows if r[-2] == "2025-03-05"} == {"2025-02-28"}
    assert {r[-2] for r in rows} == {"2025-02-28", "2025-03-05"}
    # The hourly reconciliation looks at the same files without an error.
    assert local_platform(tmp_path).resources["glue_job"].pending_refines() == []


def test_a_landing_write_whose_refine_died_is_found_and_completed(tmp_path):
    land(tmp_path, D18)
    # The process died after the landing rename, before its refine: no event was handled.
    write_landing(tmp_path, landing_table(D19))
    assert stale_dates(tmp_path) == [D19]
    assert resources_for(Settings(data_dir=tmp_path))["glue_job"].after_landing([], None) == []
    assert stale_dates(tmp_path) == []
    assert {r[-2] for r in refined_rows(tmp_path)} == {D18.isoformat(), D19.isoformat()}


def test_the_reconciliation_sensor_refines_what_a_dead_refine_left(tmp_path):
    """No landing run follows (a weekend, the orchestrator down): the hourly sensor finds
    the stale date and its reconcile_refined run refines it; then it has nothing to do."""
    platform = local_platform(tmp_path)
    land(tmp_path, D18, D19)
    write_landing(tmp_path, landing_table(D19, drop={"PETR"}))  # replaced; refine died
    write_landing(tmp_path, landing_table(D20))  # written; refine died
    instance = dg.DagsterInstance.ephemeral()
    (request,) = sensor_tick(platform, instance, name="refined_reconciliation").run_requests
    assert request.run_config["ops"]["refine_stale_dates"]["config"]["dates"] == [
        D19.isoformat(),
        D20.isoformat(),
    ]
    job = platform.defs.resolve_job_def("reconcile_refined")
    assert job.execute_in_process(run_config=request.run_config, instance=instance).success
    rows = refined_rows(tmp_path)
    assert {r[-2] for r in rows} == {D18.isoformat(), D19.isoformat(), D20.isoformat()}
    assert "PETR" not in {r[-1] for r in rows if r[-2] == D19.isoformat()}
    # The same request again (a duplicate, or a landing run got there first): nothing to do.
    runs = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert job.execute_in_process(run_config=request.run_config, instance=instance).success
    again = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert len(again) == len(runs)
    tick = sensor_tick(platform, instance, name="refined_reconciliation")
    assert not tick.run_requests and "current" in tick.skip_message


_REFINE_FOREVER = """
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from glue.local_job import run_local_refine
lake, day, forever = Path(sys.argv[1]), date.fromisoformat(sys.argv[2]), sys.argv[3] == "1"
while True:
    run_local_refine(lake, day, datetime.now(UTC))
    if not forever:
        break
"""


def test_a_rerun_removes_what_a_writer_killed_mid_write_left(tmp_path):
    """A run killed inside write_atomic leaves a hidden temporary file beside _current.json;
    the next run of the date, holding its lock, removes it (found by the random kills below
    when a kill landed in that write)."""
    land(tmp_path, D18, D19)
    date_dir = tmp_path / f"refined/DataCarteira={D19.isoformat()}"
    torn = date_dir / "._current.json.0123456789abcdef.tmp"
    torn.write_bytes(b'{"run_id": "killed-mid')
    run_local_refine(tmp_path, D19, datetime.now(UTC))
    assert not torn.exists()
    assert not [p for p in date_dir.rglob(".*") if p.is_file()]
    assert published(tmp_path, D19) is not None


@pytest.mark.slow
def test_reruns_killed_at_random_never_show_a_partial_or_mixed_date(tmp_path):
    land(tmp_path, D18, D19)
    issuers = len(refined_rows(tmp_path)) // 2
    catalog = tmp_path / "catalog.duckdb"
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            try:
                with duckdb.connect(str(catalog), read_only=True) as con:
                    seen.append(
                        con.execute(
                            "SELECT count(*), count(DISTINCT processado_em) "
                            "FROM b3_etl_soma_acao WHERE DataCarteira = ?",
                            [D19.isoformat()],
                        ).fetchone()
                    )
            except duckdb.IOException:
                continue  # the file is being opened by a writer for a moment: try again
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    reader = threading.Thread(target=read_forever, daemon=True)
    reader.start()
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        for attempt in range(8):
            killed = attempt % 2 == 0
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _REFINE_FOREVER,
                    str(tmp_path),
                    D19.isoformat(),
                    "1" if killed else "0",
                ],
                cwd=REPO,
                env=env,
            )
            if killed:
                time.sleep(rng.uniform(0.3, 2.5))
                child.send_signal(signal.SIGKILL)
            child.wait(timeout=120)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors, errors
    assert len(seen) > 20
    assert set(seen) == {(issuers, 1)}, sorted(set(seen))
    # After the kills: the serving copy agrees with the published pointers, and a rerun
    # leaves exactly one run folder per issuer and no hidden leftovers.
    sync_serving(tmp_path)
    run_local_refine(tmp_path, D19, datetime.now(UTC))
    date_dir = tmp_path / f"refined/DataCarteira={D19.isoformat()}"
    assert all(len(list(d.iterdir())) == 1 for d in date_dir.glob("Acao=*"))
    assert not [p for p in date_dir.rglob(".*") if p.is_file()]


def test_the_previous_date_check_fails_until_a_gap_fill_is_refined_again(tmp_path):
    """Wrong input for the check: D20 refined against D18, then D19 lands without its
    catch-up. The check names both dates; after the catch-up it passes."""
    land(tmp_path, D18, D20)
    write_landing(tmp_path, landing_table(D19))  # the process died before the catch-up
    platform = local_platform(tmp_path)
    job = platform.defs.resolve_job_def("refined_checks")
    tags = {RANGE_START: D20.isoformat(), RANGE_END: D20.isoformat()}

    def outcome() -> tuple[bool, dict]:
        result = job.execute_in_process(tags=tags, raise_on_error=False)
        (check,) = [
            e
            for e in result.get_asset_check_evaluations()
            if e.check_name == "previous_date_matches_landing"
        ]
        return check.passed, {k: v.value for k, v in check.metadata.items()}

    passed, meta = outcome()
    assert not passed
    assert meta["data_carteira_anterior"] == D18.isoformat()
    assert meta["expected"] == D19.isoformat()
    land(tmp_path)  # the next landing run's catch-up refines D19 and D20 again
    assert outcome()[0]


def _served_stamps(lake: Path) -> dict[str, datetime]:
    """processado_em of each date as the catalog answers it (the serving copy)."""
    result = local_platform(lake).catalog.query(
        "SELECT DISTINCT DataCarteira, processado_em FROM b3_etl_soma_acao"
    )
    return {str(day): stamp for day, stamp in result.rows}


def _pointer_stamps(lake: Path, *days: date) -> dict[str, datetime]:
    """processado_em of each date's published run (its ``_current.json``)."""
    return {
        d.isoformat(): datetime.fromisoformat(published(lake, d)["processado_em"]) for d in days
    }


def test_a_late_serving_patch_never_replaces_a_newer_publish(tmp_path):
    land(tmp_path, D18)
    older_run = published(tmp_path, D18)["run_id"]
    older_rows = read_published(tmp_path, D18)
    run_local_refine(tmp_path, D18, datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))  # a newer run
    # The older run's serving patch arrives after the newer publish: it must not apply.
    local_job._patch_serving_of_run(tmp_path, older_run, {D18: older_rows})
    assert _served_stamps(tmp_path) == {D18.isoformat(): datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)}


def test_the_next_landing_run_repairs_a_serving_copy_left_behind(tmp_path, monkeypatch):
    land(tmp_path, D18, D19)
    with monkeypatch.context() as m:  # killed after its publish, before its serving patch
        m.setattr(local_job, "_patch_serving_of_run", lambda *args: None)
        run_local_refine(tmp_path, D19, datetime(2030, 1, 2, tzinfo=UTC))
    assert _served_stamps(tmp_path) != _pointer_stamps(tmp_path, D18, D19)
    land(tmp_path, D20)  # the next landing run
    assert _served_stamps(tmp_path) == _pointer_stamps(tmp_path, D18, D19, D20)


def test_the_reconciliation_sensor_finds_a_serving_copy_left_behind(tmp_path, monkeypatch):
    """No landing run follows a run killed between its publish and its serving patch: the
    hourly sensor counts the date as pending, and its run brings the catalog up to date."""
    land(tmp_path, D18, D19)
    with monkeypatch.context() as m:
        m.setattr(local_job, "_patch_serving_of_run", lambda *args: None)
        run_local_refine(tmp_path, D19, datetime(2030, 1, 2, tzinfo=UTC))
    platform = local_platform(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    (request,) = sensor_tick(platform, instance, name="refined_reconciliation").run_requests
    assert request.run_config["ops"]["refine_stale_dates"]["config"]["dates"] == [D19.isoformat()]
    job = platform.defs.resolve_job_def("reconcile_refined")
    assert job.execute_in_process(run_config=request.run_config, instance=instance).success
    assert _served_stamps(tmp_path) == _pointer_stamps(tmp_path, D18, D19)
    tick = sensor_tick(platform, instance, name="refined_reconciliation")
    assert not tick.run_requests
