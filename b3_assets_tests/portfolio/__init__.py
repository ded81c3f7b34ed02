"""Tests of b3_assets/portfolio/ (the day's IBOV portfolio)."""
