"""The one Definitions of b3-pipeline; ``B3_ENV`` chooses the resources, nothing else."""

import dagster as dg

from b3_assets.indices.assets import INDICES_ASSETS, INDICES_CHECKS, INDICES_JOBS, INDICES_SCHEDULES
from b3_assets.keys import OWNERS
from b3_assets.levels.assets import LEVELS_ASSETS, LEVELS_CHECKS, LEVELS_JOBS, LEVELS_SCHEDULES
from b3_assets.marts.assets import ibov_marts, marts_job
from b3_assets.marts.checks import ibov_marts_checks
from b3_assets.period_views.period_assets import PERIOD_ASSETS
from b3_assets.platform.alerts import alert_sensors
from b3_assets.platform.resources import resources_for
from b3_assets.portfolio.assets import landing_ibov_portfolio, raw_ibov_portfolio
from b3_assets.portfolio.audit import audit_job, audit_landing_gaps, audit_schedule
from b3_assets.portfolio.checks import (
    landing_ibov_portfolio_checks,
    refined_b3_etl_soma_acao_checks,
)
from b3_assets.portfolio.derived import derived_catchup, derived_catchup_job
from b3_assets.portfolio.reconcile import reconcile_refined_job, refined_reconciliation
from b3_assets.portfolio.refined import refined_b3_etl_soma_acao
from b3_assets.portfolio.schedules import (
    daily_ibov_job,
    daily_ibov_schedule,
    enrichments_schedule,
    freshness_job,
    freshness_sensor,
    landing_freshness_checks,
    period_portfolios_job,
    period_portfolios_schedule,
    second_attempt_schedule,
)
from b3_assets.portfolio.sensors import (
    glue_job_runs_sensor,
    refined_checks_job,
    refined_followup_job,
)
from b3_assets.reports.report_assets import report_ibov_composition, report_ibov_marts
from b3_assets.settings import Settings, code_location_settings

#: The asset group of each layer: the lineage graph draws one labelled box per group, so
#: raw/ibov_portfolio and landing/ibov_portfolio (same last key segment) read apart.
LAYER_GROUPS = {
    "raw": "raw",
    "landing": "landing",
    "refined": "refined",
    "mart": "marts",
    "report": "reports",
    "audit": "audit",
}


def asset_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The one place every asset's group and owners are set: the group from the asset's
    ``layer`` tag (every asset has one), the owners from keys.OWNERS."""
    layer = spec.tags.get("layer")
    if layer not in LAYER_GROUPS:
        raise dg.DagsterInvalidDefinitionError(
            f"asset {spec.key.to_user_string()} has layer tag {layer!r}: tag it "
            f"{{'layer': …}} with one of {', '.join(LAYER_GROUPS)} (its group is derived)"
        )
    return spec.replace_attributes(group_name=LAYER_GROUPS[layer], owners=OWNERS)


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.map_asset_specs(asset_policy, [
            raw_ibov_portfolio,
            landing_ibov_portfolio,
            refined_b3_etl_soma_acao,
            report_ibov_composition,
            audit_landing_gaps,
            *PERIOD_ASSETS,
            ibov_marts,
            report_ibov_marts,
            *INDICES_ASSETS,
            *LEVELS_ASSETS,
        ]),
        asset_checks=[
            landing_ibov_portfolio_checks,
            refined_b3_etl_soma_acao_checks,
            ibov_marts_checks,
            *landing_freshness_checks,
            *INDICES_CHECKS,
            *LEVELS_CHECKS,
        ],
        jobs=[
            daily_ibov_job,
            period_portfolios_job,
            refined_followup_job,
            refined_checks_job,
            audit_job,
            marts_job,
            reconcile_refined_job,
            freshness_job,
            derived_catchup_job,
            *INDICES_JOBS,
            *LEVELS_JOBS,
        ],
        schedules=[
            daily_ibov_schedule,
            period_portfolios_schedule,
            second_attempt_schedule,
            enrichments_schedule,
            audit_schedule,
            *INDICES_SCHEDULES,
            *LEVELS_SCHEDULES,
        ],
        sensors=[
            glue_job_runs_sensor(settings),
            refined_reconciliation,
            derived_catchup,
            freshness_sensor,
            *alert_sensors(settings),
        ],
        resources=resources_for(settings),
        # One process per run, not per step: steps here are short, process start-up is not.
        executor=dg.in_process_executor,
    )


defs = build_definitions(code_location_settings())
