"""B3's views of the four-month period, captured every trading day (docs/contracts.md,
"More of what B3 publishes"): raw/ibov_teorica -> landing/ibov_teorica
(``GetTheoricalPortfolio``, the period's theoretical portfolio) and raw/ibov_previa ->
landing/ibov_previa (``GetQuartelyPreview``, the preview of the next period).

The same path as the day's portfolio (b3_assets/portfolio/assets.py), the view an option of
each piece: one fetcher (``B3Site.fetch(view=…)``), one parser
(``RawPayload.portfolio(…, view=…)``), one collection (``collect``), one landing writer and
reader (storage/landing.py); partitioned by trading date, archive-first (the raw asset fetches
only when the date is not archived, or with ``refetch``), landing built from the archive alone.
Unlike the day's portfolio, B3 puts no date in these views and keeps no history of them, so a
date can be fetched only while B3 is on it (:func:`current_session`, ``fetch_only_on``).
They are separate assets, neither upstream nor downstream of landing/ibov_portfolio: their
failure fails only themselves, and their landing files never start the Glue job (glue/layout.py
``LANDING_KEY_PATTERN`` matches ``landing/ibov/`` only). The JSON API only: there is no browser
fallback for them.
"""

from datetime import date

import dagster as dg

from b3_assets.keys import PERIOD_LANDING_KEYS, PERIOD_RAW_KEYS
from b3_assets.partitions import partition_dates, trading_day_partitions
from b3_assets.platform.resources import B3Site, LakeResource
from b3_assets.portfolio.assets import B3_RETRY, LANDING_COLUMNS, collect_partitions
from b3_assets.portfolio.collect import collect, fetch_only_on, period_archive
from b3_assets.sessions import b3_session_now
from b3_assets.source.api import portfolio_url
from b3_assets.source.errors import B3PermanentError
from b3_assets.source.model import PERIOD_LANDING_SCHEMA, VIEW_NAMES, PortfolioView
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.landing import landing_parquet, view_landing_key
from glue.layout import period_landing_prefix, period_raw_prefix

TITLES = {"teorica": "theoretical portfolio of the period", "previa": "preview of the next period"}

#: The landing contract of both views (docs/contracts.md), shown on the assets' pages.
PERIOD_LANDING_COLUMNS = {
    "data_captura": "Trading date of the capture (B3 puts no date in these views)",
    **{
        name: text
        for name, text in LANDING_COLUMNS.items()
        if name not in {"data_carteira", "setor_b3", "setor", "subsetor"}
    },
    "coletado_em": "When the payload was fetched (UTC)",
}


def current_session() -> date:
    """The trading date B3 is on now: the only date a period view can be fetched for."""
    return b3_session_now()


class PeriodRawConfig(dg.Config):
    refetch: bool = False
    """Fetch from B3 even when the date is archived (only the date B3 is on can be fetched;
    a different payload is kept beside the archived one)."""


def _schema() -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(f.name, str(f.type), description=PERIOD_LANDING_COLUMNS.get(f.name))
        for f in PERIOD_LANDING_SCHEMA
    ])


def _raw_asset(view: PortfolioView) -> dg.AssetsDefinition:
    prefix = period_raw_prefix(view)

    @dg.asset(
        key=PERIOD_RAW_KEYS[view],
        partitions_def=trading_day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=B3_RETRY,
        tags={"layer": "raw"},
        kinds={"python"},
        description=f"**Raw** IBOV {TITLES[view]}: what B3 sent "
        f"({VIEW_NAMES[view]}) on the trading date, byte for byte, with a manifest "
        f"({prefix}/dt=…/). B3 neither dates nor keeps it: only the date B3 is on can be "
        "fetched; other dates are rebuilt from the archive.",
    )
    def _raw(context: dg.AssetExecutionContext, config: PeriodRawConfig, lake: LakeResource,
             b3: B3Site) -> dg.MaterializeResult:
        the_lake = lake.get()
        archive = period_archive(the_lake, view)
        now = current_session()
        where = portfolio_url(b3.base_url, 1, view=view)
        return collect_partitions(
            context,
            lambda day: collect(
                archive,
                fetch_only_on(lambda: b3.fetch(view=view), view, now, day, where),
                day,
                refetch=config.refetch,
                view=view,
            ),
            what=TITLES[view],
            lake_uri=the_lake.uri(prefix + "/"),
        )

    return _raw


def _landing_asset(view: PortfolioView) -> dg.AssetsDefinition:
    raw_key = PERIOD_RAW_KEYS[view]

    @dg.asset(
        key=PERIOD_LANDING_KEYS[view],
        deps=[raw_key],
        partitions_def=trading_day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        tags={"layer": "landing"},
        kinds={"parquet"},
        description=f"**Landing** IBOV {TITLES[view]}: typed Parquet, one file per trading date "
        f"of capture ({period_landing_prefix(view)}/dt=…/ibov_{view}.parquet), built from the "
        "raw archive alone. Does not start the Glue job.",
        metadata={"dagster/column_schema": _schema()},
    )
    def _landing(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        the_lake = lake.get()
        archive: RawArchive = period_archive(the_lake, view)
        written: list[str] = []
        rows = 0
        problems = []
        for day in partition_dates(context):
            try:
                payload = archive.latest(day)
                if payload is None:
                    problems.append(
                        f"partition {day.isoformat()}: not in the raw archive "
                        f"{the_lake.uri(archive.prefix + '/')}: materialize "
                        f"{raw_key.to_user_string()} for it first (possible only on that "
                        "trading date: B3 keeps no history of this view)")
                    continue
                table = payload.portfolio(day, view=view).to_landing_table()
            except B3PermanentError as exc:  # a payload or archive that cannot be trusted
                problems.append(f"partition {day.isoformat()}: {exc}")
                continue
            key = view_landing_key(day, view)
            the_lake.write_bytes(key, landing_parquet(table, PERIOD_LANDING_SCHEMA))
            written.append(the_lake.uri(key))
            rows += table.num_rows
        if problems:  # the dates that could land did; the run names the others
            raise dg.Failure(description="\n".join(problems), allow_retries=False,
                             metadata={"written": ", ".join(written) or "none"})
        return dg.MaterializeResult(metadata={
            "dagster/row_count": rows,
            "dates": len(written),
            "lake_uri": dg.MetadataValue.text(
                written[0] if len(written) == 1 else f"{written[0]} … {written[-1]}"),
        })

    return _landing


raw_ibov_teorica = _raw_asset("teorica")
landing_ibov_teorica = _landing_asset("teorica")
raw_ibov_previa = _raw_asset("previa")
landing_ibov_previa = _landing_asset("previa")

#: The four assets, for ``Definitions(assets=[…, *PERIOD_ASSETS])``.
PERIOD_ASSETS: list[dg.AssetsDefinition] = [
    raw_ibov_teorica, landing_ibov_teorica, raw_ibov_previa, landing_ibov_previa,
]
