"""An enrichment never costs the day (issue #19, b3_assets/portfolio/enrichments.py): B3's sector
view failing, timing out or answering without labels lands the plain portfolio (segment 1) exactly
with null sectors, the ``enrichments_present`` check warns naming what is missing, and the
day's fill attempt fills the sectors in without touching the rows (before: the whole day was
rejected, "constituents without a sector label in B3's sector view"; then the sectors stayed
null unless someone refetched)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pytest

from b3_assets.cli import main
from b3_assets.keys import LANDING, RAW
from b3_assets.portfolio.checks import ENRICHMENTS_PRESENT, VALID_PORTFOLIO, enrichment_evaluation
from b3_assets.portfolio.collect import collect, fill_enrichments
from b3_assets.portfolio.enrichments import FILL_CONFIG, FILL_SCHEDULE, MISSING, SECTORS, missing
from b3_assets.source.api import fetch_api
from b3_assets.source.errors import B3UnavailableError
from b3_assets.source.sectors import classify
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.landing import read_landing
from b3_assets_tests.replica import DEFAULT_DATE
from b3_assets_tests.replica.portfolios import ReplicaPortfolio, write_csvs
from b3_assets_tests.support.chain import (
    check_results,
    failure_message,
    local_platform,
    materialize,
)

DAY1 = DEFAULT_DATE
DAY2 = DEFAULT_DATE + timedelta(days=1)
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
RAW_AND_LANDING = [RAW, LANDING]
#: The sector view's failures that leave the plain view answering (replica faults).
SECTOR_VIEW_FAULTS: dict[str, dict[str, Any]] = {
    "unlabelled": {},
    "timeout": {"segment": "2", "hang_s": 3.0},
    "5xx": {"segment": "2"},
}


def expected_rows(served: ReplicaPortfolio, sectors: bool) -> list[dict[str, Any]]:
    """The landing rows of what the replica serves, every column but coletado_em."""
    rows = []
    for c in sorted(served.constituents("2"), key=lambda c: c.codigo):
        kind = classify(c.setor_b3) if sectors else None
        rows.append({
            "data_carteira": served.data_carteira, "indice": "IBOV", "codigo": c.codigo,
            "acao": c.acao, "tipo": c.tipo, "qtde_teorica": c.qtde_teorica,
            "participacao_pct": c.participacao_pct, "qtde_teorica_total": served.total_qty,
            "redutor": served.redutor,
            "setor_b3": c.setor_b3 if sectors else None,
            "setor": kind.setor if kind else None, "subsetor": kind.subsetor if kind else None,
        })
    return rows


def landed_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "coletado_em"} for r in table.to_pylist()]


def without_sectors(table: pa.Table) -> pa.Table:
    return table.drop_columns(list(SECTORS.columns))


def _evaluations(result: dg.ExecuteInProcessResult, name: str) -> list[dg.AssetCheckEvaluation]:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == name]


@pytest.fixture
def instance():
    """A real instance on disk (schedules read it through its reference, as the daemon)."""
    with dg.instance_for_test() as test_instance:
        yield test_instance


def fill_run(platform, instance: dg.DagsterInstance, request: dg.RunRequest
             ) -> dg.ExecuteInProcessResult:
    """The run a schedule tick requested, in process, as the daemon would launch it."""
    job = platform.defs.resolve_job_def("daily_ibov_portfolio")
    return job.execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config,
        tags=request.tags, instance=instance, raise_on_error=False)


def fill_tick(platform, instance: dg.DagsterInstance, day: date, at: time
              ) -> dg.RunRequest | dg.SkipReason:
    """The enrichments schedule's tick of ``day`` at ``at`` São Paulo."""
    schedule = platform.defs.resolve_schedule_def(FILL_SCHEDULE)
    when = datetime.combine(day, at, SAO_PAULO)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                   resources=platform.resources,
                                   repository_def=platform.defs.get_repository_def()) as ctx:
        data = schedule.evaluate_tick(ctx)
    if data.run_requests:
        (request,) = data.run_requests
        return request
    return dg.SkipReason(data.skip_message)


