"""Tests of b3_assets/reports/ and of the example queries in b3_assets/sql/."""
