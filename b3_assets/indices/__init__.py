"""Every B3 index, every trading day: the Dagster wiring (assets, checks, job, schedules) over
the pure capture in :mod:`b3_assets.indices.collect` and the B3 client in
:mod:`b3_assets.source.indices`."""
