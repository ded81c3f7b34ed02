"""Tests of b3_assets/period_views/ (B3's views of the four-month period)."""
