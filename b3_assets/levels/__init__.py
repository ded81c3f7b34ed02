"""Index levels: every index's daily closes by year, as B3 still serves them (the pure capture
in :mod:`b3_assets.levels.collect`, the Dagster wiring in :mod:`b3_assets.levels.assets`)."""
