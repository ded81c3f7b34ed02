"""Tests of b3_assets/indices/ (every B3 index, marts/b3_movimentos)."""
