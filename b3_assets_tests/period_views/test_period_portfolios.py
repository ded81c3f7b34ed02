"""B3's views of the four-month period (issue #10): the theoretical portfolio
(GetTheoricalPortfolio -> raw/ibov_teorica -> landing/ibov_teorica) and the preview of the next
period (GetQuartelyPreview -> raw/ibov_previa -> landing/ibov_previa).

Parsed exactly, validated, archived first, landed with the contract's schema, filed only under the
trading date B3 is on, never a Glue trigger, and never in the way of the day's portfolio. The
Dagster runs use a Definitions built here from the period assets plus the day's raw and landing
assets (b3_assets.definitions wires them for the code location)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from b3_assets.keys import PERIOD_LANDING_KEYS, PERIOD_RAW_KEYS
from b3_assets.period_views import period_assets
from b3_assets.period_views.period_assets import PERIOD_ASSETS
from b3_assets.portfolio.assets import landing_ibov_portfolio, raw_ibov_portfolio
from b3_assets.portfolio.collect import collect, fetch_only_on, period_archive
from b3_assets.sessions import b3_session_now
from b3_assets.source.api import fetch_api, portfolio_url
from b3_assets.source.errors import B3CaptureDateError, B3PayloadError
from b3_assets.source.model import PERIOD_LANDING_SCHEMA
from b3_assets.source.parse import parse_api_pages
from b3_assets.source.payload import RawPayload
from b3_assets.source.sectors import classify
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import LocalLake
from b3_assets.storage.landing import landing_dates, read_landing
from b3_assets_tests.replica import DEFAULT_DATE, Replica, ReplicaPeriod, generate_period
from b3_assets_tests.replica.portfolios import TEORICA_SAMPLE, load_period_sample, period_page
from b3_assets_tests.support.chain import Platform, failure_message, local_platform
from glue.layout import landing_date_from_key, period_landing_key

DAY = DEFAULT_DATE
NOW = datetime(2025, 3, 5, 11, 0, tzinfo=UTC)
FAST = {"timeout_s": 2.0, "retries": 1, "backoff_s": 0.001}


def _page(period: ReplicaPeriod, **kw: Any) -> bytes:
    return json.dumps(period_page(period, page_number=1, page_size=120, **kw)).encode()


def _payload(period: ReplicaPeriod, url: str = "http://b3.test/GetTheoricalPortfolio/x"
             ) -> RawPayload:
    return RawPayload("api", url, NOW, (("page-001.json", _page(period)),))


# --- parsing and validation ---------------------------------------------------------------

@pytest.mark.parametrize("view", ["teorica", "previa"])
def test_a_view_parses_exactly(view: str) -> None:
    served = generate_period(view, DAY)
    got = _payload(served).portfolio(DAY, view=view)
    assert got.constituents == served.constituents()
    assert got.qtde_teorica_total == served.total_qty and isinstance(got.qtde_teorica_total, int)
    assert got.redutor == served.redutor and isinstance(got.redutor, Decimal)
    assert all(isinstance(c.participacao_pct, Decimal) and isinstance(c.qtde_teorica, int)
               for c in got.constituents)
    assert (got.view, got.data_carteira, got.participacao_total) == (view, DAY,
                                                                   Decimal("100.000"))


def test_the_recorded_theoretical_portfolio_parses(samples_dir: Path) -> None:
    """B3's real answer (recorded in en-us) rendered in pt-br, as b3-pipeline asks it."""
    served = load_period_sample(samples_dir / TEORICA_SAMPLE)
    got = _payload(served).portfolio(date(2025, 4, 7), view="teorica")
    assert len(got.constituents) == 87
    assert got.qtde_teorica_total == 98_370_249_996
    assert got.redutor == Decimal("16279911.48376400")
    abev = next(c for c in got.constituents if c.codigo == "ABEV3")
    assert (abev.tipo, abev.qtde_teorica, abev.participacao_pct) == (
        "ON EDJ", 4_394_835_131, Decimal("2.580"))
    assert sum(c.participacao_pct for c in got.constituents) == Decimal("99.999")


