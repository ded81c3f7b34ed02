"""Tests of b3_assets/marts/ (the IBOV marts)."""
