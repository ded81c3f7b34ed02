"""The one Definitions of b3-pipeline; ``B3_ENV`` chooses the resources, nothing else."""

import warnings

import dagster as dg

from b3_assets.assets import landing_ibov_portfolio, raw_ibov_portfolio, refined_b3_etl_soma_acao
from b3_assets.checks import landing_checks_defs, refined_checks_defs
from b3_assets.report_assets import report_ibov_composition
from b3_assets.resources import Platform, build_platform
from b3_assets.schedules import daily_ibov_job, daily_ibov_schedule
from b3_assets.sensors import build_glue_runs_sensor

# Single-run backfills and partitioned checks are marked beta/preview in this Dagster release;
# they are what this project is built on, so the warnings say nothing new at every load.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def build_definitions(platform: Platform) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            raw_ibov_portfolio,
            landing_ibov_portfolio,
            refined_b3_etl_soma_acao,
            report_ibov_composition,
        ],
        asset_checks=[*landing_checks_defs, *refined_checks_defs],
        jobs=[daily_ibov_job],
        schedules=[daily_ibov_schedule],
        sensors=[build_glue_runs_sensor(platform.settings)],
        resources=platform.resources(),
        # One process per run, not per step: steps here are short, process start-up is not.
        executor=dg.in_process_executor,
    )


defs = build_definitions(build_platform())
