"""Tests of b3_assets/source/ (the B3 client) and of the B3 replica."""
