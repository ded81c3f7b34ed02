"""``b3-pipeline``: bootstrap history from B3 CSVs, query the catalog, plot an issuer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from b3_assets.indices.collect import index_archive
from b3_assets.platform.catalog import QueryEngine, QueryError, QueryResult
from b3_assets.portfolio.collect import Collected, import_csv
from b3_assets.settings import Settings, SettingsError
from b3_assets.source.errors import B3Error
from b3_assets.storage.archive import RawArchive
from b3_assets.storage.lake import Lake


def format_table(result: QueryResult, max_rows: int = 200) -> str:
    from tabulate import tabulate

    rows = result.rows[:max_rows]
    text = tabulate(rows, headers=result.columns, tablefmt="github", disable_numparse=True)
    if len(result.rows) > max_rows:
        text += f"\n… {len(result.rows) - max_rows} more rows"
    return text + f"\n({len(result.rows)} rows)"


def record_in_dagster(imported: list[Collected], home: Path) -> str:
    """Raw materializations in the Dagster instance ``make dev`` uses (``DAGSTER_HOME``), so
    imported dates show in the UI and are not "missing"."""
    import dagster as dg

    from b3_assets.keys import RAW, RAW_INDICES

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for got in imported:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=RAW if got.portfolio.indice == "IBOV" else RAW_INDICES,
                    partition=got.portfolio.data_carteira.isoformat(),
                    description="b3-pipeline import-csv",
                    metadata={"payload": got.stored.archived.prefix if got.stored else "?"},
                )
            )
    return str(home)


def cmd_import_csv(lake: Lake, files: Sequence[Path]) -> int:
    from b3_assets.platform.instance import InstanceError, ensure_instance

    try:  # before anything is archived: an import Dagster never hears of is a silent gap
        home = ensure_instance()
    except InstanceError as exc:
        print(f"error: {exc} Nothing was imported.", file=sys.stderr)
        return 2
    archive = RawArchive(lake)
    imported: list[Collected] = []
    failures: list[str] = []
    new = same = 0
    bar = tqdm(files, desc="import-csv", unit="file", disable=len(files) < 2, file=sys.stderr)
    for path in bar:
        try:
            got = import_csv(archive, Path(path), lambda index: index_archive(lake, index))
        except (B3Error, OSError) as exc:
            failures.append(f"{path}: {exc}")
            continue
        assert got.stored is not None
        imported.append(got)
        if got.stored.new:
            new += 1
        else:
            same += 1
        if got.stored.new and got.stored.others:
            tqdm.write(
                f"note: {got.portfolio.data_carteira} already had a different payload; "
                f"both are kept, landing uses the newest ({got.stored.archived.prefix})",
                file=sys.stderr,
            )
    print(
        f"imported {new} new, {same} already archived, {len(failures)} rejected "
        f"into {lake.uri('raw/ibov/')}"
    )
    if imported:
        record_in_dagster(imported, home)
        print(f"recorded {len(imported)} raw/ibov_portfolio dates in the Dagster instance {home}")
    for failure in failures:
        print(f"rejected: {failure}", file=sys.stderr)
    return 1 if failures else 0


def cmd_query(catalog: QueryEngine, sql: str) -> int:
    try:
        result = catalog.query(sql)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result))
    return 0


def cmd_plot(
    catalog: QueryEngine,
    issuer: str | None,
    output: Path | None,
    sector: str | None = None,
    plots_dir: Path = Path("data") / "plots",
    indice: str | None = None,
) -> int:
    """Without ``-o`` the chart goes to ``<B3_DATA_DIR>/plots/``, beside the lake, never into
    whatever folder the command happens to run in."""
    from b3_assets.indices.report import index_report_png
    from b3_assets.reports.report import issuer_history_png, sector_history_png

    if indice:
        name = f"indice_{indice.strip().upper()}"
    else:
        name = sector.replace(" ", "_") if sector else (issuer or "").upper()
    target = output or plots_dir / f"{name}_history.png"
    try:
        if indice:
            png = index_report_png(catalog, indice)
        elif sector:
            png = sector_history_png(catalog, sector)
        else:
            png = issuer_history_png(catalog, issuer or "")
    except (QueryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    print(f"wrote {target}")
    return 0


def cmd_backfill(dates: Sequence[str], no_raw: bool) -> int:
    """Materialize a date or a range in one run, after checking each end is a partition."""
    from b3_assets.launch import (
        LANDING_MARTS,
        RAW_LANDING_MARTS,
        NotAPartition,
        backfill,
        parse_dates,
    )
    from b3_assets.platform.instance import InstanceError, ensure_instance

    try:
        first, last = parse_dates(dates)
        selection = LANDING_MARTS if no_raw else RAW_LANDING_MARTS
        return backfill(first, last, selection, ensure_instance)
    except (NotAPartition, InstanceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="b3-pipeline",
        description="IBOV 'Carteira do Dia' pipeline. Environment: B3_ENV (local|aws), "
        "B3_DATA_DIR, B3_BUCKET … (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_imp = sub.add_parser(
        "import-csv",
        help="put B3's downloaded IBOVDia_DD-MM-YY.csv files "
        "into the raw archive (validated; nothing half-written)",
    )
    p_imp.add_argument("files", nargs="+", type=Path)
    p_back = sub.add_parser(
        "backfill",
        help="materialize raw, landing and the marts for a date or a range FIRST LAST in one "
        "run (the landing write refines them; the sensor records them on refined and draws "
        "the reports); a date that is not a B3 session is refused, naming the sessions "
        "around it",
    )
    p_back.add_argument("dates", nargs="+", metavar="DATE", help="FIRST [LAST], YYYY-MM-DD")
    p_back.add_argument(
        "--no-raw",
        action="store_true",
        help="without raw (enough after import-csv, which records raw)",
    )
    p_q = sub.add_parser(
        "query",
        help="run SQL on the catalog of the current environment "
        "(DuckDB locally, Athena on AWS) and print a table",
    )
    p_q.add_argument("sql")
    p_plot = sub.add_parser(
        "plot", help="PNG of an issuer's (or, with --sector, a sector's) weight across all dates"
    )
    target = p_plot.add_mutually_exclusive_group(required=True)
    target.add_argument("issuer", nargs="?", help="issuer root, e.g. PETR")
    target.add_argument("--sector", help="a sector of ibov_setores, e.g. Financeiro")
    target.add_argument(
        "--indice", metavar="CODE",
        help="any B3 index, e.g. SMLL: its closes over every year collected "
        "(b3_indices_fechamento) above the top 15 weights of its latest portfolio "
        "(b3_carteiras), titled with its latest entries and exits (b3_movimentos)")
    p_plot.add_argument("-o", "--output", type=Path,
                        help="PNG file to write (default: <B3_DATA_DIR>/plots/<name>_history.png)")
    args = parser.parse_args(argv)
    if args.command == "backfill":
        if len(args.dates) > 2:
            parser.error("backfill takes FIRST [LAST]")
        return cmd_backfill(args.dates, args.no_raw)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from b3_assets.platform.resources import resources_for

    resources = resources_for(settings)
    if args.command == "import-csv":
        return cmd_import_csv(resources["lake"].get(), args.files)
    catalog = resources["catalog"].engine()
    if args.command == "query":
        return cmd_query(catalog, args.sql)
    return cmd_plot(catalog, args.issuer, args.output, args.sector,
                    plots_dir=settings.data_dir / "plots", indice=args.indice)


if __name__ == "__main__":
    sys.exit(main())