@pytest.mark.parametrize("fault", list(SECTOR_VIEW_FAULTS))
def test_a_failing_sector_view_lands_the_plain_portfolio_exactly(tmp_path, b3_replica, fault):
    platform = local_platform(tmp_path, b3_replica.base_url, http_timeout_s=1.0)
    instance = dg.DagsterInstance.ephemeral()
    served = b3_replica.set_portfolio(DAY1)
    b3_replica.fault(fault, **SECTOR_VIEW_FAULTS[fault])
    result = materialize(platform, DAY1.isoformat(), instance=instance,
                         asset_selection=RAW_AND_LANDING)
    assert result.success, failure_message(result)
    assert landed_rows(read_landing(platform.lake, DAY1)) == expected_rows(served, False)
    asked = [r.params["segment"] for r in b3_replica.api_requests()]
    assert asked[0] == "2" and asked[-1] == "1"  # the sector view, then the plain one
    # The archive records what is missing and why; the check warns naming it.
    entry = RawArchive(platform.lake).entries(DAY1)[-1]
    assert list(entry.manifest[MISSING]) == ["sectors"]
    why = {"unlabelled": "without a sector label", "timeout": "timed out",
           "5xx": "HTTP 503"}[fault]
    assert why in entry.manifest[MISSING]["sectors"]
    (warned,) = _evaluations(result, ENRICHMENTS_PRESENT)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.description.startswith(f"sectors missing for {DAY1.isoformat()}: B3's "
                                         "sector view")
    assert why in warned.description and FILL_SCHEDULE in warned.description
    (valid,) = _evaluations(result, VALID_PORTFOLIO)
    assert valid.passed
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith(f"sectors missing for {DAY1.isoformat()}") for m in logs)


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_the_days_fill_attempt_fills_the_sectors_in_without_touching_the_rows(
    tmp_path, b3_replica, instance
):
    platform = local_platform(tmp_path, b3_replica.base_url)
    served = b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    first = materialize(platform, DAY1.isoformat(), instance=instance)  # the 08:30 run
    assert first.success, failure_message(first)
    degraded = read_landing(platform.lake, DAY1)
    assert landed_rows(degraded) == expected_rows(served, False)
    # 09:45: B3 labels its sector view again; the schedule asks for a fill run.
    b3_replica.reset()
    b3_replica.set_portfolio(DAY1)
    request = fill_tick(platform, instance, DAY1, time(9, 45))
    assert isinstance(request, dg.RunRequest), request
    assert request.run_config == {"ops": {"raw__ibov_portfolio": {"config": {FILL_CONFIG: True}}}}
    filled = fill_run(platform, instance, request)
    assert filled.success, failure_message(filled)
    table = read_landing(platform.lake, DAY1)
    assert without_sectors(table).equals(without_sectors(degraded))  # coletado_em too
    assert landed_rows(table) == expected_rows(served, True)
    assert all(table.column("setor").to_pylist())
    assert check_results(instance, LANDING, [ENRICHMENTS_PRESENT, VALID_PORTFOLIO],
                         DAY1.isoformat()) == {ENRICHMENTS_PRESENT: "SUCCEEDED",
                                               VALID_PORTFOLIO: "SUCCEEDED"}
    # The rewrite went downstream like any landing write: refined has the sectors now.
    assert filled.asset_materializations_for_node("refined__b3_etl_soma_acao")
    rows = platform.catalog.query(
        "SELECT count(*) FROM b3_etl_soma_acao WHERE DataCarteira = ? AND setor IS NULL",
        [DAY1.isoformat()]).rows
    assert rows == [(0,)]
    # Filled: the next tick has nothing to do.
    assert isinstance(fill_tick(platform, instance, DAY1, time(11, 45)), dg.SkipReason)