def test_a_view_landing_table_has_designs_schema() -> None:
    served = generate_period("previa", DAY)
    table = _payload(served).portfolio(DAY, view="previa").to_landing_table()
    assert table.schema.equals(PERIOD_LANDING_SCHEMA)
    assert PERIOD_LANDING_SCHEMA.names == [
        "data_captura", "indice", "codigo", "acao", "tipo", "qtde_teorica", "participacao_pct",
        "qtde_teorica_total", "redutor", "coletado_em"]
    assert str(PERIOD_LANDING_SCHEMA.field("participacao_pct").type) == "decimal128(7, 3)"
    assert str(PERIOD_LANDING_SCHEMA.field("redutor").type) == "decimal128(24, 8)"
    assert table.column("codigo").to_pylist() == sorted(r.cod for r in served.rows)
    assert set(table.column("data_captura").to_pylist()) == {DAY}
    assert set(table.column("indice").to_pylist()) == {"IBOV"}


def test_a_bad_view_is_refused_naming_view_date_and_problem() -> None:
    served = generate_period("teorica", DAY)
    broken = served.with_rows(served.rows, total_qty=served.total_qty + 1)
    with pytest.raises(B3PayloadError) as err:
        _payload(broken).portfolio(DAY, view="teorica")
    msg = str(err.value)
    assert "GetTheoricalPortfolio" in msg and DAY.isoformat() in msg
    assert "not to the header total" in msg and "http://b3.test/" in msg
    doc = period_page(served, page_number=1, page_size=120)
    del doc["header"]["reductor"]
    with pytest.raises(B3PayloadError, match="header is missing reductor"):
        parse_api_pages([json.dumps(doc)], "http://b3.test", NOW, view="teorica",
                        data_captura=DAY)


# --- the trading date of a capture -------------------------------------------------------

@pytest.mark.parametrize("moment,session", [
    (datetime(2025, 3, 5, 11, 0, tzinfo=UTC), date(2025, 3, 5)),  # a session
    (datetime(2025, 3, 6, 1, 30, tzinfo=UTC), date(2025, 3, 5)),  # 22:30 in São Paulo
    (datetime(2025, 3, 1, 12, 0, tzinfo=UTC), date(2025, 3, 5)),  # Saturday before Carnival
    (datetime(2025, 4, 18, 12, 0, tzinfo=UTC), date(2025, 4, 22)),  # Good Friday, Tiradentes
])
def test_the_session_b3_is_on(moment: datetime, session: date) -> None:
    assert b3_session_now(moment) == session


def _collect(lake: LocalLake, fetch: Any, day: date, current: date, **kw: Any) -> Any:
    return collect(period_archive(lake, "teorica"),
                   fetch_only_on(fetch, "teorica", current, day, "http://b3.test/x"), day,
                   view="teorica", **kw)


def test_only_the_current_session_is_fetched_and_the_archive_comes_first(tmp_path: Path
                                                                         ) -> None:
    lake = LocalLake(tmp_path)
    served = generate_period("teorica", DAY)
    calls: list[int] = []

    def fetch() -> RawPayload:
        calls.append(1)
        return _payload(served)

    other = date(2025, 3, 6)
    with pytest.raises(B3CaptureDateError) as err:
        _collect(lake, fetch, DAY, current=other)
    msg = str(err.value)
    assert "2025-03-06" in msg and "2025-03-05" in msg and "http://b3.test/x" in msg
    assert "GetTheoricalPortfolio" in msg and "Nothing was written" in msg
    assert calls == [] and lake.list_keys("raw/") == []

    got = _collect(lake, fetch, DAY, current=DAY)
    assert not got.from_archive and got.stored.new and calls == [1]
    (entry,) = period_archive(lake, "teorica").entries(DAY)
    assert entry.prefix.startswith("raw/ibov_teorica/dt=2025-03-05/")
    assert entry.manifest["data_captura"] == "2025-03-05"
    assert RawArchive(lake).entries(DAY) == []  # not the day's portfolio archive

    again = _collect(lake, fetch, DAY, current=other)  # archived: no fetch, any day
    assert again.from_archive and calls == [1]
    assert again.portfolio.constituents == got.portfolio.constituents

    changed = served.with_rows(served.rows, redutor=served.redutor + 1)
    newer = _collect(lake, lambda: replace(_payload(changed), fetched_at=datetime.now(UTC)),
                     DAY, current=DAY, refetch=True)
    assert newer.stored.new and len(newer.stored.others) == 1
    latest = period_archive(lake, "teorica").latest(DAY)
    assert latest.portfolio(DAY, view="teorica").redutor == changed.redutor


