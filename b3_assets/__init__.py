"""b3-pipeline's Dagster code location (``b3_assets.definitions``) and its plain-Python core."""

import warnings

# Single-run backfills and partitioned checks are marked beta/preview in this Dagster release,
# and time-partition freshness checks "superseded" (their successor cannot exempt B3 holidays);
# they are what this project is built on, so the warnings say nothing new at every load.
warnings.filterwarnings(
    "ignore", message=".*(currently in beta|currently in preview|is superseded).*"
)
