"""Mart runs are serialized as refined is (b3_assets/marts/compute.py build_marts): a run of a
date in flight while the gap before it is filled (a landing write, then that date's own mart run)
never leaves the date compared with its old previous date. Before: the marts' lock covered
only the write, so the run that planned before the gap fill wrote last in about 3 trials of
12, with data_carteira_anterior still the date before the gap and a wrong giro_pct."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import b3_assets.marts.compute as marts
from b3_assets.marts.compute import build_marts
from b3_assets.marts.store import MartStore
from b3_assets.storage.lake import Lake, LocalLake, S3Lake
from b3_assets.storage.landing import landing_parquet
from b3_assets_tests.marts.test_marts import expected_all
from b3_assets_tests.support.landing_factory import landing_table
from b3_assets_tests.support.moto_server import MotoServer, unique_name, use_moto
from glue.layout import landing_key

D4, D5, D6 = date(2025, 2, 4), date(2025, 2, 5), date(2025, 2, 6)  # Tue, Wed (the gap), Thu
TABLES = {
    D4: landing_table(D4, seed=1),
    D5: landing_table(D5, seed=2, add={"GOLL4"}, drop={"AZUL"}),
    D6: landing_table(D6, seed=3, drop={"PETR3"}),
}
#: What a full backfill of the three dates gives (plain Python, Decimal).
EXPECTED = {r["data_carteira"]: r for r in expected_all(TABLES)["ibov_indicadores"]}


def _indicadores(lake: Lake) -> dict[date, dict[str, Any]]:
    rows = MartStore(lake).read("ibov_indicadores", 2025).to_pylist()
    return {r["data_carteira"]: r for r in rows}


def _trial(lake: Lake, monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> None:
    """D4 and D6 landed and computed; then run A (D6) computes slowly while B fills the gap:
    lands D5 and runs D5's marts (which recompute D6, its next date)."""
    for day in (D4, D6):
        lake.write_bytes(landing_key(day), landing_parquet(TABLES[day]))
    build_marts(lake, [D4, D6])
    assert _indicadores(lake)[D6]["data_carteira_anterior"] == D4
    planned = threading.Event()
    real: Callable[..., Mapping[str, pa.Table]] = marts.compute_marts
    delay = rng.uniform(0.05, 0.4)

    def slow_compute(landing: Any, previous: Mapping[date, date | None], *args: Any) -> Any:
        if threading.current_thread().name == "run-A":  # A has planned: it computes slowly
            planned.set()
            threading.Event().wait(delay)
        return real(landing, previous, *args)

    monkeypatch.setattr(marts, "compute_marts", slow_compute)
    errors: list[BaseException] = []

    def run_a() -> None:
        try:
            build_marts(lake, [D6])
        except BaseException as exc:  # noqa: BLE001 (re-raised by the test below)
            errors.append(exc)

    def run_b() -> None:
        try:
            assert planned.wait(30)
            threading.Event().wait(rng.uniform(0, 0.04))
            lake.write_bytes(landing_key(D5), landing_parquet(TABLES[D5]))  # the gap filled
            build_marts(lake, [D5])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run_a, name="run-A"),
               threading.Thread(target=run_b, name="run-B")]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    monkeypatch.setattr(marts, "compute_marts", real)
    assert not errors, errors
    got = _indicadores(lake)
    assert got[D5]["data_carteira_anterior"] == D4
    assert got[D6]["data_carteira_anterior"] == D5, f"A's stale plan written last ({delay:.2f} s)"
    assert got[D6]["giro_pct"] == EXPECTED[D6]["giro_pct"]
    assert got == EXPECTED


def test_the_gap_fill_changes_the_next_dates_turnover() -> None:
    """The precondition of the trials: compared with D4, D6's turnover would be another."""
    wrong = expected_all({D4: TABLES[D4], D6: TABLES[D6]})["ibov_indicadores"][1]
    assert wrong["giro_pct"] != EXPECTED[D6]["giro_pct"]


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_concurrent_runs_around_a_gap_fill_on_a_folder_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(19)
    for trial in range(12):
        _trial(LocalLake(tmp_path / f"trial-{trial}"), monkeypatch, rng)


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_concurrent_runs_around_a_gap_fill_on_s3(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lock on S3: each write re-checks the plan right before its conditional PUT."""
    use_moto(monkeypatch, moto.endpoint)
    s3 = moto.client("s3")
    rng = random.Random(21)
    for _ in range(4):
        bucket = unique_name("b3-marts-race")
        s3.create_bucket(Bucket=bucket)
        _trial(S3Lake(bucket, s3), monkeypatch, rng)
