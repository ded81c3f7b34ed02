"""Tests of b3_assets/platform/ (resources, query engines, local AWS, alerts)."""