def test_a_fill_attempt_while_the_sector_view_is_still_unlabelled_changes_nothing(
    tmp_path, b3_replica, instance
):
    platform = local_platform(tmp_path, b3_replica.base_url)
    b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    assert materialize(platform, DAY1.isoformat(), instance=instance,
                       asset_selection=RAW_AND_LANDING).success
    before = read_landing(platform.lake, DAY1)
    landings = len(instance.fetch_materializations(LANDING, limit=10).records)
    request = fill_tick(platform, instance, DAY1, time(9, 45))
    assert isinstance(request, dg.RunRequest), request
    attempt = fill_run(platform, instance, request)
    assert attempt.success, failure_message(attempt)  # an enrichment never fails a run
    assert read_landing(platform.lake, DAY1).equals(before)
    assert len(instance.fetch_materializations(LANDING, limit=10).records) == landings
    assert not attempt.asset_materializations_for_node("raw__ibov_portfolio")
    skipped = {e.step_key for e in attempt.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert "landing__ibov_portfolio" in skipped
    logs = [e.user_message for e in instance.all_logs(attempt.run_id)]
    assert any("sectors still missing" in m and "Nothing changed" in m for m in logs)
    assert check_results(instance, LANDING, [ENRICHMENTS_PRESENT], DAY1.isoformat()) == {
        ENRICHMENTS_PRESENT: "FAILED"}
    # B3 has moved on to the next day: the fill cannot ask for DAY1 any more.
    b3_replica.reset()
    b3_replica.set_portfolio(DAY2)
    got = fill_enrichments(RawArchive(platform.lake),
                           lambda: fetch_api(b3_replica.base_url), DAY1)
    assert got.filled == () and f"B3 has moved on to {DAY2.isoformat()}" in got.message
    assert read_landing(platform.lake, DAY1).equals(before)


def test_a_fill_never_changes_the_portfolio_that_landed(tmp_path, b3_replica):
    """B3's sector view now shows other quantities: the landed rows are kept, nothing filled."""
    platform = local_platform(tmp_path, b3_replica.base_url)
    archive = RawArchive(platform.lake)
    served = b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    url = b3_replica.base_url
    got = collect(archive, lambda: fetch_api(url), DAY1,
                  fetch_plain=lambda: fetch_api(url, segment="1"))
    assert list(got.missing) == ["sectors"]
    b3_replica.reset()
    rows = list(served.rows)  # two quantities swapped: the same total, another portfolio
    rows[0], rows[1] = replace(rows[0], qty=rows[1].qty), replace(rows[1], qty=rows[0].qty)
    b3_replica.set_portfolio(served.with_rows(rows))
    outcome = fill_enrichments(archive, lambda: fetch_api(url), DAY1)
    assert outcome.filled == () and "differs from the landed portfolio in qtde_teorica" in (
        outcome.message)
    assert missing(archive.entries(DAY1)[-1]) == got.missing


def test_b3_down_for_both_views_fails_naming_both_and_archives_nothing(tmp_path):
    platform = local_platform(tmp_path)
    archive = RawArchive(platform.lake)

    def down(view: str):
        def fetch():
            raise B3UnavailableError(f"B3 API {view}: timed out after 1s")
        return fetch

    with pytest.raises(B3UnavailableError, match="plain") as info:
        collect(archive, down("sector view"), DAY1, fetch_plain=down("plain"))
    assert any("sector view" in note for note in info.value.__notes__)
    assert archive.dates() == []


def test_a_csv_import_has_no_sectors_but_nothing_is_missing(tmp_path, monkeypatch, b3_replica,
                                                             instance):
    """A CSV never has sectors: it is not a degraded enrichment (its check passes, saying
    csv), and no fill attempt is asked for it."""
    monkeypatch.setenv("B3_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert main(["import-csv", *map(str, write_csvs(tmp_path / "csv", [DAY1]))]) == 0
    platform = local_platform(tmp_path, b3_replica.base_url)
    result = materialize(platform, DAY1.isoformat(), instance=instance,
                         asset_selection=RAW_AND_LANDING)
    assert result.success, failure_message(result)
    assert set(read_landing(platform.lake, DAY1).column("setor_b3").to_pylist()) == {None}
    (check,) = _evaluations(result, ENRICHMENTS_PRESENT)
    assert check.passed
    assert check.metadata["source"].value == "csv" and check.metadata["missing"].value == "none"
    assert enrichment_evaluation(DAY1.isoformat(), RawArchive(platform.lake)).passed
    skip = fill_tick(platform, instance, DAY1, time(9, 45))
    assert isinstance(skip, dg.SkipReason) and "every enrichment" in skip.skip_message
    assert not b3_replica.api_requests()


@pytest.mark.slow  # a scenario of several runs or dates, seconds long: the slow tier
def test_an_unlabelled_first_day_and_a_labelled_second_day_both_land_exactly(
    tmp_path, b3_replica
):
    platform = local_platform(tmp_path, b3_replica.base_url)
    instance = dg.DagsterInstance.ephemeral()
    day1 = b3_replica.set_portfolio(DAY1)
    b3_replica.fault("unlabelled")
    assert materialize(platform, DAY1.isoformat(), instance=instance).success
    assert landed_rows(read_landing(platform.lake, DAY1)) == expected_rows(day1, False)
    b3_replica.reset()
    day2 = b3_replica.set_portfolio(DAY2)
    result = materialize(platform, DAY2.isoformat(), instance=instance)
    assert result.success, failure_message(result)
    assert landed_rows(read_landing(platform.lake, DAY2)) == expected_rows(day2, True)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert result.asset_materializations_for_node("refined__b3_etl_soma_acao")
