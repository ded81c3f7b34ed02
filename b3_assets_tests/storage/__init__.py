"""Tests of b3_assets/storage/ (the lake, the raw archive, landing Parquet)."""
