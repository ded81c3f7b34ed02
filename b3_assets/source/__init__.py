"""The B3 site, no Dagster: fetch, parse, validate, the model, B3's sector labels."""
