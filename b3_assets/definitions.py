"""The one Definitions of b3-pipeline; ``B3_ENV`` chooses the resources, nothing else."""


import dagster as dg

from b3_assets.assets import landing_ibov_portfolio, raw_ibov_portfolio, refined_b3_etl_soma_acao
from b3_assets.checks import landing_checks_defs, refined_checks_defs
from b3_assets.resources import build_platform
from b3_assets.schedules import daily_ibov_job, daily_ibov_schedule
from b3_assets.sensors import build_glue_runs_sensor

platform = build_platform()

defs = dg.Definitions(
    assets=[raw_ibov_portfolio, landing_ibov_portfolio, refined_b3_etl_soma_acao],
    asset_checks=[*landing_checks_defs, *refined_checks_defs],
    jobs=[daily_ibov_job],
    schedules=[daily_ibov_schedule],
    sensors=[build_glue_runs_sensor(platform.settings)],
    resources=platform.resources(),
    # One process per run, not per step: steps here are short, process start-up is not.
    executor=dg.in_process_executor,
)
