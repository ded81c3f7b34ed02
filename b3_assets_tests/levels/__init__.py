"""Tests of b3_assets/levels/ (the index levels)."""