def test_an_invalid_view_writes_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    served = generate_period("teorica", DAY)
    with pytest.raises(B3PayloadError):
        _collect(lake, lambda: _payload(served.with_rows([])), DAY, current=DAY)
    assert lake.list_keys("raw/") == []


def test_period_landing_keys_never_start_the_glue_job() -> None:
    for view in ("teorica", "previa"):
        key = period_landing_key(view, DAY)
        assert key == f"landing/ibov_{view}/dt=2025-03-05/ibov_{view}.parquet"
        assert landing_date_from_key(key) is None


def test_fetching_a_view_from_the_replica(b3_replica) -> None:
    payload = fetch_api(b3_replica.base_url, view="previa", **FAST)
    assert payload.url == portfolio_url(b3_replica.base_url, 1, view="previa")
    assert payload.portfolio(DAY, view="previa").constituents == (
        b3_replica.period("previa").constituents())


# --- in Dagster: one run of the day's portfolio and both views --------------------------------

def _definitions(platform: Platform) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_ibov_portfolio, landing_ibov_portfolio, *PERIOD_ASSETS],
        resources=platform.resources,
        executor=dg.in_process_executor,
    )


def _run(platform: Platform, day: date, **config: Any) -> dg.ExecuteInProcessResult:
    job = _definitions(platform).resolve_implicit_global_asset_job_def()
    run_config = {"ops": {f"raw__ibov_{view}": {"config": {"refetch": refetch}}
                          for view, refetch in config.items()}}
    return job.execute_in_process(partition_key=day.isoformat(), run_config=run_config,
                                  instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


@pytest.fixture
def on_day(monkeypatch: pytest.MonkeyPatch) -> date:
    """B3 is on the replica's date (the period views can be captured only then)."""
    monkeypatch.setattr(period_assets, "current_session", lambda: DAY)
    return DAY


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _assert_view_landed(platform: Platform, replica: Replica, view: str) -> None:
    served = replica.period(view)
    table = read_landing(platform.lake, DAY, view)
    assert table.schema.equals(PERIOD_LANDING_SCHEMA)
    rows = table.to_pylist()
    assert [r["codigo"] for r in rows] == sorted(r.cod for r in served.rows)
    by_code = {c.codigo: c for c in served.constituents()}
    for row in rows:
        c = by_code[row["codigo"]]
        assert (row["acao"], row["tipo"], row["qtde_teorica"], row["participacao_pct"]) == (
            c.acao, c.tipo, c.qtde_teorica, c.participacao_pct)
        assert (row["data_captura"], row["qtde_teorica_total"], row["redutor"]) == (
            DAY, served.total_qty, served.redutor)


def test_a_day_lands_sectors_theoretical_portfolio_and_preview_as_served(
        tmp_path: Path, b3_replica, on_day: date) -> None:
    platform = local_platform(tmp_path, b3_replica.base_url)
    result = _run(platform, DAY)
    assert result.success, failure_message(result)
    assert _materialized(result) == {
        "raw/ibov_portfolio", "landing/ibov_portfolio", "raw/ibov_teorica",
        "landing/ibov_teorica", "raw/ibov_previa", "landing/ibov_previa"}

    # The day's portfolio, with B3's sector of every constituent.
    landing = {r["codigo"]: r for r in read_landing(platform.lake, DAY).to_pylist()}
    served = b3_replica.portfolio
    assert set(landing) == {r.cod for r in served.rows}
    for row in served.rows:
        expected = classify(row.sector)
        assert expected is not None
        assert landing[row.cod]["setor_b3"] == " ".join(row.sector.split())
        assert (landing[row.cod]["setor"], landing[row.cod]["subsetor"]) == expected
    assert [r.params["segment"] for r in b3_replica.api_requests()] == ["2"]

    # Both views, exactly as served, archived first.
    for view in ("teorica", "previa"):
        _assert_view_landed(platform, b3_replica, view)
        (entry,) = period_archive(platform.lake, view).entries(DAY)
        assert entry.manifest["url"] == portfolio_url(b3_replica.base_url, 1, view=view)
        assert landing_dates(platform.lake, view) == [DAY]

    # Only the day's portfolio started the (local) Glue job.
    runs = platform.glue.get_job_runs(JobName=platform.settings.glue_job_name)["JobRuns"]
    assert [r["Arguments"]["--data_carteira"] for r in runs] == [DAY.isoformat()]


def test_a_failed_view_never_blocks_the_days_portfolio(tmp_path: Path, b3_replica,
                                                       on_day: date) -> None:
    b3_replica.fault("empty", endpoint="GetTheoricalPortfolio")
    platform = local_platform(tmp_path, b3_replica.base_url)
    result = _run(platform, DAY)
    assert not result.success
    assert _materialized(result) == {"raw/ibov_portfolio", "landing/ibov_portfolio",
                                     "raw/ibov_previa", "landing/ibov_previa"}
    message = failure_message(result)
    assert "partition 2025-03-05" in message and "GetTheoricalPortfolio" in message
    assert "the results are empty" in message
    assert portfolio_url(b3_replica.base_url, 1, view="teorica") in message
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {"raw__ibov_teorica"}  # its landing is skipped, nothing else touched
    assert read_landing(platform.lake, DAY).num_rows == len(b3_replica.portfolio.rows)
    _assert_view_landed(platform, b3_replica, "previa")
    assert platform.lake.list_keys("raw/ibov_teorica/") == []
    assert landing_dates(platform.lake, "teorica") == []


def test_a_view_cannot_be_captured_for_another_date(tmp_path: Path, b3_replica,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """B3 is on another session: the day's portfolio says so by its date, the views by the
    calendar; nothing is filed under the wrong date."""
    monkeypatch.setattr(period_assets, "current_session", lambda: date(2025, 3, 6))
    platform = local_platform(tmp_path, b3_replica.base_url)
    result = _run(platform, DAY)
    assert not result.success
    message = failure_message(result)
    assert "only B3's current one, as of the trading date 2025-03-06" in message
    assert "cannot be captured for 2025-03-05" in message
    assert b3_replica.api_requests(kind="teorica") == []
    assert b3_replica.api_requests(kind="previa") == []
    assert platform.lake.list_keys("raw/ibov_teorica/") == []
    assert read_landing(platform.lake, DAY).num_rows > 0  # the portfolio's date matched


def test_views_are_rebuilt_from_the_archive_and_refetched_on_request(
        tmp_path: Path, b3_replica, on_day: date) -> None:
    platform = local_platform(tmp_path, b3_replica.base_url)
    assert _run(platform, DAY).success
    first = read_landing(platform.lake, DAY, "previa")
    b3_replica.set_period(generate_period("previa", date(2025, 9, 1)))  # B3 changed it
    before = len(b3_replica.api_requests(kind="previa"))
    assert _run(platform, DAY).success
    assert len(b3_replica.api_requests(kind="previa")) == before  # archive, no network
    assert read_landing(platform.lake, DAY, "previa").equals(first)
    result = _run(platform, DAY, previa=True)
    assert result.success, failure_message(result)
    assert len(period_archive(platform.lake, "previa").entries(DAY)) == 2  # both kept
    _assert_view_landed(platform, b3_replica, "previa")  # landing follows the newest


def test_landing_a_view_needs_its_raw_archive(tmp_path: Path) -> None:
    platform = local_platform(tmp_path)
    defs = _definitions(platform)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={PERIOD_LANDING_KEYS["previa"]})
    result = job.execute_in_process(partition_key=DAY.isoformat(),
                                    instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "partition 2025-03-05: not in the raw archive" in message
    assert f"materialize {PERIOD_RAW_KEYS['previa'].to_user_string()} for it first" in message
